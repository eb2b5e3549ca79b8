"""The operator's one clock for calls due later (``controller.later``): plain unit tests, with a
real thread and executor; waits are polls with a deadline, never sleeps to synchronise."""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
import time
from collections.abc import Iterator

import pytest

from harness.waiting import wait_for
from smart_resume.controller.later import Later


@pytest.fixture()
def later() -> Iterator[Later]:
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        yield Later(executor)


def test_later__calls_each_key_once_at_its_earliest_time(later: Later) -> None:
    """A key asked for again later keeps its sooner call; asked for sooner, only the sooner one
    runs; other keys are independent."""
    calls: list[str] = []
    lock = threading.Lock()

    def record(what: str) -> None:
        with lock:
            calls.append(what)

    later.call("run-a", 0.05, lambda: record("a-soon"))
    later.call("run-a", 30, lambda: record("a-late"))  # dropped: a sooner call is due
    later.call("run-b", 30, lambda: record("b-late"))  # replaced by the sooner one below
    later.call("run-b", 0.1, lambda: record("b-soon"))
    wait_for(lambda: len(calls) == 2, timeout=5, what="both keys called")
    assert sorted(calls) == ["a-soon", "b-soon"]
    assert later.pending("run-a") is None and later.pending("run-b") is None


def test_later__cancelled_key_is_not_called(later: Later) -> None:
    """A run forgotten (deleted) before its call is due is never followed again."""
    called = threading.Event()
    later.call("gone", 0.05, called.set)
    pending = later.pending("gone")
    assert pending is not None and 0 < pending <= 0.05
    later.cancel("gone")
    marker = threading.Event()
    later.call("marker", 0.1, marker.set)  # due after "gone" would have been
    wait_for(marker.is_set, timeout=5, what="a later call")
    assert not called.is_set()


def test_later__runs_in_the_callers_context_and_survives_a_failing_call(later: Later) -> None:
    """A call runs in a copy of the context it was asked from (kopf's Event queue lives there),
    and one that raises does not stop the clock."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="none")
    var.set("handler")
    seen: list[str] = []

    def boom() -> None:
        raise RuntimeError("a failing follow")

    later.call("boom", 0.01, boom)
    later.call("context", 0.05, lambda: seen.append(var.get()))
    wait_for(lambda: seen, timeout=5, what="the call after a failing one")
    assert seen == ["handler"]


def test_later__many_keys_one_thread(later: Later) -> None:
    """A thousand runs waiting cost one thread, not a thousand timers."""
    before = threading.active_count()
    done = threading.Semaphore(0)
    for n in range(1000):
        later.call(n, 0.2 + n / 10_000, done.release)
    assert threading.active_count() <= before + 1
    deadline = time.monotonic() + 10
    for _ in range(1000):
        assert done.acquire(timeout=max(0.0, deadline - time.monotonic()))
