"""core.records: what a run's Airtable records say, from its report."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from smart_resume.core.checkpoint import decode_client, encode_client
from smart_resume.core.records import (
    JobStatus,
    build_records,
    job_status,
    run_client_key,
    success_rate,
)
from smart_resume.core.report import CycleView, build_report

NOW = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("completed", "clients", "rate"),
    [(0, 0, 0.0), (2, 3, 66.7), (3, 3, 100.0), (5, 3, 100.0), (-1, 3, 0.0), (1, -2, 0.0)],
)
def test_success_rate__is_bounded_to_0_100(completed: int, clients: int, rate: float) -> None:
    """Whatever the counts (even inconsistent ones), the rate stays within 0-100 %."""
    assert success_rate(completed, clients) == rate


def test_run_client_key__names_run_stream_and_client() -> None:
    """The documented key shape."""
    assert run_client_key("SR-261201-003", 1, "acme-recruiting") == (
        "SR-261201-003-S1-Cacme-recruiting"
    )


@pytest.mark.parametrize(
    ("task", "run", "stream", "reason", "expected"),
    [
        ("Completed", "Running", "Running", "", JobStatus.COMPLETED),
        ("TimedOut", "Running", "Running", "", JobStatus.CLIENT_TIMEOUT_KILLED),
        ("Failed", "Failed", "Failed", "", JobStatus.FAILED),
        ("Running", "Running", "Running", "", JobStatus.RUNNING),
        ("Pending", "Running", "Running", "", JobStatus.STARTED),
        ("Running", "TimedOut", "TimedOut", "DeadlineExceeded", JobStatus.JOB_TIMEOUT_KILLED),
        ("Pending", "Terminated", "Terminated", "", JobStatus.FAILED),
    ],
)
def test_job_status__per_task_state_and_run_end(
    task: str, run: str, stream: str, reason: str, expected: JobStatus
) -> None:
    """Unfinished tasks of an ended run say why they stopped: the run deadline or a failure."""
    assert job_status(task, run_phase=run, stream_phase=stream, stream_reason=reason) == expected


def test_build_records__figures_from_the_report() -> None:
    """Totals, leads and posts counts, durations and the link key come from the checkpoint."""
    run = {
        "metadata": {"name": "nightly", "namespace": "runs"},
        "status": {
            "runId": "SR-261201-003",
            "phase": "TimedOut",
            "startTime": "2026-12-01T22:00:00Z",
            "completionTime": "2026-12-01T22:02:30Z",
            "totals": {"clients": 2, "completed": 1, "timedOut": 1, "failed": 0},
            "streams": {
                "1": {"phase": "TimedOut", "reason": "DeadlineExceeded", "cycle": "SR-261201-003"}
            },
        },
    }
    clients = {
        "acme-recruiting": decode_client("Completed 1 ls=C4/3/1/0/12.5 ph=C3/3/0/0/30"),
        "o'brien": decode_client("TimedOut 2 ls=R2/1/0/0"),
    }
    report = build_report(run, {1: CycleView("SR-261201-003", clients)}, now=NOW)

    records = build_records(report)

    assert records.run.success_rate == 50.0
    assert (records.run.leads_examined, records.run.leads_scored) == (6, 4)
    assert records.run.posts_harvested == 3
    assert records.run.duration_seconds == 150.0
    assert records.last_run_date == "2026-12-01"
    acme, obrien = records.clients
    assert acme.key == "SR-261201-003-S1-Cacme-recruiting"
    assert acme.seconds("lead_scoring") == 12.5 and acme.duration_seconds == 42.5
    assert obrien.tasks[0].job_status == JobStatus.JOB_TIMEOUT_KILLED


def test_checkpoint__durations_round_trip_and_old_entries_still_decode() -> None:
    """Task seconds ride in the compact entry; entries written before them decode unchanged."""
    entry = decode_client("Completed 1 ls=C2/1/0/1/4.2")
    assert entry["tasks"]["lead_scoring"]["durationSeconds"] == 4.2
    assert encode_client(entry) == "Completed 1 ls=C2/1/0/1/4.2"
    old = decode_client("Completed 1 ls=C2/1/0/1")
    assert "durationSeconds" not in old["tasks"]["lead_scoring"]
    assert encode_client(old) == "Completed 1 ls=C2/1/0/1"
