"""Alert and report e-mails: each sent once per event, never in a run's way.

On every look (a kopf timer per run, while ``core.alerts.may_owe_mail``) the notifier derives the
alerts the run's state calls for (``core.alerts.due_alerts``), leaves out those whose key is
already in ``status.notifications.sent`` or ``failed`` (or in the sent list of the run whose
cycle it continues), and sends the rest, recording each key right after its send succeeded.

The one window for a duplicate: the mail service accepted a message and the operator died
before the key was written to the run's status (one API call later); the next operator sends
it again.

A mail outage never touches the run: a failed send is retried on later looks with a doubling
delay and, after ``SMART_RESUME_EMAIL_MAX_ATTEMPTS``, given up visibly (Event ``EmailFailed``,
condition ``EmailDelivered=False``). With no recipient configured, alerts are Events and log
lines only (recorded the same way, so they are posted once too).
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Mapping
from typing import Any, cast

import kopf
from kubernetes import client

from smart_resume.config import Settings
from smart_resume.controller import metrics
from smart_resume.controller.projection import is_after, now_utc, run_report, write_status
from smart_resume.core.alerts import Alert, AlertKind, due_alerts, inherited, unsent
from smart_resume.core.errors import IntegrationError
from smart_resume.core.status import ConditionStatus, ConditionType, format_time
from smart_resume.integrations.email import Email, Mailer
from smart_resume.kube.runs import Runs
from smart_resume.kube.streams import Checkpoints

log = logging.getLogger("smart_resume.notifications")

MAX_RETRY_SECONDS = 600.0


class Notifier:
    def __init__(
        self,
        mailer: Mailer | None,
        runs: Runs,
        checkpoints: Checkpoints,
        settings: Settings,
    ) -> None:
        self._mailer = mailer
        self._runs = runs
        self._checkpoints = checkpoints
        self._email = settings.email
        self._airtable_alert_after = datetime.timedelta(
            seconds=settings.airtable.alert_after_seconds
        )
        self._busy = threading.Lock()

    def notify(self, namespace: str, name: str) -> None:
        """Send what the run owes; one run at a time, so a slow mail server holds one thread."""
        if not self._busy.acquire(blocking=False):
            return
        try:
            self._notify(namespace, name)
        finally:
            self._busy.release()

    def _notify(self, namespace: str, name: str) -> None:
        now = now_utc()
        run, report = run_report(self._runs, self._checkpoints, namespace, name, now)
        status = run.get("status") or {}
        notes = status.get("notifications") or {}
        if is_after(notes.get("nextAttemptAt"), now):
            return
        handled = {
            *(notes.get("sent") or {}),
            *(notes.get("failed") or {}),
            *self._sent_by_predecessors(namespace, status),
        }
        alerts = unsent(
            due_alerts(report, status, airtable_alert_after=self._airtable_alert_after, now=now),
            handled,
        )
        for alert in alerts:
            if not self._deliver(run, alert, notes, now):
                return
            run = self._runs.get(namespace, name)  # the key is written: carry on from there

    def _deliver(
        self, run: Mapping[str, Any], alert: Alert, notes: Mapping[str, Any], now: datetime.datetime
    ) -> bool:
        body = cast(kopf.Body, run)
        if self._mailer is None:
            # kopf.event, not kopf.info: a Normal Event whatever kopf's posting level.
            kind = "Normal" if alert.kind is AlertKind.RUN_REPORT else "Warning"
            kopf.event(body, type=kind, reason=alert.kind.value, message=alert.subject)
            log.warning(
                "alert (no e-mail recipient)", extra={"key": alert.key, "subject": alert.subject}
            )
            self._record(run, alert, None, now)
            return True
        try:
            self._mailer.send(
                Email(
                    subject=alert.subject, text=alert.text, html=alert.html, kind=alert.kind.value
                )
            )
        except IntegrationError as exc:
            metrics.EMAILS_FAILED.labels(kind=alert.kind.value).inc()
            self._failed(run, alert, notes, exc, now)
            return False
        metrics.EMAILS_SENT.labels(kind=alert.kind.value).inc()
        log.info("e-mail sent", extra={"key": alert.key, "kind": alert.kind.value})
        self._record(
            run, alert, (ConditionStatus.TRUE, "Delivered", "every e-mail due was sent"), now
        )
        return True

    def _record(
        self,
        run: Mapping[str, Any],
        alert: Alert,
        condition: tuple[str, str, str] | None,
        now: datetime.datetime,
    ) -> None:
        sent = {
            "sent": {alert.key: format_time(now)},
            "attempts": {alert.key: None},
            "nextAttemptAt": None,
            "lastError": None,
        }
        write_status(
            self._runs,
            run,
            lambda _: {"notifications": sent},
            condition=None if condition is None else (ConditionType.EMAIL_DELIVERED, *condition),
            now=now,
        )

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
        write_status(
            self._runs,
            run,
            lambda _: {"notifications": changes},
            condition=(ConditionType.EMAIL_DELIVERED, ConditionStatus.FALSE, reason, message),
            now=now,
        )

    def _sent_by_predecessors(self, namespace: str, status: Mapping[str, Any]) -> set[str]:
        """Keys sent by the runs whose cycles this run continues (cycle-keyed alerts)."""
        keys: set[str] = set()
        for entry in (status.get("streams") or {}).values():
            previous = (entry or {}).get("resumedFrom")
            if not previous:
                continue
            try:
                earlier = self._runs.get(namespace, previous)
            except client.ApiException as exc:
                if exc.status == 404:
                    continue  # pruned or deleted: its alerts may be repeated (README)
                raise
            notes = (earlier.get("status") or {}).get("notifications") or {}
            keys |= inherited(notes.get("sent") or {})
        return keys
