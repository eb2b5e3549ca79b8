"""What the operator does to a SmartResumeRun: start its streams, follow them, suspend, terminate.

Each method reads the run as kopf hands it over, decides with the pure ``core`` functions, acts on
Leases and Jobs, and writes the run's status into kopf's ``patch`` (never returned values). Every
step is idempotent: after an operator restart kopf re-runs an unfinished handler, which then finds
its Lease already held (``Ours``) and its Job already there (409), and changes nothing twice.
"""

from __future__ import annotations

import datetime
import os
import threading
from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes import client

from smart_resume import resource
from smart_resume.config import Settings, forwardable_env
from smart_resume.core.history import runs_to_prune
from smart_resume.core.locks import LeaseDecision
from smart_resume.core.resume import carry_forward, find_resume_source
from smart_resume.core.runid import next_run_id
from smart_resume.core.spec import ResumeMode, RunSpec
from smart_resume.core.status import (
    ConditionType,
    Phase,
    format_time,
    is_terminal,
    run_phase,
    set_condition,
    stream_phase,
    succeeded_condition_for,
    summarize,
)
from smart_resume.kube.jobs import Jobs, build_job_manifest, owner_reference
from smart_resume.kube.leases import StreamLock
from smart_resume.kube.runs import Runs
from smart_resume.resource import holder_identity

Body = kopf.Body
_WORKER_STOP_REASONS = frozenset(
    {"DeadlineNear", "InvalidConfiguration", "ClientsUnavailable", "LockLost"}
)
"""Reasons a worker records when it stops on purpose; more telling than its Job's condition."""


class RunLifecycle:
    def __init__(
        self, api: client.ApiClient, settings: Settings, environ: Mapping[str, str] | None = None
    ) -> None:
        self._api = api
        self._settings = settings
        self._forwarded = forwardable_env(os.environ if environ is None else environ)
        self._jobs = Jobs(api)
        self._runs = Runs(api)
        self._run_ids_lock = threading.Lock()
        self._assigned_run_ids: set[str] = set()

    # -- create -------------------------------------------------------------------------------

    def start(self, body: Body, patch: kopf.Patch, logger: kopf.Logger) -> None:
        """Plan every stream: resume or fresh, take its Lease, create its Job."""
        spec = RunSpec.from_body(body)
        now = _now()
        status = dict(body.get("status") or {})
        run_id = status.get("runId") or self._assign_run_id(body["metadata"]["namespace"], now)
        patch.status["runId"] = run_id
        patch.status["startTime"] = status.get("startTime") or format_time(now)
        patch.status["observedGeneration"] = body["metadata"].get("generation", 1)
        streams: dict[str, dict[str, Any]] = dict(status.get("streams") or {})
        earlier_runs = self._earlier_runs(body, spec)
        for stream in spec.streams:
            key = str(stream)
            if (
                streams.get(key, {}).get("job")
                or streams.get(key, {}).get("phase") == Phase.SKIPPED
            ):
                continue  # a re-run of this handler: this stream was already started
            if spec.suspend:
                update = {
                    "phase": Phase.SUSPENDED,
                    "reason": "Suspended",
                    "message": "created suspended",
                    "lease": resource.lease_name(stream),
                }
            else:
                update = self._start_stream(body, spec, stream, run_id, now, logger, earlier_runs)
            streams[key] = {**streams.get(key, {}), **update}
            patch.status.setdefault("streams", {})[key] = update
        self._write_summary(body, spec, streams, patch, now)

    def _start_stream(
        self,
        body: Body,
        spec: RunSpec,
        stream: int,
        run_id: str,
        now: datetime.datetime,
        logger: kopf.Logger,
        earlier_runs: list[dict[str, Any]],
    ) -> dict[str, Any]:
        lock = self._lock(body, stream)
        acquisition = lock.acquire(now)
        if not acquisition.acquired:
            holder = acquisition.previous.holder if acquisition.previous else "another run"
            message = f"stream {stream} is locked by {holder}"
            kopf.warn(body, reason="LockHeld", message=message)
            return {
                "phase": Phase.SKIPPED,
                "reason": "LockHeld",
                "message": message,
                "lease": lock.name,
            }
        if acquisition.decision is LeaseDecision.TAKE_OVER and acquisition.previous:
            kopf.warn(
                body,
                reason="StaleLockTakenOver",
                message=(
                    f"stream {stream}: took over Lease {lock.name} "
                    f"from {acquisition.previous.holder}, "
                    f"not renewed since {acquisition.previous.renew_time}"
                ),
            )
        update: dict[str, Any] = {"lease": lock.name, "cycle": run_id}
        source = find_resume_source(stream, earlier_runs, current=body) if earlier_runs else None
        if source is not None:
            carried = carry_forward(source["status"]["streams"][str(stream)])
            update.update(carried)
            update["resumedFrom"] = source["metadata"]["name"]
        manifest = build_job_manifest(
            run=body,
            spec=spec,
            stream=stream,
            settings=self._settings.job,
            forwarded_env=self._forwarded,
        )
        self._jobs.ensure(manifest)
        update.update(
            job=manifest["metadata"]["name"], phase=Phase.RUNNING, reason="JobCreated", message=None
        )
        resumed = (
            f", resuming cycle {update['cycle']} from {update['resumedFrom']}" if source else ""
        )
        kopf.info(
            body,
            reason="StreamStarted",
            message=f"stream {stream}: Job {update['job']} created{resumed}",
        )
        logger.info("stream %s started (job %s%s)", stream, update["job"], resumed)
        return update

    def _earlier_runs(self, body: Body, spec: RunSpec) -> list[dict[str, Any]]:
        """The namespace's runs to resume from; none for ad-hoc runs and ``resume: Fresh``."""
        if spec.is_ad_hoc or spec.resume != ResumeMode.AUTO:
            return []
        return self._runs.list(body["metadata"]["namespace"])

    def _assign_run_id(self, namespace: str, now: datetime.datetime) -> str:
        # Handlers of different runs run in parallel threads; one operator replica assigns IDs.
        with self._run_ids_lock:
            existing = {
                (r.get("status") or {}).get("runId", "") for r in self._runs.list(namespace)
            }
            run_id = next_run_id(existing | self._assigned_run_ids, now.date())
            today = run_id.rsplit("-", 1)[0]  # earlier days' IDs can never collide again
            self._assigned_run_ids = {i for i in self._assigned_run_ids if i.startswith(today)}
            self._assigned_run_ids.add(run_id)
            return run_id

    # -- follow -------------------------------------------------------------------------------

    def reconcile(self, body: Body, patch: kopf.Patch) -> None:
        """Fold finished Jobs into stream phases, release their Leases, and summarise the run."""
        status = body.get("status") or {}
        if not status.get("runId"):
            return  # the start handler has not written anything yet
        spec = RunSpec.from_body(body)
        now = _now()
        namespace = body["metadata"]["namespace"]
        jobs = self._jobs_by_stream(namespace, body["metadata"]["name"])
        streams = {
            key: dict(value) for key, value in (status.get("streams") or {}).items() if value
        }
        for key, stream_status in streams.items():
            phase = stream_status.get("phase", "")
            if is_terminal(phase) or phase == Phase.SUSPENDED or not stream_status.get("job"):
                continue
            update = self._follow_job(body, int(key), stream_status, jobs.get(int(key)))
            if update:
                stream_status.update(update)
                patch.status.setdefault("streams", {})[key] = update
        self._write_summary(body, spec, streams, patch, now)

    def _follow_job(
        self, body: Body, stream: int, stream_status: dict[str, Any], job: client.V1Job | None
    ) -> dict[str, Any]:
        job_reason = _job_ended(job) if job is not None else "JobMissing"
        if job_reason is None:
            return {}
        worker_reason = stream_status.get("reason", "")
        phase = stream_phase(
            stream_status,
            job_finished=True,
            terminated=False,
            deadline_exceeded=job_reason == "DeadlineExceeded" or worker_reason == "DeadlineNear",
        )
        if phase in (Phase.SUCCEEDED, Phase.PARTIALLY_SUCCEEDED) or job_reason == "Complete":
            reason = worker_reason or job_reason
        elif job_reason == "DeadlineExceeded" or worker_reason not in _WORKER_STOP_REASONS:
            reason = job_reason
        else:
            reason = worker_reason
        self._lock(body, stream).release()
        message = stream_status.get("message") or reason
        event = kopf.info if phase == Phase.SUCCEEDED else kopf.warn
        event(
            body, reason=f"Stream{phase}", message=f"stream {stream}: {phase} ({reason}): {message}"
        )
        return {"phase": phase, "reason": reason, "message": message, "currentClient": None}

    def _jobs_by_stream(self, namespace: str, run_name: str) -> dict[int, client.V1Job]:
        jobs = (
            client.BatchV1Api(self._api)
            .list_namespaced_job(namespace, label_selector=resource.selector(run_name))
            .items
        )
        return {_stream_of(job): job for job in jobs}

    # -- suspend ------------------------------------------------------------------------------

    def set_suspended(
        self, body: Body, patch: kopf.Patch, suspended: bool, logger: kopf.Logger
    ) -> None:
        """Stop (keeping progress and releasing Leases) or continue every unfinished stream."""
        spec = RunSpec.from_body(body)
        status = body.get("status") or {}
        now = _now()
        namespace = body["metadata"]["namespace"]
        streams = {
            key: dict(value) for key, value in (status.get("streams") or {}).items() if value
        }
        earlier_runs = [] if suspended else self._earlier_runs(body, spec)
        for key, stream_status in streams.items():
            stream = int(key)
            if is_terminal(stream_status.get("phase", "")):
                continue
            if suspended:
                if stream_status.get("job"):
                    self._jobs.set_suspended(namespace, stream_status["job"], True)
                self._lock(body, stream).release()
                update: dict[str, Any] = {
                    "phase": Phase.SUSPENDED,
                    "reason": "Suspended",
                    "message": "spec.suspend is true; progress is kept",
                    "currentClient": None,
                }
            elif not stream_status.get("job"):  # the run was created suspended
                update = self._start_stream(
                    body, spec, stream, status["runId"], now, logger, earlier_runs
                )
            else:
                update = self._continue_stream(body, stream, stream_status, now)
            stream_status.update(update)
            patch.status.setdefault("streams", {})[key] = update
        kopf.info(
            body,
            reason="Suspended" if suspended else "Resumed",
            message="run suspended; progress kept" if suspended else "run continues",
        )
        self._write_summary(body, spec, streams, patch, now)

    def _continue_stream(
        self, body: Body, stream: int, stream_status: Mapping[str, Any], now: datetime.datetime
    ) -> dict[str, Any]:
        lock = self._lock(body, stream)
        namespace = body["metadata"]["namespace"]
        if not lock.acquire(now).acquired:
            self._jobs.delete(namespace, stream_status["job"])
            message = f"stream {stream} was taken by another run while suspended"
            kopf.warn(body, reason="LockHeld", message=message)
            return {"phase": Phase.SKIPPED, "reason": "LockHeld", "message": message}
        self._jobs.set_suspended(namespace, stream_status["job"], False)
        return {"phase": Phase.RUNNING, "reason": "Resumed", "message": None}

    # -- delete -------------------------------------------------------------------------------

    def terminate(self, body: Body, logger: kopf.Logger) -> None:
        """Stop the stream Jobs (their pods get SIGTERM) and release the run's Leases."""
        status = body.get("status") or {}
        namespace = body["metadata"]["namespace"]
        stopped = []
        for key, stream_status in (status.get("streams") or {}).items():
            if not stream_status:
                continue
            if stream_status.get("job"):
                self._jobs.delete(namespace, stream_status["job"])
            self._lock(body, int(key)).release()
            if not is_terminal(stream_status.get("phase", "")):
                stopped.append(key)
        if stopped:
            kopf.warn(
                body,
                reason="Terminated",
                message=f"run deleted; stopped stream(s) {', '.join(sorted(stopped))}",
            )
        logger.info("run terminated; stopped streams: %s", stopped or "none")

    # -- shared -------------------------------------------------------------------------------

    def _write_summary(
        self,
        body: Body,
        spec: RunSpec,
        streams: Mapping[str, Mapping[str, Any]],
        patch: kopf.Patch,
        now: datetime.datetime,
    ) -> None:
        status = body.get("status") or {}
        summary = summarize({"streams": streams})
        phase = run_phase(
            [s.get("phase", Phase.PENDING) for s in streams.values()],
            suspended=spec.suspend,
            terminated=False,
        )
        condition = succeeded_condition_for(phase)
        conditions = set_condition(
            status.get("conditions") or [],
            type=ConditionType.SUCCEEDED,
            status=condition.status,
            reason=condition.reason,
            message=condition.message,
            now=now,
            observed_generation=body["metadata"].get("generation", 1),
        )
        changes = {
            **summary,
            "phase": phase,
            "conditions": conditions,
            "observedGeneration": body["metadata"].get("generation", 1),
        }
        if is_terminal(phase) and not status.get("completionTime"):
            changes["completionTime"] = format_time(now)
        for key, value in changes.items():
            if status.get(key) != value:
                patch.status[key] = value
        if is_terminal(phase) and not is_terminal(status.get("phase", "")):
            event = kopf.info if phase == Phase.SUCCEEDED else kopf.warn
            event(
                body,
                reason=f"Run{phase}",
                message=f"run {status.get('runId', '')} {phase}: "
                f"{summary['progress']} clients done",
            )
            self._prune_history(body)

    def _prune_history(self, body: Body) -> None:
        namespace = body["metadata"]["namespace"]
        for name in runs_to_prune(
            self._runs.list(namespace),
            keep=self._settings.job.history_limit,
            current=body["metadata"]["name"],
        ):
            try:
                self._runs.delete(namespace, name)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise

    def _lock(self, body: Body, stream: int) -> StreamLock:
        return StreamLock(
            self._api,
            namespace=body["metadata"]["namespace"],
            stream=stream,
            holder=holder_identity(dict(body)),
            duration_seconds=self._settings.lease.duration_seconds,
            owner=owner_reference(body),
        )


def _stream_of(job: client.V1Job) -> int:
    labels = (job.metadata.labels if job.metadata else None) or {}
    return int(labels[resource.LABEL_STREAM])


def _job_ended(job: client.V1Job) -> str | None:
    """``None`` while the Job runs; else the reason it ended (``Complete``,
    ``DeadlineExceeded``, ...)."""
    for condition in (job.status.conditions if job.status else None) or []:
        if condition.status != "True":
            continue
        if condition.type == "Complete":
            return "Complete"
        if condition.type == "Failed":
            return condition.reason or "Failed"
    return None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
