"""Alert and report e-mails: each sent once per event, never in a run's way.

On every look the notifier derives the alerts the run's state calls for
(``core.alerts.due_alerts``), leaves out those whose key is already in
``status.notifications.sent`` or ``failed`` (or in the sent list of the run whose cycle it
continues), and sends the rest, recording each key right after its send succeeded.

When: on the events of the run, its Jobs and its checkpoints, the notifier looks at the run and
its checkpoints as the operator's indices hold them (``controller.projection``: no API read). A
kopf timer looks again every few seconds only while something is due with no event to bring it
(``core.alerts.awaits_clock``: a failed send's next try, the Airtable alert, a finished run's
report). What this process last wrote to ``status.notifications`` counts over an older copy of
the run, so a late watch event never sends a key twice.

The one window for a duplicate: the mail service accepted a message and the operator died
before the key was written to the run's status (one API call later); the next operator sends
it again.

A mail outage never touches the run: a failed send is retried on later looks with a doubling
delay and, after ``SMART_RESUME_EMAIL_MAX_ATTEMPTS``, given up visibly (Event ``EmailFailed``,
condition ``EmailDelivered=False``). With no recipient configured, alerts are log lines, and
Events unless the lifecycle posts one of its own for the same thing
(``core.alerts.POSTED_BY_LIFECYCLE``); their keys are recorded the same way, so each is once.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf

from smart_resume.config import Settings
from smart_resume.controller import metrics
from smart_resume.controller.known import Known
from smart_resume.controller.projection import (
    Projection,
    indexed_report,
    is_after,
    now_utc,
    write_status,
)
from smart_resume.core.alerts import (
    POSTED_BY_LIFECYCLE,
    Alert,
    due_alerts,
    inherited,
    may_owe_mail,
    unsent,
)
from smart_resume.core.errors import IntegrationError
from smart_resume.core.status import ConditionStatus, ConditionType, format_time
from smart_resume.integrations.email import Email, Mailer
from smart_resume.kube.runs import Runs

log = logging.getLogger("smart_resume.notifications")

MAX_RETRY_SECONDS = 600.0


class Notifier(Projection):
    def __init__(self, mailer: Mailer | None, runs: Runs, settings: Settings) -> None:
        self._mailer = mailer
        self._runs = runs
        self._email = settings.email
        self._airtable_alert_after = datetime.timedelta(
            seconds=settings.airtable.alert_after_seconds
        )
        super().__init__("notifications", thread="notifications")

    def _project(self, run: Mapping[str, Any], known: Known) -> None:
        """Send what the run owes (a slow mail server holds this projection's thread only)."""
        now = now_utc()
        status = self._written.status(run)
        notes = status["notifications"]
        if not may_owe_mail(status) or is_after(notes.get("nextAttemptAt"), now):
            return
        handled = {
            *(notes.get("sent") or {}),
            *(notes.get("failed") or {}),
            *self._sent_by_predecessors(known, run["metadata"]["namespace"], status),
        }
        report = indexed_report(run, known, now)
        alerts = unsent(
            due_alerts(report, status, airtable_alert_after=self._airtable_alert_after, now=now),
            handled,
        )
        if self._mailer is None:
            self._log_only(run, alerts, now)
            return
        for alert in alerts:
            written = self._deliver(self._mailer, run, alert, notes, now)
            if written is None:
                return
            run, notes = written, self._written.of(written)  # the key is written: carry on

    def _log_only(
        self, run: Mapping[str, Any], alerts: list[Alert], now: datetime.datetime
    ) -> None:
        """No recipient: each alert is a log line, and an Event unless the lifecycle posts its
        own; their keys are recorded in one write."""
        if not alerts:
            return
        for alert in alerts:
            if alert.kind not in POSTED_BY_LIFECYCLE:
                kopf.warn(cast(kopf.Body, run), reason=alert.kind.value, message=alert.subject)
            log.warning(
                "alert (no e-mail recipient)", extra={"key": alert.key, "subject": alert.subject}
            )
        self._record(run, alerts, None, now)

    def _deliver(
        self,
        mailer: Mailer,
        run: Mapping[str, Any],
        alert: Alert,
        notes: Mapping[str, Any],
        now: datetime.datetime,
    ) -> dict[str, Any] | None:
        """Send ``alert`` and record it; the run as written, or None when the send failed."""
        try:
            mailer.send(
                Email(
                    subject=alert.subject, text=alert.text, html=alert.html, kind=alert.kind.value
                )
            )
        except IntegrationError as exc:
            metrics.EMAILS_FAILED.labels(kind=alert.kind.value).inc()
            self._failed(run, alert, notes, exc, now_utc())  # its retry counts from now
            return None
        metrics.EMAILS_SENT.labels(kind=alert.kind.value).inc()
        log.info("e-mail sent", extra={"key": alert.key, "kind": alert.kind.value})
        return self._record(
            run, [alert], (ConditionStatus.TRUE, "Delivered", "every e-mail due was sent"), now
        )

    def _record(
        self,
        run: Mapping[str, Any],
        alerts: list[Alert],
        condition: tuple[str, str, str] | None,
        now: datetime.datetime,
    ) -> dict[str, Any]:
        sent = {
            "sent": {alert.key: format_time(now) for alert in alerts},
            "attempts": {alert.key: None for alert in alerts},
            "nextAttemptAt": None,
            "lastError": None,
        }
        written = write_status(
            self._runs,
            run,
            lambda _: {"notifications": sent},
            condition=None if condition is None else (ConditionType.EMAIL_DELIVERED, *condition),
            now=now,
        )
        self._written.remember(written)
        return written

    def _failed(
        self,
        run: Mapping[str, Any],
        alert: Alert,
        notes: Mapping[str, Any],
        exc: IntegrationError,
        now: datetime.datetime,
    ) -> None:
        attempts = int((notes.get("attempts") or {}).get(alert.key) or 0) + 1
        if attempts >= self._email.max_attempts:
            message = f"gave up on {alert.kind.value} e-mail after {attempts} tries: {exc}"
            kopf.warn(cast(kopf.Body, run), reason="EmailFailed", message=message)
            log.error("e-mail given up", extra={"key": alert.key, "error": str(exc)})
            changes: dict[str, Any] = {
                "failed": {alert.key: format_time(now)},
                "attempts": {alert.key: None},
                "nextAttemptAt": None,
                "lastError": str(exc)[:1000],
            }
            reason = "GaveUp"
        else:
            delay = min(self._email.retry_seconds * 2 ** (attempts - 1), MAX_RETRY_SECONDS)
            message = (
                f"{alert.kind.value} e-mail: try {attempts} failed, next in {delay:.0f} s: {exc}"
            )
            log.warning("e-mail not sent", extra={"key": alert.key, "error": str(exc)})
            changes = {
                "attempts": {alert.key: attempts},
                "nextAttemptAt": format_time(now + datetime.timedelta(seconds=delay)),
                "lastError": str(exc)[:1000],
            }
            reason = "Retrying"
        written = write_status(
            self._runs,
            run,
            lambda _: {"notifications": changes},
            condition=(ConditionType.EMAIL_DELIVERED, ConditionStatus.FALSE, reason, message),
            now=now,
        )
        self._written.remember(written)

    def _sent_by_predecessors(
        self, known: Known, namespace: str, status: Mapping[str, Any]
    ) -> set[str]:
        """Keys sent by the runs whose cycles this run continues (cycle-keyed alerts)."""
        keys: set[str] = set()
        for entry in (status.get("streams") or {}).values():
            previous = (entry or {}).get("resumedFrom")
            earlier = known.run_named(namespace, previous) if previous else None
            if earlier is not None:  # else pruned or deleted: its alerts may be repeated (README)
                keys |= inherited(self._written.of(earlier).get("sent") or {})
        return keys
