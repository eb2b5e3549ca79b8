"""The run report: rows from a run and its checkpoints, laid out for a 100-column terminal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from smart_resume.core.report import (
    CycleView,
    as_json,
    build_report,
    format_duration,
    render_text,
    report_from,
)

NOW = datetime(2026, 12, 1, 22, 30, tzinfo=UTC)


def _run(**streams: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "nightly-x7k2", "namespace": "smart-resume-runs"},
        "status": {
            "runId": "SR-261201-003",
            "phase": "TimedOut",
            "startTime": "2026-12-01T22:00:00Z",
            "completionTime": "2026-12-01T22:02:30Z",
            "progress": "1/3",
            "streams": {key.removeprefix("s"): value for key, value in streams.items()},
        },
    }


def _task(state: str, examined: int, succeeded: int, failed: int = 0, skipped: int = 0) -> Any:
    return {
        "state": state,
        "examined": examined,
        "succeeded": succeeded,
        "failed": failed,
        "skipped": skipped,
    }


STREAM_1 = {
    "phase": "TimedOut",
    "reason": "DeadlineNear",
    "cycle": "SR-261130-001",
    "resumedFrom": "nightly-abcd",
    "clientsDone": 1,
    "clientsTotal": 2,
    "job": "nightly-x7k2-s1",
}
CYCLE_1 = CycleView(
    cycle="SR-261130-001",
    clients={
        "acme-recruiting": {
            "state": "Completed",
            "attempts": 1,
            "tasks": {
                "post_harvesting": _task("Completed", 8, 8),
                "lead_scoring": _task("Completed", 8, 7, skipped=1),
            },
        },
        'o\'brien-"partners"-search-with-a-very-long-client-identifier': {
            "state": "Failed",
            "attempts": 2,
            "tasks": {"lead_scoring": _task("Failed", 3, 1, failed=2)},
        },
    },
    problems={
        'o\'brien-"partners"-search-with-a-very-long-client-identifier': "AI endpoint answered "
        "500\nthen the connection broke " + "x" * 200
    },
)


def test_build_report__lists_each_client_task_in_order_with_counts() -> None:
    """Clients of the run's own cycle get one line per task, in the canonical task order."""
    report = build_report(_run(s1=STREAM_1), {1: CYCLE_1}, now=NOW)

    assert report.duration_seconds == 150
    (acme, obrien) = report.clients
    assert [t.task for t in acme.tasks] == ["lead_scoring", "post_harvesting"]
    assert (acme.tasks[0].succeeded, acme.tasks[0].skipped) == (7, 1)
    assert (obrien.state, obrien.attempts, obrien.problem.startswith("AI endpoint")) == (
        "Failed",
        2,
        True,
    )
    assert report.streams[0].resumed_from == "nightly-abcd"


def test_build_report__a_cycle_that_moved_on_shows_no_client_detail() -> None:
    """A later cycle's clients are not this run's: the stream says why none are listed."""
    later = CycleView(cycle="SR-261202-001", clients=CYCLE_1.clients)
    report = build_report(_run(s1=STREAM_1, s2={"phase": "Skipped"}), {1: later}, now=NOW)

    assert report.clients == ()
    assert "now in cycle SR-261202-001" in report.streams[0].detail
    assert report.streams[1].detail == "no cycle: the stream did not start"


def test_render_text__fits_100_columns_and_keeps_names_on_one_line() -> None:
    """Every line fits the terminal; long IDs and multi-line errors are cut, never wrapped."""
    text = render_text(build_report(_run(s1=STREAM_1), {1: CYCLE_1}, now=NOW))

    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "Run nightly-x7k2 (SR-261201-003): TimedOut" in lines[0]
    assert "Duration: 2.5 minutes" in text
    assert any("acme-recruiting" in line and "lead scoring" in line for line in lines)
    assert any(line.strip().startswith("! AI endpoint answered 500 then") for line in lines)
    assert not any(line.startswith("then the connection") for line in lines)


def test_render_text__a_run_without_streams_yet() -> None:
    """A run the operator has not started yet still renders, saying there is no detail."""
    run = {"metadata": {"name": "fresh", "namespace": "ns"}, "status": {}}
    text = render_text(build_report(run, {}, now=NOW))

    assert text.startswith("Run fresh (no run ID yet): Pending")
    assert "No client detail." in text


def test_as_json__is_plain_data() -> None:
    """``-o json`` output serialises as it is and keeps every client and task."""
    data = as_json(build_report(_run(s1=STREAM_1), {1: CYCLE_1}, now=NOW))

    decoded = json.loads(json.dumps(data))
    assert decoded["run_id"] == "SR-261201-003"
    assert len(decoded["clients"]) == 2
    assert decoded["clients"][0]["tasks"][1]["task"] == "post_harvesting"


def test_format_duration__seconds_minutes_hours() -> None:
    """Durations read as the records write them: "42 s", "2.5 minutes", "1.3 hours"."""
    assert [format_duration(s) for s in (42, 150, 4680)] == ["42 s", "2.5 minutes", "1.3 hours"]


def test_report_from__reads_each_streams_checkpoint_through_the_lookup() -> None:
    """The lookup is asked for each stream's checkpoint by name; a checkpoint with no status yet
    is an empty cycle, a missing one is reported gone."""
    run = _run(
        s1=STREAM_1,
        s2={"phase": "Failed", "cycle": "SR-261201-003", "checkpoint": "stream-2"},
    )
    run["status"]["streams"]["1"]["checkpoint"] = "stream-1"
    asked: list[str] = []

    def lookup(name: str) -> dict[str, Any] | None:
        asked.append(name)
        return {} if name == "stream-1" else None

    report = report_from(run, lookup, now=NOW)

    assert sorted(asked) == ["stream-1", "stream-2"]
    details = {line.stream: line.detail for line in report.streams}
    assert details[2] == "its checkpoint is gone"
    assert details[1] != "its checkpoint is gone"
