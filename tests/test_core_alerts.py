"""core.alerts: which e-mails a run owes, under keys that make each one once per event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from smart_resume.core.alerts import (
    POSTED_BY_LIFECYCLE,
    AlertKind,
    awaits_clock,
    due_alerts,
    inherited,
    may_owe_mail,
    one_line,
)
from smart_resume.core.checkpoint import decode_client
from smart_resume.core.report import CycleView, build_report, render_html

NOW = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
EVIL = 'evil\r\nBcc: victim@example.com <script>alert("x")</script>'


def _run(phase: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "nightly", "namespace": "runs"},
        "status": {
            "runId": "SR-261201-003",
            "phase": phase,
            "startTime": "2026-12-01T22:00:00Z",
            "streams": {
                "1": {"phase": "TimedOut", "reason": "DeadlineExceeded", "cycle": "SR-261201-003"},
                "2": {"phase": "Failed", "reason": "StartFailed", "message": "quota"},
            },
            **status,
        },
    }


def _alerts(run: dict[str, Any], clients: dict[str, str]) -> list[Any]:
    view = CycleView(
        "SR-261201-003",
        {cid: decode_client(text) for cid, text in clients.items()},
        problems={EVIL: "boom\nBcc: x"},
    )
    report = build_report(run, {1: view}, now=NOW)
    return due_alerts(report, run["status"], airtable_alert_after=timedelta(minutes=15), now=NOW)


def test_due_alerts__every_kind_with_a_stable_key() -> None:
    """Each event yields one alert whose key is the same on every look."""
    run = _run(
        "Failed",
        completionTime="2026-12-01T22:30:00Z",
        airtable={"failingSince": "2026-12-01T22:40:00Z", "failures": 5},
    )
    run["status"]["streams"]["1"]["takenOverFrom"] = "runs/old/uid"
    clients = {"acme": "TimedOut 1 ls=T1/0/0/0", "globex": "Quarantined 3 ls=F1/0/1/0"}

    first, again = _alerts(run, clients), _alerts(run, clients)

    assert [a.key for a in first] == [a.key for a in again]
    assert {a.kind for a in first} == set(AlertKind)
    keys = {a.key for a in first}
    assert "timedOut/SR-261201-003/1/acme" in keys
    assert "quarantined/SR-261201-003/1/globex" in keys
    assert "airtableFailing/2026-12-01T22:40:00Z" in keys
    assert inherited(keys) == {
        "timedOut/SR-261201-003/1/acme",
        "quarantined/SR-261201-003/1/globex",
    }


def test_due_alerts__airtable_alert_waits_for_the_threshold() -> None:
    """A sync failing for less than the threshold raises no alert yet."""
    run = _run("Running", airtable={"failingSince": "2026-12-01T22:50:00Z"})
    assert all(a.kind is not AlertKind.AIRTABLE_SYNC_FAILING for a in _alerts(run, {}))


def test_alerts__client_names_cannot_inject_headers_or_html() -> None:
    """A client ID with CR/LF and markup: subjects stay one line, HTML is escaped."""
    alerts = _alerts(_run("Running"), {EVIL: "Quarantined 3"})
    quarantine = next(a for a in alerts if a.kind is AlertKind.CLIENT_QUARANTINED)
    assert "\r" not in quarantine.subject and "\n" not in quarantine.subject
    assert "<script>" not in quarantine.html and "&lt;script&gt;" in quarantine.html
    assert one_line("a\r\nb\x00c") == "a b c"


def test_render_html__escapes_every_value() -> None:
    """The report's HTML never carries a client's markup through."""
    run = _run("TimedOut", completionTime="2026-12-01T22:30:00Z")
    view = CycleView("SR-261201-003", {EVIL: decode_client("Completed 1 ls=C1/1/0/0/2")})
    html = render_html(build_report(run, {1: view}, now=NOW))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "next run" in html.lower() or "Next run" in html


def test_may_owe_mail__stops_once_the_report_is_handled() -> None:
    """A finished run is looked at until its report was sent (or given up)."""
    assert may_owe_mail({"runId": "x", "phase": "Running"})
    assert may_owe_mail({"runId": "x", "phase": "Succeeded"})
    assert not may_owe_mail(
        {"runId": "x", "phase": "Succeeded", "notifications": {"sent": {"report": "t"}}}
    )
    assert not may_owe_mail({"phase": "Running"})


def test_awaits_clock__only_while_a_retry_or_time_can_make_an_e_mail_due() -> None:
    """A quiet Running run needs no timer; a send waiting for its next try, Airtable failing
    with its alert unsent, or a finished run's unsent report do; nothing once all is sent."""
    assert not awaits_clock({"runId": "x", "phase": "Running"})
    assert awaits_clock(
        {"runId": "x", "phase": "Running", "notifications": {"nextAttemptAt": "2026-12-01T23Z"}}
    )
    failing = {"failingSince": "2026-12-01T22:40:00Z"}
    assert awaits_clock({"runId": "x", "phase": "Running", "airtable": failing})
    alerted = {"sent": {"airtableFailing/2026-12-01T22:40:00Z": "t"}}
    assert not awaits_clock(
        {"runId": "x", "phase": "Running", "airtable": failing, "notifications": alerted}
    )
    assert awaits_clock({"runId": "x", "phase": "Succeeded"})
    reported = {"runId": "x", "phase": "Succeeded", "notifications": {"sent": {"report": "t"}}}
    assert not awaits_clock(reported)
    assert not awaits_clock({"phase": "Failed"})


def test_posted_by_lifecycle__the_client_and_airtable_alerts_are_events_of_their_own() -> None:
    """Without e-mail, only the alerts no lifecycle Event tells of become Events."""
    assert set(AlertKind) - POSTED_BY_LIFECYCLE == {
        AlertKind.CLIENT_TIMED_OUT,
        AlertKind.CLIENT_QUARANTINED,
        AlertKind.AIRTABLE_SYNC_FAILING,
    }
