"""The kopf handlers of the operator: thin, typed, one concern each; the work is in ``lifecycle``.

Sync handlers on purpose: they use the blocking ``kubernetes`` client, and kopf runs sync
handlers in its thread pool instead of blocking the event loop.

Following is event-driven: kopf indices (``known``) hold the runs, their Jobs and the stream
checkpoints from the watches, and every event of a run, of one of its Jobs or of its checkpoint
brings the run's status up to date from them, and has the recorder and the notifier look at the
run (``controller.records``, ``controller.notifications``) when its records lag or it may owe an
e-mail. A slow safety net (``lifecycle.SAFETY_NET_SECONDS``) follows a run that had no event for
long, and the records and e-mails are looked at again while a retry waits
(``RETRY_INTERVAL_SECONDS``), all on one clock for all runs (``controller.later``); nothing lists
a namespace, and nothing looks at a suspended or finished run.

Only the delete handler needs a finalizer (kopf timers would each add one too, hence the one
clock): the garbage collector alone would delete a run's Jobs with the Jobs' default propagation,
orphaning their pods, which would work on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from smart_resume import resource
from smart_resume.config import Settings
from smart_resume.controller import metrics
from smart_resume.controller.known import Known, job_state, run_entry
from smart_resume.controller.lifecycle import RetryLater, RunLifecycle
from smart_resume.controller.notifications import Notifier
from smart_resume.controller.records import RunRecorder, records_due
from smart_resume.core.alerts import awaits_clock, may_owe_mail
from smart_resume.core.errors import ConfigurationError
from smart_resume.core.spec import InvalidSpecError
from smart_resume.core.status import Phase, is_terminal
from smart_resume.integrations.email import build_mailer
from smart_resume.kube.connection import api_client
from smart_resume.kube.runs import Runs
from smart_resume.kube.streams import FIELD_MANAGER_OPERATOR

RETRY_INTERVAL_SECONDS = 3.0
"""How often a run's records or e-mails are looked at while a retry waits (events bring the
rest)."""
RUNS = (resource.GROUP, resource.VERSION, resource.PLURAL)
JOBS = ("batch", "v1", "jobs")
CHECKPOINTS = (resource.GROUP, resource.VERSION, resource.STREAM_PLURAL)
OF_RUNS = {resource.LABEL_RUN: kopf.PRESENT}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Our own prefix and finalizer from day one: changing them later makes kopf re-run handlers.
    settings.persistence.finalizer = resource.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=resource.PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=resource.PREFIX, key=resource.HANDLED_KEY
    )
    # Events are the lifecycle's own (``lifecycle.post_normal`` and ``kopf.warn``); kopf's log
    # lines ("Handler 'start' succeeded", ...) stay in the log instead of costing a write each.
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = 8
    operator_settings = Settings.from_env()
    if operator_settings.operator.metrics_port:
        metrics.serve(operator_settings.operator.metrics_port)
    api = api_client()
    memo.lifecycle = RunLifecycle(api, operator_settings)
    runs = Runs(api, field_manager=FIELD_MANAGER_OPERATOR)
    try:
        memo.records = RunRecorder.start(operator_settings.airtable, runs)
        mailer = build_mailer(operator_settings.email)
    except ConfigurationError as exc:
        raise kopf.PermanentError(str(exc)) from exc  # the operator stops with this message
    memo.notifier = Notifier(mailer, runs, operator_settings)


def _is_active(status: Mapping[str, Any], **_: Any) -> bool:
    return bool(status.get("runId")) and not is_terminal(status.get("phase", ""))


def _known(kwargs: dict[str, Any]) -> Known:
    return Known(
        kwargs["runs_index"],
        kwargs["jobs_index"],
        kwargs["checkpoints_index"],
        kwargs["checkpoint_versions_index"],
    )


# -- indices: what the watches show, for every handler ---------------------------------------


@kopf.index(*RUNS)
def runs_index(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str, Any]:
    return {namespace or "": run_entry(body)}


@kopf.index(*JOBS, labels=OF_RUNS)
def jobs_index(
    namespace: str | None, name: str, labels: kopf.Labels, status: kopf.Status, **_: Any
) -> dict[Any, Any]:
    return {(namespace or "", labels[resource.LABEL_RUN]): job_state(name, labels, status)}


@kopf.index(*CHECKPOINTS)
def checkpoints_index(
    namespace: str | None, name: str, status: kopf.Status, **_: Any
) -> dict[Any, Any]:
    return {(namespace or "", name): dict(status)}


@kopf.index(*CHECKPOINTS)
def checkpoint_versions_index(
    namespace: str | None, name: str, meta: kopf.Meta, **_: Any
) -> dict[Any, Any]:
    return {(namespace or "", name): meta["resourceVersion"]}


@kopf.on.create(*RUNS, id="start")
def start(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
    retry: int,
    **kwargs: Any,
) -> None:
    try:
        with metrics.HANDLER_DURATION.labels(handler="start").time():
            memo.lifecycle.start(body, patch, logger, _known(kwargs), retry=retry)
    except RetryLater as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from exc
    except InvalidSpecError as exc:
        # Only reachable when the CRD's validation was bypassed: retrying cannot fix a bad spec.
        patch.status["phase"] = Phase.FAILED
        kopf.warn(body, reason="InvalidSpec", message=str(exc))
        raise kopf.PermanentError(str(exc)) from exc


@kopf.on.event(*JOBS, labels=OF_RUNS, id="job-changed")
def job_changed(namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **kwargs: Any) -> None:
    _follow(memo, _known(kwargs), namespace or "", labels[resource.LABEL_RUN])


@kopf.on.event(*CHECKPOINTS, id="checkpoint-changed")
def checkpoint_changed(
    namespace: str | None, status: kopf.Status, memo: kopf.Memo, **kwargs: Any
) -> None:
    if status.get("owner"):
        _follow(
            memo,
            _known(kwargs),
            namespace or "",
            resource.labels(status["owner"])[resource.LABEL_RUN],
        )


def _follow(memo: kopf.Memo, known: Known, namespace: str, run_label: str) -> None:
    run = known.run(namespace, run_label)
    if run is None:
        return
    if _is_active(run.get("status") or {}):
        with metrics.HANDLER_DURATION.labels(handler="reconcile").time():
            memo.lifecycle.follow(run, known)
    _project(memo, known, run)


def _project(memo: kopf.Memo, known: Known, run: Mapping[str, Any]) -> None:
    """Airtable's run records follow the run's phase, alerts and the report are e-mailed once;
    while a retry waits (a failed sync or send), the run is looked at again later."""
    meta, status = run["metadata"], run.get("status") or {}
    records = memo.get("records") is not None and records_due(status)
    if records:
        memo.records.look(meta["namespace"], meta["name"], known)
    if may_owe_mail(status):
        memo.notifier.look(meta["namespace"], meta["name"], known)
    if records or awaits_clock(status):
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]

        def again() -> None:
            current = known.run_named(namespace, name, uid=uid)
            if current is not None:
                _project(memo, known, current)

        memo.lifecycle.later.call(("project", uid), RETRY_INTERVAL_SECONDS, again)


@kopf.on.field(*RUNS, field="spec.suspend", id="suspend", when=_is_active)
def suspend(
    body: kopf.Body,
    new: Any,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    try:
        with metrics.HANDLER_DURATION.labels(handler="suspend").time():
            memo.lifecycle.set_suspended(body, patch, bool(new), logger, _known(kwargs))
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


@kopf.on.event(*RUNS, id="run-changed")
def run_changed(
    type: str, body: kopf.Body, status: kopf.Status, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A run's own change (its start written, say) may be what a Job's end waited for, or
    what its records and e-mails wait for (its phase)."""
    if type == "DELETED":
        uid = body["metadata"]["uid"]
        memo.lifecycle.forget(uid)
        memo.lifecycle.later.cancel(("project", uid))
        memo.notifier.forget(uid)
        if memo.get("records") is not None:
            memo.records.forget(uid)
        return
    known = _known(kwargs)
    if _is_active(status):
        with metrics.HANDLER_DURATION.labels(handler="reconcile").time():
            memo.lifecycle.follow(body, known)
    _project(memo, known, body)
