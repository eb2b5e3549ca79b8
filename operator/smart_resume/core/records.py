"""PURE: what a run's Airtable records say, from its run report.

The operator projects each run into three tables of the master base (``controller.records``
writes them, ``integrations.airtable_fields`` names their fields):

- one run record (Job Tracking, key: the run ID) with the run's figures;
- one result per client per run (Client Run Results, key: ``run_client_key``);
- per client and task, the "last run" fields of the client's master record (Clients, key: the
  Client ID).

Everything is derived from the run's status and its streams' checkpoints, which stay the source
of truth: syncing again writes the same records, so a replay never changes or doubles anything.

Success rate: clients Completed over the clients of the run's cycles (``status.totals``), in
percent, rounded to one decimal; 0 for a run with no clients. Quarantined, timed-out, failed and
unfinished clients count against it, so it is bounded to 0-100 by construction.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Final

from smart_resume.core.report import TASK_LABELS, ClientLine, RunReport, TaskLine
from smart_resume.core.status import Phase, TaskState, is_terminal

NOTES_MAX_CHARS: Final = 1000
ERROR_MAX_CHARS: Final = 1000


class JobStatus(enum.StrEnum):
    """``Clients.<Task> Job Status``: the options the old system's master base already has."""

    STARTED = "STARTED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    CLIENT_TIMEOUT_KILLED = "CLIENT_TIMEOUT_KILLED"
    JOB_TIMEOUT_KILLED = "JOB_TIMEOUT_KILLED"
    FAILED = "FAILED"


@dataclasses.dataclass(frozen=True)
class RunRecord:
    run_id: str
    status: str
    streams: str
    start_time: str
    end_time: str
    duration_seconds: float | None
    clients_processed: int
    clients_completed: int
    clients_timed_out: int
    clients_failed: int
    clients_quarantined: int
    leads_examined: int
    leads_scored: int
    posts_harvested: int
    posts_scored: int
    success_rate: float
    namespace: str
    name: str
    notes: str


@dataclasses.dataclass(frozen=True)
class TaskResult:
    task: str
    job_status: JobStatus
    state: str
    succeeded: int
    duration_seconds: float


@dataclasses.dataclass(frozen=True)
class ClientResult:
    key: str
    run_id: str
    client_id: str
    stream: int
    state: str
    attempts: int
    tasks: tuple[TaskResult, ...]
    leads_examined: int
    error: str

    def count(self, task: str) -> int:
        return next((t.succeeded for t in self.tasks if t.task == task), 0)

    def seconds(self, task: str) -> float:
        return next((t.duration_seconds for t in self.tasks if t.task == task), 0.0)

    @property
    def duration_seconds(self) -> float:
        return sum(t.duration_seconds for t in self.tasks)

    @property
    def task_states(self) -> str:
        return "; ".join(f"{TASK_LABELS.get(t.task, t.task)}: {t.state}" for t in self.tasks)


@dataclasses.dataclass(frozen=True)
class RunRecords:
    run: RunRecord
    clients: tuple[ClientResult, ...]
    last_run_date: str
    """``YYYY-MM-DD`` (UTC) for the Clients' Last Run Date fields."""


def run_client_key(run_id: str, stream: int, client_id: str) -> str:
    """The Client Run Results key: ``SR-261201-003-S1-Cacme-recruiting``."""
    return f"{run_id}-S{stream}-C{client_id}"


def success_rate(completed: int, clients: int) -> float:
    """Percent of the clients that completed, 0-100 whatever the inputs (0 with no clients)."""
    if clients <= 0:
        return 0.0
    return round(100.0 * min(max(completed, 0), clients) / clients, 1)


def build_records(report: RunReport) -> RunRecords:
    """The records of the run ``report`` describes."""
    totals = report.totals
    stream_reasons = {s.stream: (s.phase, s.reason) for s in report.streams}
    clients = tuple(
        _client_result(report, line, stream_reasons.get(line.stream, ("", "")))
        for line in report.clients
    )
    lines = report.clients
    completed = int(totals.get("completed", 0))
    processed = int(totals.get("clients", 0))
    run = RunRecord(
        run_id=report.run_id,
        status=report.phase,
        streams=", ".join(str(s.stream) for s in report.streams),
        start_time=report.start_time,
        end_time=report.completion_time,
        duration_seconds=report.duration_seconds,
        clients_processed=processed,
        clients_completed=completed,
        clients_timed_out=int(totals.get("timedOut", 0)),
        clients_failed=int(totals.get("failed", 0)),
        clients_quarantined=int(totals.get("quarantined", 0)),
        leads_examined=_sum(lines, "lead_scoring", "examined"),
        leads_scored=_sum(lines, "lead_scoring", "succeeded"),
        posts_harvested=_sum(lines, "post_harvesting", "succeeded"),
        posts_scored=_sum(lines, "post_scoring", "succeeded"),
        success_rate=success_rate(completed, processed),
        namespace=report.namespace,
        name=report.name,
        notes=_notes(report)[:NOTES_MAX_CHARS],
    )
    day = (report.completion_time or report.start_time)[:10]
    return RunRecords(run=run, clients=clients, last_run_date=day)


def job_status(
    task_state: str, *, run_phase: str, stream_phase: str, stream_reason: str
) -> JobStatus:
    """The Clients table's Job Status of one task of one client.

    Completed, timed out (the client timeout) and failed tasks say so. A task left unfinished
    says RUNNING (started) or STARTED (not yet) while the run goes on; once the run has ended it
    says JOB_TIMEOUT_KILLED when the run's deadline stopped its stream, else FAILED.
    """
    if task_state == TaskState.COMPLETED:
        return JobStatus.COMPLETED
    if task_state == TaskState.TIMED_OUT:
        return JobStatus.CLIENT_TIMEOUT_KILLED
    if task_state == TaskState.FAILED:
        return JobStatus.FAILED
    if not is_terminal(run_phase) and not is_terminal(stream_phase):
        return JobStatus.RUNNING if task_state == TaskState.RUNNING else JobStatus.STARTED
    if stream_phase == Phase.TIMED_OUT or stream_reason in ("DeadlineExceeded", "DeadlineNear"):
        return JobStatus.JOB_TIMEOUT_KILLED
    return JobStatus.FAILED


def _client_result(report: RunReport, line: ClientLine, stream: tuple[str, str]) -> ClientResult:
    tasks = tuple(
        TaskResult(
            task=task.task,
            job_status=job_status(
                task.state, run_phase=report.phase, stream_phase=stream[0], stream_reason=stream[1]
            ),
            state=task.state,
            succeeded=task.succeeded,
            duration_seconds=round(task.duration_seconds, 1),
        )
        for task in line.tasks
    )
    return ClientResult(
        key=run_client_key(report.run_id, line.stream, line.client_id),
        run_id=report.run_id,
        client_id=line.client_id,
        stream=line.stream,
        state=line.state,
        attempts=line.attempts,
        tasks=tasks,
        leads_examined=_task_count(line.tasks, "lead_scoring", "examined"),
        error=line.problem[:ERROR_MAX_CHARS],
    )


def _task_count(tasks: tuple[TaskLine, ...], task: str, key: str) -> int:
    return sum(int(getattr(t, key)) for t in tasks if t.task == task)


def _sum(lines: tuple[ClientLine, ...], task: str, key: str) -> int:
    return sum(_task_count(line.tasks, task, key) for line in lines)


def _notes(report: RunReport) -> str:
    parts = []
    for stream in report.streams:
        text = f"stream {stream.stream}: {stream.phase}"
        if stream.reason:
            text += f" ({stream.reason})"
        if stream.resumed_from:
            text += f", resumed from {stream.resumed_from}"
        if stream.detail:
            text += f", {stream.detail}"
        parts.append(text)
    return "; ".join(parts)
