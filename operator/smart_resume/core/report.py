"""PURE: the run report: what a run did per stream, per client and per task, as rows and text.

``build_report`` reduces a SmartResumeRun and the checkpoints of its streams' cycles to a
``RunReport`` (``report_from`` reads those checkpoints through a lookup: the API server's for
the CLI, the operator's index for its records and e-mails); ``render_text`` lays it out for a
terminal of ``width`` columns (100 by default) in the style of ``tkn pr describe``; ``as_json``
gives the same content to scripts. A stream whose cycle has moved on (a later run opened a new
one) shows its run-level figures only: its clients' detail now belongs to the later cycle.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from smart_resume.core.checkpoint import decode_clients
from smart_resume.core.spec import ordered_tasks

TASK_LABELS: Final = {
    "lead_scoring": "lead scoring",
    "post_harvesting": "post harvesting",
    "post_scoring": "post scoring",
}
COUNT_KEYS: Final = ("examined", "succeeded", "failed", "skipped")
_ELLIPSIS: Final = "…"


@dataclasses.dataclass(frozen=True)
class CycleView:
    """A stream's checkpoint as the report needs it: the cycle, and its clients decoded."""

    cycle: str
    clients: Mapping[str, Mapping[str, Any]]
    """Per client ID: ``state``, ``attempts``, ``tasks.<task>`` with ``state`` and counts."""
    problems: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Per client ID: the last error message of a client that failed, timed out or was
    quarantined."""

    @classmethod
    def of(cls, checkpoint_status: Mapping[str, Any]) -> CycleView:
        """The view of a SmartResumeStream's status."""
        return cls(
            cycle=str(checkpoint_status.get("cycle") or ""),
            clients=decode_clients(checkpoint_status),
            problems={k: v for k, v in (checkpoint_status.get("problems") or {}).items() if v},
        )


@dataclasses.dataclass(frozen=True)
class TaskLine:
    task: str
    state: str
    examined: int
    succeeded: int
    failed: int
    skipped: int
    duration_seconds: float = 0.0
    """Accumulated over the attempts of the cycle."""


@dataclasses.dataclass(frozen=True)
class ClientLine:
    stream: int
    client_id: str
    state: str
    attempts: int
    tasks: tuple[TaskLine, ...]
    problem: str


@dataclasses.dataclass(frozen=True)
class StreamLine:
    stream: int
    phase: str
    reason: str
    message: str
    cycle: str
    resumed_from: str
    clients_done: int
    clients_total: int | None
    job: str
    detail: str
    """Why the clients are not listed, when they are not (e.g. the cycle moved on)."""
    next_run: str = ""
    """What the next run of the stream does with its cycle."""


@dataclasses.dataclass(frozen=True)
class RunReport:
    name: str
    namespace: str
    run_id: str
    phase: str
    start_time: str
    completion_time: str
    duration_seconds: float | None
    progress: str
    streams: tuple[StreamLine, ...]
    clients: tuple[ClientLine, ...]
    totals: Mapping[str, int] = dataclasses.field(default_factory=dict)
    """Clients by outcome over all streams (``status.totals``)."""


def report_from(
    run: Mapping[str, Any],
    checkpoint_status: Callable[[str], Mapping[str, Any] | None],
    *,
    now: datetime,
) -> RunReport:
    """The report of ``run``, each stream's cycle read by ``checkpoint_status(name)`` of its
    checkpoint (None: no such checkpoint): from the API server or from the operator's index."""
    cycles: dict[int, CycleView | None] = {}
    for key, entry in ((run.get("status") or {}).get("streams") or {}).items():
        found = checkpoint_status((entry or {}).get("checkpoint", ""))
        cycles[int(key)] = None if found is None else CycleView.of(found)
    return build_report(run, cycles, now=now)


def build_report(
    run: Mapping[str, Any], cycles: Mapping[int, CycleView | None], *, now: datetime
) -> RunReport:
    """The report of ``run``; ``cycles`` holds each stream's checkpoint (None: none found).

    ``now`` measures the duration of a run that has not ended yet.
    """
    metadata = run.get("metadata") or {}
    status = run.get("status") or {}
    streams: list[StreamLine] = []
    clients: list[ClientLine] = []
    for key, entry in sorted((status.get("streams") or {}).items(), key=lambda kv: int(kv[0])):
        if not entry:
            continue
        stream = int(key)
        view = cycles.get(stream)
        own_cycle = view is not None and bool(entry.get("cycle")) and view.cycle == entry["cycle"]
        detail = ""
        if not entry.get("cycle"):
            detail = "no cycle: the stream did not start"
        elif view is None:
            detail = "its checkpoint is gone"
        elif not own_cycle:
            detail = f"cycle {entry['cycle']} was closed; the stream is now in cycle {view.cycle}"
        streams.append(
            StreamLine(
                stream=stream,
                phase=str(entry.get("phase", "")),
                reason=str(entry.get("reason") or ""),
                message=str(entry.get("message") or ""),
                cycle=str(entry.get("cycle") or ""),
                resumed_from=str(entry.get("resumedFrom") or ""),
                clients_done=int(entry.get("clientsDone") or 0),
                clients_total=entry.get("clientsTotal"),
                job=str(entry.get("job") or ""),
                detail=detail,
                next_run=_next_run(entry, own_cycle),
            )
        )
        if own_cycle and view is not None:
            clients.extend(_client_lines(stream, view))
    return RunReport(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        run_id=str(status.get("runId") or ""),
        phase=str(status.get("phase") or "Pending"),
        start_time=str(status.get("startTime") or ""),
        completion_time=str(status.get("completionTime") or ""),
        duration_seconds=_duration(status, now),
        progress=str(status.get("progress") or ""),
        streams=tuple(streams),
        clients=tuple(clients),
        totals={str(k): int(v) for k, v in (status.get("totals") or {}).items()},
    )


def render_text(report: RunReport, *, width: int = 100) -> str:
    """The report as a terminal shows it; no line is longer than ``width``."""
    title = f"Run {report.name} ({report.run_id or 'no run ID yet'}): {report.phase}"
    lines = [title, f"Namespace: {report.namespace}"]
    timing = f"Started:   {report.start_time or '-'}"
    if report.completion_time:
        timing += f"   Ended: {report.completion_time}"
    if report.duration_seconds is not None:
        timing += f"   Duration: {format_duration(report.duration_seconds)}"
    lines += [timing, f"Progress:  {report.progress or '-'} clients done"]
    if report.totals:
        lines.append(f"Totals:    {totals_text(report.totals)}")
    lines.append("")
    lines += _table(
        ("STREAM", "PHASE", "REASON", "CYCLE", "RESUMED FROM", "DONE", "JOB"),
        [
            (
                str(s.stream),
                s.phase,
                s.reason,
                s.cycle,
                s.resumed_from or "-",
                f"{s.clients_done}/{'?' if s.clients_total is None else s.clients_total}",
                s.job,
            )
            for s in report.streams
        ],
        width,
    )
    for stream in report.streams:
        next_run = f"next run: {stream.next_run}" if stream.next_run else ""
        for note in (stream.message, stream.detail, next_run):
            if note:
                lines.append(_cut(f"  [{stream.stream}] {note}", width))
    lines.append("")
    rows: list[tuple[str, ...]] = []
    notes: dict[int, str] = {}
    for client in report.clients:
        tasks = client.tasks or (TaskLine("-", "", 0, 0, 0, 0),)
        for index, task in enumerate(tasks):
            first = index == 0
            rows.append(
                (
                    str(client.stream) if first else "",
                    client.client_id if first else "",
                    client.state if first else "",
                    str(client.attempts) if first else "",
                    TASK_LABELS.get(task.task, task.task),
                    task.state,
                    *(str(getattr(task, key)) for key in COUNT_KEYS),
                    f"{task.duration_seconds:.0f}s" if task.task != "-" else "",
                )
            )
        if client.problem:
            notes[len(rows) - 1] = f"    ! {client.problem}"
    if rows:
        header = ("STREAM", "CLIENT", "STATE", "TRIES", "TASK", "RESULT", "SEEN", "OK")
        table = _table((*header, "FAIL", "SKIP", "TIME"), rows, width, squeeze=1)
        lines.append(table[0])
        for index, line in enumerate(table[1:]):
            lines.append(line)
            if index in notes:
                lines.append(_cut(notes[index], width))
    else:
        lines.append("No client detail.")
    return "\n".join(_cut(line, width) for line in lines) + "\n"


def render_html(report: RunReport) -> str:
    """The report as an HTML fragment for e-mail: every value escaped, no scripts, no styles
    beyond inline basics."""
    e = html.escape
    title = f"Run {report.name} ({report.run_id or 'no run ID yet'}): {report.phase}"
    parts = [f"<h2>{e(title)}</h2>", "<p>"]
    facts = [
        ("Namespace", report.namespace),
        ("Started", report.start_time or "-"),
        ("Ended", report.completion_time or "-"),
        (
            "Duration",
            "-" if report.duration_seconds is None else format_duration(report.duration_seconds),
        ),
        ("Progress", f"{report.progress or '-'} clients done"),
    ]
    if report.totals:
        facts.append(("Totals", totals_text(report.totals)))
    parts += [f"<b>{e(label)}:</b> {e(value)}<br>" for label, value in facts]
    parts.append("</p>")
    parts.append(
        _html_table(
            ("Stream", "Phase", "Reason", "Cycle", "Done", "Next run", "Note"),
            [
                (
                    str(s.stream),
                    s.phase,
                    s.reason,
                    s.cycle,
                    f"{s.clients_done}/{'?' if s.clients_total is None else s.clients_total}",
                    s.next_run,
                    " ".join(note for note in (s.message, s.detail) if note),
                )
                for s in report.streams
            ],
        )
    )
    rows = []
    for client in report.clients:
        for task in client.tasks or (TaskLine("-", "", 0, 0, 0, 0),):
            rows.append(
                (
                    str(client.stream),
                    client.client_id,
                    client.state,
                    str(client.attempts),
                    TASK_LABELS.get(task.task, task.task),
                    task.state,
                    *(str(getattr(task, key)) for key in COUNT_KEYS),
                    format_duration(task.duration_seconds) if task.task != "-" else "",
                    client.problem,
                )
            )
    header = ("Stream", "Client", "State", "Tries", "Task", "Task state", "Seen", "OK")
    parts.append(
        _html_table((*header, "Failed", "Skipped", "Time", "Error"), rows)
        if rows
        else "<p>No client detail.</p>"
    )
    return "\n".join(parts) + "\n"


def totals_text(totals: Mapping[str, int]) -> str:
    """``4 clients: 3 completed, 0 timed out, 0 failed, 1 quarantined``."""
    labels = (
        ("completed", "completed"),
        ("timedOut", "timed out"),
        ("failed", "failed"),
        ("quarantined", "quarantined"),
    )
    counts = ", ".join(f"{int(totals.get(key, 0))} {label}" for key, label in labels)
    return f"{int(totals.get('clients', 0))} clients: {counts}"


def as_json(report: RunReport) -> dict[str, Any]:
    """The report as plain data (``-o json``)."""
    return dataclasses.asdict(report)


def format_duration(seconds: float) -> str:
    """``42 s``, ``2.5 minutes``, ``1.3 hours``: how the records and the report say durations."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} minutes"
    return f"{seconds / 3600:.1f} hours"


def _client_lines(stream: int, view: CycleView) -> list[ClientLine]:
    lines = []
    for client_id, entry in view.clients.items():
        progress: Mapping[str, Mapping[str, Any]] = entry.get("tasks") or {}
        tasks = tuple(
            TaskLine(
                task=task,
                state=str(progress[task].get("state", "")),
                **{key: int(progress[task].get(key, 0)) for key in COUNT_KEYS},
                duration_seconds=float(progress[task].get("durationSeconds") or 0.0),
            )
            for task in ordered_tasks(progress)
        )
        lines.append(
            ClientLine(
                stream=stream,
                client_id=client_id,
                state=str(entry.get("state", "")),
                attempts=int(entry.get("attempts", 0)),
                tasks=tasks,
                problem=view.problems.get(client_id, ""),
            )
        )
    return lines


def _next_run(entry: Mapping[str, Any], own_cycle: bool) -> str:
    cycle = entry.get("cycle")
    if not cycle:
        return "starts the stream's cycle where it stands"
    if not own_cycle:
        return "continues the stream's newer cycle"
    total, done = entry.get("clientsTotal"), int(entry.get("clientsDone") or 0)
    if isinstance(total, int) and done >= total:
        return "opens a new cycle (this one is finished)"
    left = "its clients" if total is None else f"{total - done} client(s) left"
    return f"continues cycle {cycle}: {left}"


def _duration(status: Mapping[str, Any], now: datetime) -> float | None:
    start = _parse(status.get("startTime"))
    if start is None:
        return None
    end = _parse(status.get("completionTime")) or now
    return max((end - start).total_seconds(), 0.0)


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], width: int, *, squeeze: int = -1
) -> list[str]:
    """Left-aligned columns two spaces apart; column ``squeeze`` (default: the last) is cut to
    make each line fit ``width``."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    index = squeeze % len(widths)
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    if excess > 0:
        widths[index] = max(widths[index] - excess, len(header[index]))
    return [
        "  ".join(_cut(cell, w).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cell = 'style="border:1px solid #ccc;padding:2px 6px;text-align:left"'
    head = "".join(f"<th {cell}>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td {cell}>{html.escape(value)}</td>" for value in row) + "</tr>"
        for row in rows
    )
    return f'<table style="border-collapse:collapse"><tr>{head}</tr>{body}</table>'


def _cut(text: str, width: int) -> str:
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= width else text[: width - 1] + _ELLIPSIS
