"""The kopf handlers of the operator: thin, typed, one concern each; the work is in ``lifecycle``.

Sync handlers on purpose: they use the blocking ``kubernetes`` client, and kopf runs sync
handlers in its thread pool instead of blocking the event loop.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from smart_resume import resource
from smart_resume.config import Settings
from smart_resume.controller import metrics
from smart_resume.controller.lifecycle import RetryLater, RunLifecycle
from smart_resume.core.spec import InvalidSpecError
from smart_resume.core.status import Phase, is_terminal
from smart_resume.kube.connection import api_client

RECONCILE_INTERVAL_SECONDS = 3.0
RUNS = (resource.GROUP, resource.VERSION, resource.PLURAL)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Our own prefix and finalizer from day one: changing them later makes kopf re-run handlers.
    settings.persistence.finalizer = resource.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=resource.PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=resource.PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.execution.max_workers = 8
    operator_settings = Settings.from_env()
    if operator_settings.operator.metrics_port:
        metrics.serve(operator_settings.operator.metrics_port)
    memo.lifecycle = RunLifecycle(api_client(), operator_settings)


def _is_active(status: kopf.Status, **_: Any) -> bool:
    return bool(status.get("runId")) and not is_terminal(status.get("phase", ""))


@kopf.on.create(*RUNS, id="start")
def start(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    try:
        with metrics.HANDLER_DURATION.labels(handler="start").time():
            memo.lifecycle.start(body, patch, logger)
    except RetryLater as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from exc
    except InvalidSpecError as exc:
        # Only reachable when the CRD's validation was bypassed: retrying cannot fix a bad spec.
        patch.status["phase"] = Phase.FAILED
        kopf.warn(body, reason="InvalidSpec", message=str(exc))
        raise kopf.PermanentError(str(exc)) from exc


@kopf.timer(
    *RUNS,
    id="reconcile",
    interval=RECONCILE_INTERVAL_SECONDS,
    initial_delay=RECONCILE_INTERVAL_SECONDS,
    when=_is_active,
)
def reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    with metrics.HANDLER_DURATION.labels(handler="reconcile").time():
        memo.lifecycle.reconcile(body, patch)


@kopf.on.field(*RUNS, field="spec.suspend", id="suspend", when=_is_active)
def suspend(
    body: kopf.Body, new: Any, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    try:
        with metrics.HANDLER_DURATION.labels(handler="suspend").time():
            memo.lifecycle.set_suspended(body, patch, bool(new), logger)
    except RetryLater as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from exc


@kopf.on.delete(*RUNS, id="terminate")
def terminate(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    with metrics.HANDLER_DURATION.labels(handler="terminate").time():
        memo.lifecycle.terminate(body, logger)


@kopf.on.event(*RUNS, id="phases")
def observe_phase(
    type: str, name: str, namespace: str | None, status: kopf.Status, **_: Any
) -> None:
    """Keep ``smart_resume_runs{phase}`` current from the watch stream, with no API call."""
    namespace = namespace or ""
    if type == "DELETED":
        metrics.RUN_PHASES.forget(namespace, name)
    else:
        metrics.RUN_PHASES.observe(namespace, name, status.get("phase", ""))
