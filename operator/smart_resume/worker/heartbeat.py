"""Renew the stream's Lease every heartbeat, from a thread beside the worker loop.

Each beat also records ``heartbeatTime`` in the stream's status, so `kubectl get srr -o yaml`
shows a live worker even while one client takes long. A renewal that finds another holder (a
run that took the Lease over after we looked dead) sets the lock-lost signal: the loop then
stops before its next client, so two runs never keep working on one stream.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable

from smart_resume.kube.leases import StreamLock
from smart_resume.worker.stream import StopSignals

log = logging.getLogger("smart_resume.worker")


class Heartbeat:
    def __init__(
        self,
        lock: StreamLock,
        *,
        interval_seconds: float,
        signals: StopSignals,
        on_beat: Callable[[datetime.datetime], None],
    ) -> None:
        self._lock = lock
        self._interval = interval_seconds
        self._signals = signals
        self._on_beat = on_beat
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
            now = datetime.datetime.now(datetime.UTC)
            try:
                renewed = self._lock.renew(now)
                if renewed:
                    self._on_beat(now)
            except Exception:  # a failed beat is retried next time; the Lease outlives several
                log.exception("heartbeat failed", extra={"lease": self._lock.name})
                continue
            if not renewed:
                log.error("lease lost; stopping", extra={"lease": self._lock.name})
                self._signals.stop(self._signals.lock_lost)
                return
