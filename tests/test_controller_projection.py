"""What the recorder and the notifier share: looks one at a time, and their own last writes."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from smart_resume.controller.known import Known, run_entry
from smart_resume.controller.projection import OneAtATime, Written


def _run(name: str, **status: Any) -> dict[str, Any]:
    return run_entry(
        {"metadata": {"name": name, "namespace": "acme", "uid": f"uid-{name}"}, "status": status}
    )


def _known(*runs: dict[str, Any]) -> Known:
    return Known(runs_index={"acme": list(runs)}, jobs_index={}, checkpoints_index={})


def test_one_at_a_time__looks_in_its_own_thread_once_per_run_asked_for_meanwhile() -> None:
    """Asking never waits for a look; the runs asked for while one is looked at are looked at
    after it, each once however often asked, and a failing look stops nothing."""
    known = _known(_run("first"), _run("second"), _run("third"))
    looked: list[tuple[str, str]] = []
    release, done = threading.Event(), threading.Event()

    def look(run: Mapping[str, Any], _: Known) -> None:
        name = run["metadata"]["name"]
        looked.append((name, threading.current_thread().name))
        if name == "first":
            release.wait(timeout=10)
        if name == "second":
            raise RuntimeError("Airtable is down")
        if name == "third":
            done.set()

    looks = OneAtATime(look, name="looks-under-test")
    looks.ask("acme", "first", known)
    for name in ("second", "second", "gone", "third"):
        looks.ask("acme", name, known)  # returns while "first" is looked at
    release.set()

    assert done.wait(timeout=10)
    assert looked == [(name, "looks-under-test") for name in ("first", "second", "third")]


def test_written__this_process_last_write_counts_over_an_older_copy() -> None:
    """An index copy older than the write does not undo it; forgotten, the copy counts again."""
    stale = _run("nightly", phase="Running", airtable={"syncedPhase": "Pending"})
    written = Written("airtable")
    assert written.of(stale) == {"syncedPhase": "Pending"}

    written.remember(_run("nightly", phase="Running", airtable={"syncedPhase": "Running"}))

    assert written.of(stale) == {"syncedPhase": "Running"}
    assert written.status(stale) == {"phase": "Running", "airtable": {"syncedPhase": "Running"}}
    written.forget("uid-nightly")
    assert written.of(stale) == {"syncedPhase": "Pending"}
