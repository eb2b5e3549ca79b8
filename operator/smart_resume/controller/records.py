"""The run records in the master base: the operator is their one writer.

For each run the recorder keeps three tables true (``core.records`` decides what they say):
Job Tracking (one record per run), Client Run Results (one per client per run, linked to the
run's record) and the per-task "last run" fields of Clients. It syncs when the run's phase
differs from the phase its records show (``status.airtable.syncedPhase``): once when the run
starts running and once when it ends (and after every suspension or resumption).

Every write is a ``batch_upsert`` on the table's key (10 records per request), so a sync that
was cut anywhere (an operator killed mid-way, a timeout after Airtable applied a write) is
simply done again: no duplicate, and a record missing for any reason is created. The sync state
lives in the run's status, so a restarted operator carries on where the last one stopped.

When: on the events of the run, its Jobs and its checkpoints, the recorder looks at the run as
the operator's indices hold it (``controller.projection``: no API read) and syncs only when the
records lag; a kopf timer looks again every few seconds only while they still lag (a failed
sync waits for its ``nextAttemptAt``). What this process last wrote to ``status.airtable``
counts over an older copy of the run, so a late watch event never syncs a phase twice.

Rate budget: the recorder runs one sync at a time for the whole operator and paces its own
requests to ``SMART_RESUME_AIRTABLE_RECORDS_REQUESTS_PER_SECOND`` (2 by default); the workers
read the Clients table once per run each (one request per 100 clients) and write only to the
clients' own bases, so the master base stays under Airtable's 5 requests per second together.

A failing sync never touches the run itself: the run goes on, ``AirtableSynced`` turns False
with the reason, and the sync is tried again with a doubling delay (10 s to 5 min).
"""

from __future__ import annotations

import datetime
import logging
import math
from collections.abc import Mapping
from typing import Any, Final, cast

import kopf

from smart_resume.config import AirtableSettings
from smart_resume.controller import metrics
from smart_resume.controller.known import Known
from smart_resume.controller.projection import (
    Projection,
    indexed_report,
    is_after,
    now_utc,
    write_status,
)
from smart_resume.core.errors import ConfigurationError, IntegrationError, PermanentError
from smart_resume.core.records import ClientResult, RunRecord, RunRecords, build_records
from smart_resume.core.report import format_duration
from smart_resume.core.status import ConditionStatus, ConditionType, Phase, format_time
from smart_resume.integrations.airtable import AirtableGateway
from smart_resume.integrations.airtable_fields import (
    ClientRunResultsTable,
    ClientsTable,
    JobTrackingTable,
)
from smart_resume.integrations.pacing import RequestPacer
from smart_resume.kube.runs import Runs

log = logging.getLogger("smart_resume.records")

BATCH: Final = 10
MAX_RETRY_SECONDS: Final = 300.0
TABLES: Final = (ClientsTable.TABLE, JobTrackingTable.TABLE, ClientRunResultsTable.TABLE)


def records_due(status: Mapping[str, Any]) -> bool:
    """Whether the run's records lag behind its phase (nothing to record before it runs)."""
    phase = status.get("phase") or Phase.PENDING
    if not status.get("runId") or phase == Phase.PENDING:
        return False
    return bool((status.get("airtable") or {}).get("syncedPhase") != phase)


class RunRecorder(Projection):
    def __init__(
        self,
        gateway: AirtableGateway,
        runs: Runs,
        settings: AirtableSettings,
    ) -> None:
        self._gateway = gateway
        self._runs = runs
        self._settings = settings
        super().__init__("airtable", thread="records")

    @classmethod
    def start(cls, settings: AirtableSettings, runs: Runs) -> RunRecorder | None:
        """A recorder whose master base and tables answered, or None when Airtable is not
        configured for the operator.

        Raises:
            ConfigurationError: the key, the base or a table is wrong (a clear start-up error).
        """
        if not (settings.api_key and settings.master_base_id):
            log.warning(
                "run records are off: the operator has no SMART_RESUME_AIRTABLE_API_KEY "
                "or _MASTER_BASE_ID"
            )
            return None
        pacer = RequestPacer(
            requests_per_second=settings.records_requests_per_second,
            penalty_seconds=settings.rate_limit_penalty_seconds,
        )
        gateway = AirtableGateway(
            settings,
            pacer=pacer,
            rate_limited_attempts=1,  # a 429 ends the sync: the next one waits, not a thread
            on_response=lambda status: metrics.AIRTABLE_REQUESTS.labels(
                status=metrics.status_class(status)
            ).inc(),
        )
        try:
            gateway.check_tables(TABLES)
        except PermanentError as exc:
            raise ConfigurationError(
                f"the master base {settings.master_base_id} cannot hold run records: {exc} "
                f"(it needs the tables {', '.join(TABLES)})"
            ) from exc
        except IntegrationError as exc:
            log.warning("Airtable did not answer the start-up check; syncs will retry: %s", exc)
        return cls(gateway, runs, settings)

    def _project(self, run: Mapping[str, Any], known: Known) -> None:
        """Bring the run's records up to its phase, or record why not."""
        now = now_utc()
        status = self._written.status(run)
        state = status["airtable"]
        if not records_due(status) or is_after(state.get("nextAttemptAt"), now):
            return
        report = indexed_report(run, known, now)
        records = build_records(report)
        try:
            requests = self._write(records)
        except IntegrationError as exc:
            self._failed(run, state, exc, now_utc())  # its retry counts from now, not the start
            return
        log.info(
            "run records synced",
            extra={"run_id": report.run_id, "phase": report.phase, "requests": requests},
        )
        synced = {
            "syncedPhase": report.phase,
            "syncedAt": format_time(now),
            "requests": requests,
            "failingSince": None,
            "failures": None,
            "nextAttemptAt": None,
            "error": None,
        }
        written = write_status(
            self._runs,
            run,
            lambda _: {"airtable": synced},
            condition=(
                ConditionType.AIRTABLE_SYNCED,
                ConditionStatus.TRUE,
                "Synced",
                f"Job Tracking {report.run_id} and {len(records.clients)} client result(s) "
                f"show phase {report.phase}",
            ),
            now=now,
        )
        self._written.remember(written)

    def _write(self, records: RunRecords) -> int:
        base = self._gateway.master_base_id
        run = self._gateway.batch_upsert(
            base,
            JobTrackingTable.TABLE,
            [job_tracking_fields(records.run)],
            [JobTrackingTable.RUN_ID],
        )
        link = [run["records"][0]["id"]]
        results = [client_result_fields(c, link) for c in records.clients]
        if results:
            self._gateway.batch_upsert(
                base, ClientRunResultsTable.TABLE, results, [ClientRunResultsTable.RUN_CLIENT_KEY]
            )
        clients = [client_fields(c, records.last_run_date) for c in records.clients if c.tasks]
        if clients:
            self._gateway.batch_upsert(base, ClientsTable.TABLE, clients, [ClientsTable.CLIENT_ID])
        return 1 + math.ceil(len(results) / BATCH) + math.ceil(len(clients) / BATCH)

    def _failed(
        self,
        run: Mapping[str, Any],
        state: Mapping[str, Any],
        exc: IntegrationError,
        now: datetime.datetime,
    ) -> None:
        failures = int(state.get("failures") or 0) + 1
        delay = min(self._settings.records_retry_seconds * 2 ** (failures - 1), MAX_RETRY_SECONDS)
        reason = _reason(exc)
        message = f"{exc}; try {failures}, next in {delay:.0f} s; the run goes on"
        log.warning("run records not synced", extra={"reason": reason, "error": str(exc)})
        if failures == 1:
            kopf.warn(cast(kopf.Body, run), reason="AirtableSyncFailed", message=message)
        failing = {
            "failingSince": state.get("failingSince") or format_time(now),
            "failures": failures,
            "nextAttemptAt": format_time(now + datetime.timedelta(seconds=delay)),
            "error": str(exc)[:1000],
        }
        written = write_status(
            self._runs,
            run,
            lambda _: {"airtable": failing},
            condition=(ConditionType.AIRTABLE_SYNCED, ConditionStatus.FALSE, reason, message),
            now=now,
        )
        self._written.remember(written)


def job_tracking_fields(run: RunRecord) -> dict[str, Any]:
    t = JobTrackingTable
    return {
        t.RUN_ID: run.run_id,
        t.STATUS: run.status,
        t.STREAMS: run.streams,
        t.START_TIME: run.start_time or None,
        t.END_TIME: run.end_time or None,
        t.DURATION: None if run.duration_seconds is None else format_duration(run.duration_seconds),
        t.DURATION_SECONDS: None if run.duration_seconds is None else round(run.duration_seconds),
        t.CLIENTS_PROCESSED: run.clients_processed,
        t.CLIENTS_COMPLETED: run.clients_completed,
        t.CLIENTS_TIMED_OUT: run.clients_timed_out,
        t.CLIENTS_FAILED: run.clients_failed,
        t.CLIENTS_QUARANTINED: run.clients_quarantined,
        t.LEADS_EXAMINED: run.leads_examined,
        t.LEADS_SCORED: run.leads_scored,
        t.POSTS_HARVESTED: run.posts_harvested,
        t.POSTS_SCORED: run.posts_scored,
        t.SUCCESS_RATE: run.success_rate,
        t.RUN_NAMESPACE: run.namespace,
        t.RUN_NAME: run.name,
        t.NOTES: run.notes,
    }


def client_result_fields(result: ClientResult, job_tracking: list[str]) -> dict[str, Any]:
    t = ClientRunResultsTable
    return {
        t.RUN_CLIENT_KEY: result.key,
        t.JOB_TRACKING: job_tracking,
        t.RUN_ID: result.run_id,
        t.CLIENT_ID: result.client_id,
        t.STREAM: result.stream,
        t.STATE: result.state,
        t.ATTEMPTS: result.attempts,
        t.TASK_STATES: result.task_states,
        t.LEADS_EXAMINED: result.leads_examined,
        t.LEADS_SCORED: result.count("lead_scoring"),
        t.POSTS_HARVESTED: result.count("post_harvesting"),
        t.POSTS_SCORED: result.count("post_scoring"),
        t.LEAD_SCORING_SECONDS: result.seconds("lead_scoring"),
        t.POST_HARVESTING_SECONDS: result.seconds("post_harvesting"),
        t.POST_SCORING_SECONDS: result.seconds("post_scoring"),
        t.DURATION: format_duration(result.duration_seconds),
        t.ERROR: result.error or None,
    }


def client_fields(result: ClientResult, last_run_date: str) -> dict[str, Any]:
    fields: dict[str, Any] = {ClientsTable.CLIENT_ID: result.client_id}
    for task in result.tasks:
        names = ClientsTable.TASKS[task.task]
        fields[names.job_status] = task.job_status.value
        fields[names.job_id] = result.run_id
        fields[names.last_run_date] = last_run_date
        fields[names.last_run_time] = format_duration(task.duration_seconds)
        fields[names.count_last_run] = task.succeeded
    return fields


def _reason(exc: IntegrationError) -> str:
    if exc.status == 429:
        return "RateLimited"
    if exc.status in (401, 403, 404, 422):
        return "Misconfigured"
    if isinstance(exc, PermanentError):
        return "BadAnswer"
    return "Unavailable"
