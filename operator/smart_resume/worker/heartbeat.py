"""Renew the stream's Lease every heartbeat, from a thread beside the worker loop.

A renewal that finds another holder (a run that took the Lease over after we looked dead) sets
the lock-lost signal: the loop then stops before its next client, so two runs never keep
working on one stream.
"""

from __future__ import annotations

import datetime
import logging
import threading

from smart_resume.kube.leases import StreamLock
from smart_resume.worker.stream import StopSignals

log = logging.getLogger("smart_resume.worker")


class Heartbeat:
    def __init__(self, lock: StreamLock, *, interval_seconds: float, signals: StopSignals) -> None:
        self._lock = lock
        self._interval = interval_seconds
        self._signals = signals
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join(5)

    def _beat(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                renewed = self._lock.renew(datetime.datetime.now(datetime.UTC))
            except Exception:  # a failed renewal is retried next beat; the Lease outlives several
                log.exception("renewing Lease %s failed", self._lock.name)
                continue
            if not renewed:
                log.error("Lease %s is no longer ours; stopping", self._lock.name)
                self._signals.stop(self._signals.lock_lost)
                return
