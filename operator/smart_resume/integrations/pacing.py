"""Client-side pacing of Airtable requests, per base: a rolling-window limit and the 429 penalty.

Airtable allows 5 requests per second per base and, once a base answers 429, refuses every
request to it for the next 30 seconds. ``RequestPacer`` keeps a process below the first limit and
makes every thread honour the second: ``wait_turn(base_id)`` blocks until a request may go out
and records it; ``penalize(base_id)`` (called after a 429) holds back every caller for that base.
``shared_pacer()`` hands every gateway of a process the same pacer, so the limit holds for the
process as a whole, not per object.

The clock and the sleep are injectable so tests never really wait. This module deliberately does
not send requests, decide what a 429 is or retry anything: ``integrations.airtable`` does that.
It cannot coordinate across processes either; each stream's worker is one process with its own
clients, and so with its own bases.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
import time
from collections.abc import Callable

__all__ = ["RequestPacer", "shared_pacer"]

SAFETY_MARGIN_SECONDS = 0.05
"""Added to each window: Airtable counts requests when they arrive, and the first request on a new
connection can arrive later than the ones after it, which would squeeze the server's window."""


@dataclasses.dataclass
class _BaseState:
    granted: collections.deque[float]
    """Grant times of the most recent requests, at most ``burst`` of them."""
    penalty_until: float = -math.inf


class RequestPacer:
    """At most N requests per rolling window per base id, plus a pause after a 429; thread-safe.

    A rate of 5 per second means bursts of up to 5 requests, the 6th waiting until a second has
    passed since the 1st. A fractional rate below 1 means one request per ``1/rate`` seconds.

    Example:
        >>> pacer = RequestPacer(requests_per_second=5, penalty_seconds=30)
        >>> pacer.wait_turn("appXXXXXXXXXXXXXX")  # returns the seconds it waited
        0.0
    """

    def __init__(
        self,
        *,
        requests_per_second: float = 5.0,
        penalty_seconds: float = 30.0,
        safety_margin_seconds: float = SAFETY_MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_second <= 0 or penalty_seconds < 0 or safety_margin_seconds < 0:
            raise ValueError(
                "requests_per_second must be > 0, penalty and margin seconds >= 0; got "
                f"{requests_per_second}, {penalty_seconds}, {safety_margin_seconds}"
            )
        self.penalty_seconds = penalty_seconds
        self._burst = max(1, math.floor(requests_per_second))
        self._window_seconds = self._burst / requests_per_second + safety_margin_seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._bases: dict[str, _BaseState] = {}

    def wait_turn(self, base_id: str) -> float:
        """Block until a request to ``base_id`` may be sent, and count it as sent.

        Returns:
            The seconds spent waiting (0.0 when the request could go at once).
        """
        waited = 0.0
        while True:
            with self._lock:
                state = self._state(base_id)
                now = self._clock()
                ready_at = self._ready_at(state, now)
                if ready_at <= now:
                    state.granted.append(now)
                    return waited
            # Sleep outside the lock so other bases (and the penalty setter) are never held up;
            # re-check afterwards because other threads may have taken the freed slots.
            delay = ready_at - now
            self._sleep(delay)
            waited += delay

    def penalize(self, base_id: str) -> None:
        """After a 429 from ``base_id``: nobody sends to it for ``penalty_seconds`` from now."""
        with self._lock:
            state = self._state(base_id)
            state.penalty_until = max(state.penalty_until, self._clock() + self.penalty_seconds)

    def _state(self, base_id: str) -> _BaseState:
        state = self._bases.get(base_id)
        if state is None:
            state = self._bases[base_id] = _BaseState(collections.deque(maxlen=self._burst))
        return state

    def _ready_at(self, state: _BaseState, now: float) -> float:
        window_free_at = (
            state.granted[0] + self._window_seconds if len(state.granted) == self._burst else now
        )
        return max(window_free_at, state.penalty_until)


_shared: dict[tuple[float, float], RequestPacer] = {}
_shared_lock = threading.Lock()


def shared_pacer(requests_per_second: float, penalty_seconds: float) -> RequestPacer:
    """The process-wide pacer for these limits: every caller with the same limits shares it."""
    key = (requests_per_second, penalty_seconds)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = RequestPacer(
                requests_per_second=requests_per_second, penalty_seconds=penalty_seconds
            )
        return _shared[key]
