"""Renew the stream's Lease every heartbeat, from a thread beside the worker loop, and fence the
worker when renewals stop succeeding.

As in client-go's leader election, the holder has a renew deadline shorter than the Lease
duration: if no renewal succeeded within it (the API server unreachable, every request failing),
the worker is fenced: it kills the client in flight and takes no more work, before any other
process could judge the Lease stale (observers wait a full ``leaseDurationSeconds`` on their own
clocks, see ``core.locks``). A renewal that finds another holder fences the worker at once.

The deadline is measured on this process's monotonic clock from the last renewal that succeeded;
the wall clock (``clock``) only fills the Lease's ``renewTime``, which nobody compares across
machines. The Lease's ``renewTime`` is the liveness signal: nothing is written into a status per
beat.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable

from smart_resume.core.reasons import StreamReason
from smart_resume.kube.leases import StreamLock
from smart_resume.worker.stream import StopSignals

log = logging.getLogger("smart_resume.worker")


class Heartbeat:
    def __init__(
        self,
        lock: StreamLock,
        *,
        interval_seconds: float,
        renew_deadline_seconds: float,
        signals: StopSignals,
        clock: Callable[[], datetime.datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = lock
        self._interval = interval_seconds
        self._renew_deadline = renew_deadline_seconds
        self._signals = signals
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._monotonic = monotonic
        self._last_renewed = monotonic()
        self._stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self._beat, name="heartbeat", daemon=True),
            # Apart from the renewals, which may hang in a request to an unreachable server.
            threading.Thread(target=self._watch_deadline, name="renew-deadline", daemon=True),
        ]

    def __enter__(self) -> Heartbeat:
        self._last_renewed = self._monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        for thread in self._threads:
            thread.join(5)

    def _beat(self) -> None:
        while not self._stopped.wait(self._interval):
            attempt_began = self._monotonic()
            try:
                renewed = self._lock.renew(self._clock())
            except Exception:  # retried at the next beat, until the renew deadline fences us
                log.warning("lease renewal failed", extra={"lease": self._lock.name}, exc_info=True)
                renewed = None
            if renewed:
                self._last_renewed = attempt_began
            elif renewed is False:
                log.error("lease lost; stopping", extra={"lease": self._lock.name})
                self._signals.fence(StreamReason.LOCK_LOST)
                return
            if self._signals.fenced.is_set():
                return

    def _watch_deadline(self) -> None:
        while not self._stopped.wait(_WATCH_SECONDS):
            if self._signals.fenced.is_set():
                return
            if self._monotonic() - self._last_renewed >= self._renew_deadline:
                log.error(
                    "renew deadline passed; killing the client in flight and stopping",
                    extra={"lease": self._lock.name, "deadline": self._renew_deadline},
                )
                self._signals.fence(StreamReason.RENEW_DEADLINE_PASSED)
                return


_WATCH_SECONDS = 0.1
