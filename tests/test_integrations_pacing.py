"""Unit tests of the per-base request pacer, on a manual clock (nothing really sleeps)."""

from __future__ import annotations

import threading

import pytest

from smart_resume.integrations.pacing import RequestPacer, shared_pacer

BASE = "appAAAAAAAAAAAAAA"
OTHER_BASE = "appBBBBBBBBBBBBBB"


class ManualClock:
    """A thread-safe clock that only moves when someone sleeps on it.

    ``last_read()`` is the time this thread last read: right after ``wait_turn`` returns, that is
    the moment the pacer granted the turn, however far other threads have moved the clock since.
    """

    def __init__(self) -> None:
        self._now = 1000.0
        self._lock = threading.Lock()
        self._reads = threading.local()

    def now(self) -> float:
        with self._lock:
            self._reads.value = self._now
            return self._now

    def last_read(self) -> float:
        return float(self._reads.value)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


def make_pacer(clock: ManualClock, *, rate: float = 5, penalty: float = 30) -> RequestPacer:
    return RequestPacer(
        requests_per_second=rate,
        penalty_seconds=penalty,
        safety_margin_seconds=0.0,
        clock=clock.now,
        sleep=clock.sleep,
    )


def test_pacer__first_burst_goes_without_waiting() -> None:
    """Up to the per-second limit, requests to one base go out at once."""
    clock = ManualClock()
    pacer = make_pacer(clock)

    waits = [pacer.wait_turn(BASE) for _ in range(5)]

    assert waits == [0.0] * 5
    assert clock.now() == 1000.0


def test_pacer__request_beyond_the_limit_waits_for_the_window() -> None:
    """The 6th request in a second waits until a second has passed since the 1st."""
    clock = ManualClock()
    pacer = make_pacer(clock)
    for _ in range(5):
        pacer.wait_turn(BASE)
        clock.sleep(0.1)

    waited = pacer.wait_turn(BASE)

    assert waited == pytest.approx(0.5)
    assert clock.now() == pytest.approx(1001.0)


def test_pacer__safety_margin_widens_the_window() -> None:
    """The safety margin is added to every window, so the 2nd burst starts a little later."""
    clock = ManualClock()
    pacer = RequestPacer(
        requests_per_second=5, safety_margin_seconds=0.05, clock=clock.now, sleep=clock.sleep
    )
    for _ in range(5):
        pacer.wait_turn(BASE)

    assert pacer.wait_turn(BASE) == pytest.approx(1.05)


def test_pacer__bases_are_paced_independently() -> None:
    """A base at its limit does not hold back requests to another base."""
    clock = ManualClock()
    pacer = make_pacer(clock)
    for _ in range(5):
        pacer.wait_turn(BASE)

    assert pacer.wait_turn(OTHER_BASE) == 0.0


def test_pacer__fractional_rate_spaces_single_requests() -> None:
    """A rate below one per second allows one request per 1/rate seconds."""
    clock = ManualClock()
    pacer = make_pacer(clock, rate=0.5)

    assert [pacer.wait_turn(BASE) for _ in range(3)] == [
        0.0,
        pytest.approx(2.0),
        pytest.approx(2.0),
    ]


def test_pacer__penalty_holds_back_every_caller_of_the_base() -> None:
    """After a 429 the next request to that base waits the full penalty; other bases don't."""
    clock = ManualClock()
    pacer = make_pacer(clock, penalty=30)
    pacer.wait_turn(BASE)

    pacer.penalize(BASE)

    assert pacer.wait_turn(OTHER_BASE) == 0.0
    assert pacer.wait_turn(BASE) == pytest.approx(30.0)
    assert pacer.wait_turn(BASE) == 0.0


def test_pacer__second_penalty_never_shortens_the_first() -> None:
    """Penalizing again extends the pause from the later 429, not from the earlier one."""
    clock = ManualClock()
    pacer = make_pacer(clock, penalty=30)
    pacer.penalize(BASE)
    clock.sleep(10)

    pacer.penalize(BASE)

    assert pacer.wait_turn(BASE) == pytest.approx(30.0)


def test_pacer__threads_together_never_exceed_the_limit() -> None:
    """Many threads sharing one pacer never get more than 5 grants in any one-second window."""
    clock = ManualClock()
    pacer = make_pacer(clock)
    granted: list[float] = []

    def worker() -> None:
        for _ in range(6):
            pacer.wait_turn(BASE)
            granted.append(clock.last_read())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)

    granted.sort()
    assert len(granted) == 48
    assert all(later - earlier >= 1.0 for earlier, later in zip(granted, granted[5:], strict=False))


def test_pacer__rejects_a_non_positive_rate() -> None:
    """A zero or negative rate is a configuration error, reported at construction."""
    with pytest.raises(ValueError, match="requests_per_second"):
        RequestPacer(requests_per_second=0)


def test_shared_pacer__same_limits_share_one_pacer() -> None:
    """Every caller in a process asking for the same limits gets the same pacer."""
    assert shared_pacer(5.0, 30.0) is shared_pacer(5.0, 30.0)
    assert shared_pacer(5.0, 30.0) is not shared_pacer(5.0, 1.0)
