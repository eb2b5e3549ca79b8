"""``smart-resume worker --run NAME --stream N``: the entry point of a stream's Job.

1. Load settings and the task registry; a bad one fails here, before any work (exit 2).
2. Read the run and the stream's checkpoint (SmartResumeStream); check that the Lease is ours and
   that the checkpoint's cycle is owned by this run. Everything read here was persisted by the
   operator before it created the Job; if it is missing or not ours, say why and exit (exit 2).
3. Take the deadline from the Job: its ``status.startTime`` plus ``activeDeadlineSeconds``, both
   judged by the API server's clock, so a retried pod gets what is left, not a fresh deadline.
4. Load the stream's clients from the Airtable Clients table (or the run's ad-hoc client list).
5. Process them with ``StreamWorker``, renewing the Lease, until done, deadline, SIGTERM or fenced;
   after SIGTERM, release the Lease once the client in flight wrapped up.
6. Record why it stopped in ``status.streams.<n>.workerReason`` of the run.
"""

from __future__ import annotations

import datetime
import email.utils
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from smart_resume import resource
from smart_resume.config import Settings
from smart_resume.core.checkpoint import decode_clients, owns_cycle
from smart_resume.core.clients import Client, for_stream
from smart_resume.core.errors import ConfigurationError, SmartResumeError
from smart_resume.core.reasons import StreamReason
from smart_resume.core.spec import RunSpec
from smart_resume.exit_codes import EXIT_CONFIGURATION, EXIT_FAILED, EXIT_OK, EXIT_TERMINATED
from smart_resume.kube.connection import api_client
from smart_resume.kube.leases import StreamLock
from smart_resume.kube.runs import Runs
from smart_resume.kube.streams import FIELD_MANAGER_WORKER, Checkpoints
from smart_resume.logs import bind
from smart_resume.resource import holder_identity
from smart_resume.tasks.registry import load_registry
from smart_resume.tasks.services import Services
from smart_resume.worker.heartbeat import Heartbeat
from smart_resume.worker.stream import CycleLost, StopSignals, StreamResult, StreamWorker

log = logging.getLogger("smart_resume.worker")
API_ATTEMPTS = 6
"""Tries of each status write (about 30 s with the backoff): an API server restart passes."""
REQUEST_TIMEOUT_SECONDS = 10
WRAP_UP_MARGIN_SECONDS = 3
"""Of the pod's grace period, kept for writing the last checkpoint after the client wrapped up."""
T = TypeVar("T")


class _Stop(Exception):
    def __init__(self, reason: StreamReason, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.result = StreamResult(reason, message)
        self.exit_code = exit_code


def run_worker(*, run_name: str, stream: int, namespace: str | None = None) -> int:
    signals = StopSignals()
    signal.signal(signal.SIGTERM, lambda *_: signals.stop(signals.terminate))
    namespace = namespace or os.environ.get("SMART_RESUME_NAMESPACE") or "default"
    bind(namespace=namespace, run=run_name, stream=stream)
    api = api_client()
    runs = Runs(api, field_manager=FIELD_MANAGER_WORKER)

    def record(result: StreamResult, checkpoint_version: str = "", lease_version: str = "") -> None:
        log.info("stream ended", extra={"reason": result.reason, "detail": result.message})
        words = {"workerReason": result.reason.value, "workerMessage": result.message}
        if checkpoint_version:  # the operator folds the end once it has seen this version
            words["workerCheckpoint"] = checkpoint_version
        if lease_version:  # and releases the Lease on this one, in one request
            words["workerLease"] = lease_version
        try:
            _retrying(lambda: runs.patch_stream(namespace, run_name, stream, words))
        except ApiException as exc:
            if exc.status != 404:  # the run was deleted: nobody left to tell
                raise

    try:
        result, checkpoint_version, lease_version = _work(
            api, runs, signals, namespace=namespace, run_name=run_name, stream=stream
        )
    except _Stop as stop:
        record(stop.result)
        return stop.exit_code
    record(result, checkpoint_version, lease_version)
    return EXIT_TERMINATED if signals.terminate.is_set() else EXIT_OK


def _work(
    api: client.ApiClient,
    runs: Runs,
    signals: StopSignals,
    *,
    namespace: str,
    run_name: str,
    stream: int,
) -> tuple[StreamResult, str, str]:
    """How the stream's work ended, and the resourceVersions of its last checkpoint and Lease
    writes (the Lease's empty once released)."""
    try:
        settings = Settings.from_env()
        run = runs.get(namespace, run_name)
        spec = RunSpec.from_body(run)
        load_registry(settings.job.task_plugins).resolve(spec.tasks)
    except ConfigurationError as exc:
        log.error("invalid configuration", extra={"detail": str(exc)})
        raise _Stop(StreamReason.INVALID_CONFIGURATION, str(exc), EXIT_CONFIGURATION) from exc
    status = run.get("status") or {}
    run_status = (status.get("streams") or {}).get(str(stream)) or {}
    if not status.get("runId") or not run_status.get("cycle") or not run_status.get("checkpoint"):
        raise _Stop(
            StreamReason.CHECKPOINT_MISSING,
            "the run's status has no run ID, cycle or checkpoint for this stream",
            EXIT_CONFIGURATION,
        )
    lock = StreamLock(
        api,
        namespace=namespace,
        stream=stream,
        holder=holder_identity(run),
        duration_seconds=settings.lease.duration_seconds,
    )
    if not lock.renew(_utc_now()):
        raise _Stop(
            StreamReason.LOCK_LOST, "the stream's Lease is not held by this run", EXIT_CONFIGURATION
        )
    checkpoints = Checkpoints(api, field_manager=FIELD_MANAGER_WORKER)
    writer = ConditionalCheckpoint(
        checkpoints,
        namespace=namespace,
        name=run_status["checkpoint"],
        run_uid=run["metadata"]["uid"],
        cycle=run_status["cycle"],
    )
    deadline = _deadline(api, namespace, resource.job_name(run_name, stream))
    try:
        clients = _load_clients(Services(settings), spec, stream)
    except ConfigurationError as exc:  # e.g. no Airtable key in the credentials Secret
        log.error("invalid configuration", extra={"detail": str(exc)})
        raise _Stop(StreamReason.INVALID_CONFIGURATION, str(exc), EXIT_CONFIGURATION) from exc
    except SmartResumeError as exc:
        log.error("cannot load the stream's clients", extra={"detail": str(exc)})
        raise _Stop(StreamReason.CLIENTS_UNAVAILABLE, str(exc), EXIT_FAILED) from exc
    worker = StreamWorker(
        run_id=status["runId"],
        spec=spec,
        stream=stream,
        settings=settings,
        clients=clients,
        carried=decode_clients(writer.status),
        checkpoint=writer,
        signals=signals,
        deadline=deadline,
        wrap_up_seconds=max(
            1.0, settings.job.termination_grace_period_seconds - WRAP_UP_MARGIN_SECONDS
        ),
    )
    with Heartbeat(
        lock,
        interval_seconds=settings.lease.renew_interval_seconds,
        renew_deadline_seconds=settings.lease.renew_deadline_seconds,
        signals=signals,
    ):
        result = worker.run()
    if signals.terminate.is_set() and not signals.fenced.is_set():
        # Suspended, deleted or out of time: the client in flight has wrapped up, so the
        # stream is free now. Otherwise the operator releases the Lease once it has folded the
        # stream's end, so that no run claims the cycle before this one's end is judged.
        lock.release()
    return result, writer.version, lock.version


class ConditionalCheckpoint:
    """Merge patches into the checkpoint, each conditioned on the resourceVersion last written.

    A 409 means someone else wrote: if the cycle is no longer this run's, ``CycleLost``; else
    the write is tried again on the new version.
    """

    def __init__(
        self, checkpoints: Checkpoints, *, namespace: str, name: str, run_uid: str, cycle: str
    ) -> None:
        self._checkpoints = checkpoints
        self._namespace = namespace
        self._name = name
        self._run_uid = run_uid
        self._cycle = cycle
        self.status: dict[str, Any] = {}
        self._version = ""
        self._refresh()

    @property
    def version(self) -> str:
        """The checkpoint's resourceVersion as this worker last read or wrote it."""
        return self._version

    def __call__(self, patch: dict[str, Any]) -> None:
        for _ in range(API_ATTEMPTS):
            try:
                written = _retrying(
                    lambda: self._checkpoints.patch_status(
                        self._namespace, self._name, patch, resource_version=self._version
                    )
                )
            except ApiException as exc:
                if exc.status != 409:
                    raise
                self._refresh()
                continue
            self._version = written["metadata"]["resourceVersion"]
            return
        raise RuntimeError(f"checkpoint {self._name} keeps changing under this worker")

    def _refresh(self) -> None:
        found = _retrying(lambda: self._checkpoints.get(self._namespace, self._name))
        if found is None:
            raise _Stop(
                StreamReason.CHECKPOINT_MISSING,
                f"SmartResumeStream {self._name} does not exist",
                EXIT_CONFIGURATION,
            )
        status = found.get("status") or {}
        if not owns_cycle(status, run_uid=self._run_uid, cycle=self._cycle):
            if self._version:
                raise CycleLost
            raise _Stop(
                StreamReason.NOT_CYCLE_OWNER,
                f"cycle {status.get('cycle')} of {self._name} is owned by {status.get('owner')}",
                EXIT_CONFIGURATION,
            )
        self.status = status
        self._version = found["metadata"]["resourceVersion"]


def _deadline(api: client.ApiClient, namespace: str, job_name: str) -> float:
    """The run's deadline on this process's monotonic clock, from the Job's ``startTime`` and
    the API server's ``Date`` (its clock, the one the Job controller enforces the deadline on)."""
    job, _, headers = _retrying(
        lambda: client.BatchV1Api(api).read_namespaced_job_with_http_info(
            job_name, namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
    )
    server_now = email.utils.parsedate_to_datetime(headers["Date"])
    started = job.status.start_time if job.status else None
    elapsed = (server_now - started).total_seconds() if started else 0.0
    allowed = float((job.spec.active_deadline_seconds if job.spec else None) or 0)
    return time.monotonic() + allowed - max(0.0, elapsed)


def _retrying(call: Callable[[], T]) -> T:
    """``call``, tried again on 429, 5xx and dropped connections (an API server restart)."""
    for attempt in range(API_ATTEMPTS):
        try:
            return call()
        except ApiException as exc:
            if exc.status is not None and exc.status < 500 and exc.status != 429:
                raise
        except urllib3.exceptions.HTTPError:
            pass
        if attempt < API_ATTEMPTS - 1:
            time.sleep(0.5 * 2**attempt)
    raise RuntimeError("the API server kept failing")


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _load_clients(services: Services, spec: RunSpec, stream: int) -> list[Client]:
    if spec.clients:
        return for_stream(services.airtable.clients_by_id(spec.clients), stream, spec.streams)
    return list(services.airtable.active_clients(stream))
