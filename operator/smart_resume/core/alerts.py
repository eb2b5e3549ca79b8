"""PURE: which alert and report e-mails a run owes, each under a key that names its event.

An alert's key is the same every time the same event is looked at (``quarantined/<cycle>/
<stream>/<client>``, ``report``, ...), so the notifier sends each once: it records the keys it
sent in the run's status and skips them on every later look, retry or operator restart. A
client's timeouts are one event per cycle (its first one seen: a client that times out again is
quarantined, which is an alert of its own).

Subjects are single lines with every control character (a newline in a client name: header
injection) replaced; HTML bodies escape every value; nothing here ever sees a secret.
"""

from __future__ import annotations

import dataclasses
import enum
import html
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from smart_resume.core.report import RunReport, render_html, render_text
from smart_resume.core.status import Phase, is_terminal

SUBJECT_PREFIX: Final = "[smart-resume]"
SUBJECT_MAX_CHARS: Final = 200
REPORT_KEY: Final = "report"
_CYCLE_SCOPED: Final = ("quarantined/", "timedOut/")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


class AlertKind(enum.StrEnum):
    CLIENT_TIMED_OUT = "ClientTimedOut"
    CLIENT_QUARANTINED = "ClientQuarantined"
    DEADLINE_REACHED = "DeadlineReached"
    STREAM_FAILED = "StreamFailed"
    RUN_FAILED = "RunFailed"
    STALE_LOCK_TAKEN_OVER = "StaleLockTakenOver"
    AIRTABLE_SYNC_FAILING = "AirtableSyncFailing"
    RUN_REPORT = "RunReport"


POSTED_BY_LIFECYCLE: Final = frozenset(
    {
        AlertKind.DEADLINE_REACHED,
        AlertKind.STREAM_FAILED,
        AlertKind.RUN_FAILED,
        AlertKind.STALE_LOCK_TAKEN_OVER,
        AlertKind.RUN_REPORT,
    }
)
"""The kinds whose event the lifecycle posts as a Kubernetes Event of its own (``StreamTimedOut``
and ``RunTimedOut``, ``StreamFailed``, ``RunFailed``, ``StaleLockTakenOver``, ``Run<phase>``
with the clients done): with no e-mail recipient they are log lines, not a second Event."""


@dataclasses.dataclass(frozen=True)
class Alert:
    key: str
    kind: AlertKind
    subject: str
    text: str
    html: str


def one_line(text: str, limit: int = SUBJECT_MAX_CHARS) -> str:
    """``text`` as a safe header value: control characters become spaces, cut to ``limit``."""
    flat = " ".join(_CONTROL.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def may_owe_mail(status: Mapping[str, Any]) -> bool:
    """Whether a look at the run can find an e-mail due (cheap: the status only)."""
    if not status.get("runId"):
        return False
    if not is_terminal(status.get("phase") or Phase.PENDING):
        return True
    return REPORT_KEY not in _handled(status) or _airtable_alert_pending(status)


def awaits_clock(status: Mapping[str, Any]) -> bool:
    """Whether the run may owe an e-mail that no event of the run brings: a failed send waiting
    for its next try, Airtable records failing long enough for their alert, or the report of a
    run that has ended (whose events are over, should a look at it have failed)."""
    if not may_owe_mail(status):
        return False
    notes = status.get("notifications") or {}
    ended = is_terminal(status.get("phase") or Phase.PENDING)
    return bool(notes.get("nextAttemptAt")) or ended or _airtable_alert_pending(status)


def due_alerts(
    report: RunReport,
    status: Mapping[str, Any],
    *,
    airtable_alert_after: timedelta,
    now: datetime,
) -> list[Alert]:
    """Every alert the run's state calls for now, sent or not (the caller skips sent keys)."""
    run = f"run {report.run_id} ({report.namespace}/{report.name})"
    alerts: list[Alert] = []
    cycles = {s.stream: s.cycle for s in report.streams}
    for client in report.clients:
        cycle = cycles.get(client.stream, "")
        where = f"client {client.client_id!r} of stream {client.stream}"
        if client.state == "Quarantined":
            alerts.append(
                _alert(
                    f"quarantined/{cycle}/{client.stream}/{client.client_id}",
                    AlertKind.CLIENT_QUARANTINED,
                    f"{where} quarantined in {run}",
                    f"{where} was quarantined after {client.attempts} attempt(s) in cycle "
                    f"{cycle}; it is skipped until the next cycle.",
                    client.problem,
                )
            )
        elif client.state == "TimedOut" or any(t.state == "TimedOut" for t in client.tasks):
            alerts.append(
                _alert(
                    f"timedOut/{cycle}/{client.stream}/{client.client_id}",
                    AlertKind.CLIENT_TIMED_OUT,
                    f"{where} timed out in {run}",
                    f"{where} hit the per-client timeout (attempt {client.attempts}); it is "
                    "retried later in the cycle.",
                    client.problem,
                )
            )
    timed_out = [s.stream for s in report.streams if s.phase == Phase.TIMED_OUT]
    if timed_out:
        alerts.append(
            _alert(
                "deadline",
                AlertKind.DEADLINE_REACHED,
                f"{run} reached its deadline",
                f"The deadline stopped stream(s) {_streams(timed_out)} with clients left; the "
                "next run continues where they stopped.",
            )
        )
    for stream in report.streams:
        if stream.phase == Phase.FAILED:
            alerts.append(
                _alert(
                    f"streamFailed/{stream.stream}",
                    AlertKind.STREAM_FAILED,
                    f"stream {stream.stream} of {run} failed",
                    f"Stream {stream.stream} failed ({stream.reason}).",
                    stream.message,
                )
            )
    if report.phase == Phase.FAILED:
        alerts.append(
            _alert(
                "runFailed",
                AlertKind.RUN_FAILED,
                f"{run} failed",
                f"The run failed: {report.progress} clients done.",
            )
        )
    for key, entry in sorted((status.get("streams") or {}).items()):
        holder = (entry or {}).get("takenOverFrom")
        if holder:
            alerts.append(
                _alert(
                    f"takeover/{key}",
                    AlertKind.STALE_LOCK_TAKEN_OVER,
                    f"{run} took over the stale lock of stream {key}",
                    f"The Lease of stream {key} was held by {holder!r} but not renewed for its "
                    "whole duration; this run took it over.",
                )
            )
    airtable = status.get("airtable") or {}
    failing = airtable.get("failingSince")
    if failing and now - _parse(failing) >= airtable_alert_after:
        alerts.append(
            _alert(
                _airtable_key(failing),
                AlertKind.AIRTABLE_SYNC_FAILING,
                f"Airtable records of {run} failing since {failing}",
                f"The run's Airtable records have not synced since {failing} "
                f"({int(airtable.get('failures') or 0)} tries); the run itself goes on and "
                "the records catch up once Airtable answers.",
                str(airtable.get("error") or ""),
            )
        )
    if is_terminal(report.phase):
        alerts.append(
            Alert(
                key=REPORT_KEY,
                kind=AlertKind.RUN_REPORT,
                subject=_subject(f"{run}: {report.phase}, {report.progress} clients done"),
                text=render_text(report),
                html=render_html(report),
            )
        )
    return alerts


def inherited(keys: Iterable[str]) -> set[str]:
    """The keys of an earlier run that hold for the run continuing its cycle: the cycle's own
    client events (their keys name the cycle), not that run's deadline, failure or report."""
    return {key for key in keys if key.startswith(_CYCLE_SCOPED)}


def unsent(alerts: Iterable[Alert], handled: Iterable[str]) -> list[Alert]:
    done = set(handled)
    return [alert for alert in alerts if alert.key not in done]


def _alert(key: str, kind: AlertKind, summary: str, detail: str, error: str = "") -> Alert:
    text = f"{detail}\n" + (f"\nLast error: {error}\n" if error else "")
    body = f"<p>{html.escape(detail)}</p>" + (
        f"<p><b>Last error:</b> {html.escape(error)}</p>" if error else ""
    )
    return Alert(key=key, kind=kind, subject=_subject(summary), text=text, html=body)


def _subject(summary: str) -> str:
    return one_line(f"{SUBJECT_PREFIX} {summary}")


def _streams(streams: Iterable[int]) -> str:
    return ", ".join(str(s) for s in streams)


def _handled(status: Mapping[str, Any]) -> set[str]:
    notes = status.get("notifications") or {}
    return {*(notes.get("sent") or {}), *(notes.get("failed") or {})}


def _airtable_alert_pending(status: Mapping[str, Any]) -> bool:
    failing = (status.get("airtable") or {}).get("failingSince")
    return bool(failing and _airtable_key(failing) not in _handled(status))


def _airtable_key(failing_since: str) -> str:
    return f"airtableFailing/{failing_since}"


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))
