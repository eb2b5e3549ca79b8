"""Calls due later, for many runs, from one thread: the earliest time asked for a key wins.

Following a run later (its worker's last words awaited, progress held back, the slow safety net)
needs a clock per run, not a thread per run, nor a kopf timer (which would put a finalizer on
every run). Each due call is handed to an executor, so a slow one holds nobody else's.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable

log = logging.getLogger("smart_resume.later")


class Later:
    def __init__(self, executor: concurrent.futures.Executor) -> None:
        self._executor = executor
        self._due: dict[Hashable, float] = {}
        self._heap: list[tuple[float, int, Hashable, Callable[[], None]]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def call(self, key: Hashable, delay: float, fn: Callable[[], None]) -> None:
        """Call ``fn`` in ``delay`` seconds, unless ``key`` is due sooner already (then that
        call stands, and this one is dropped); in a copy of the caller's context."""
        due = time.monotonic() + delay
        bound = contextvars.copy_context().run
        with self._changed:
            if self._due.get(key, float("inf")) <= due:
                return
            self._due[key] = due
            heapq.heappush(self._heap, (due, next(self._order), key, lambda: bound(fn)))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="later", daemon=True)
                self._thread.start()
            self._changed.notify()

    def cancel(self, key: Hashable) -> None:
        with self._changed:
            self._due.pop(key, None)

    def pending(self, key: Hashable) -> float | None:
        """Seconds until ``key`` is due, if it is."""
        with self._changed:
            due = self._due.get(key)
        return None if due is None else due - time.monotonic()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._changed.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                due, _, key, fn = heapq.heappop(self._heap)
                if self._due.get(key) != due:
                    continue  # cancelled, or asked again for sooner (that entry ran already)
                del self._due[key]
            self._executor.submit(_logged, fn)


def _logged(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # the next event or the safety net tries again
        log.exception("a call due later failed")
