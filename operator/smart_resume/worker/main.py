"""``smart-resume worker --run NAME --stream N``: the entry point of a stream's Job.

1. Load settings and the task registry; a bad one fails here, before any work (exit 2).
2. Read the run, check that its Lease for this stream is still ours.
3. Load the stream's clients from the Airtable Clients table (or the run's ad-hoc client list).
4. Process them with ``StreamWorker``, renewing the Lease, until done, deadline, SIGTERM or
   lost lock.
"""

from __future__ import annotations

import datetime
import logging
import os
import signal
import time
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from smart_resume.config import Settings
from smart_resume.core.clients import Client, for_stream
from smart_resume.core.errors import ConfigurationError, SmartResumeError
from smart_resume.core.spec import RunSpec
from smart_resume.core.status import format_time
from smart_resume.exit_codes import EXIT_CONFIGURATION, EXIT_FAILED, EXIT_OK, EXIT_TERMINATED
from smart_resume.kube.connection import api_client
from smart_resume.kube.leases import StreamLock
from smart_resume.kube.runs import Runs
from smart_resume.logs import bind
from smart_resume.resource import holder_identity
from smart_resume.tasks.registry import load_registry
from smart_resume.tasks.services import Services
from smart_resume.worker.heartbeat import Heartbeat
from smart_resume.worker.stream import StopSignals, StreamWorker

log = logging.getLogger("smart_resume.worker")
CHECKPOINT_ATTEMPTS = 5


def run_worker(*, run_name: str, stream: int, namespace: str | None = None) -> int:
    started = time.monotonic()
    signals = StopSignals()
    signal.signal(signal.SIGTERM, lambda *_: signals.stop(signals.terminate))
    namespace = namespace or os.environ.get("SMART_RESUME_NAMESPACE") or "default"
    bind(namespace=namespace, run=run_name, stream=stream)
    api = api_client()
    runs = Runs(api)

    def patch(fields: dict[str, Any]) -> None:
        for attempt in range(CHECKPOINT_ATTEMPTS):
            try:
                runs.patch_stream(namespace, run_name, stream, fields)
                return
            except ApiException as exc:
                if exc.status == 404:  # the run was deleted: nothing left to record, stop
                    signals.stop(signals.terminate)
                    return
                if exc.status is not None and exc.status < 500 and exc.status != 429:
                    raise
            except urllib3.exceptions.HTTPError:
                pass  # the API server was unreachable for a moment
            time.sleep(0.5 * 2**attempt)
        raise RuntimeError(f"cannot checkpoint stream {stream} of run {run_name}")

    try:
        settings = Settings.from_env()
        run = runs.get(namespace, run_name)
        spec = RunSpec.from_body(run)
        load_registry(settings.job.task_plugins).resolve(spec.tasks)
    except ConfigurationError as exc:
        log.error("invalid configuration", extra={"detail": str(exc)})
        patch({"reason": "InvalidConfiguration", "message": str(exc)})
        return EXIT_CONFIGURATION

    lock = StreamLock(
        api,
        namespace=namespace,
        stream=stream,
        holder=holder_identity(run),
        duration_seconds=settings.lease.duration_seconds,
    )
    if not lock.renew(datetime.datetime.now(datetime.UTC)):
        patch({"reason": "LockLost", "message": "the stream's Lease is not held by this run"})
        return EXIT_CONFIGURATION
    stream_status = ((run.get("status") or {}).get("streams") or {}).get(str(stream)) or {}
    try:
        clients = _load_clients(Services(settings), spec, stream)
    except ConfigurationError as exc:  # e.g. no Airtable key in the credentials Secret
        log.error("invalid configuration", extra={"detail": str(exc)})
        patch({"reason": "InvalidConfiguration", "message": str(exc)})
        return EXIT_CONFIGURATION
    except SmartResumeError as exc:
        log.error("cannot load the stream's clients", extra={"detail": str(exc)})
        patch({"reason": "ClientsUnavailable", "message": str(exc)})
        return EXIT_FAILED
    worker = StreamWorker(
        run_id=(run.get("status") or {}).get("runId") or run_name,
        spec=spec,
        stream=stream,
        settings=settings,
        clients=clients,
        carried=stream_status.get("clients") or {},
        patch=patch,
        signals=signals,
        deadline=started + spec.deadline_seconds,
    )
    with Heartbeat(
        lock,
        interval_seconds=settings.lease.renew_interval_seconds,
        signals=signals,
        on_beat=lambda now: patch({"heartbeatTime": format_time(now)}),
    ):
        result = worker.run()
    log.info("stream ended", extra={"reason": result.reason, "detail": result.message})
    return EXIT_TERMINATED if signals.terminate.is_set() else EXIT_OK


def _load_clients(services: Services, spec: RunSpec, stream: int) -> list[Client]:
    if spec.clients:
        return for_stream(services.airtable.clients_by_id(spec.clients), stream, spec.streams)
    return list(services.airtable.active_clients(stream))
