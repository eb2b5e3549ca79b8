"""What the recorder and the notifier share: reading a run with its streams' cycles, writing
their own status fields and condition conditioned on the run's resourceVersion.

Both run in their own kopf timers, next to the lifecycle's reconcile. They write
``status.conditions`` as a whole list (a merge patch replaces lists), so every such write carries
the resourceVersion it was derived from and is derived again on a 409: neither overwrites a
condition another writer set meanwhile.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client

from smart_resume.core.report import RunReport
from smart_resume.core.status import set_condition
from smart_resume.kube.reports import report_of
from smart_resume.kube.runs import Runs
from smart_resume.kube.streams import Checkpoints

CONFLICT_ATTEMPTS = 5


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def is_after(moment: str | None, now: datetime.datetime) -> bool:
    """Whether the status time ``moment`` (RFC 3339, or empty) is later than ``now``."""
    if not moment:
        return False
    return datetime.datetime.fromisoformat(moment.replace("Z", "+00:00")) > now


def run_report(
    runs: Runs, checkpoints: Checkpoints, namespace: str, name: str, now: datetime.datetime
) -> tuple[dict[str, Any], RunReport]:
    """The run as stored now, and its report from its streams' checkpoints."""
    run = runs.get(namespace, name)
    return run, report_of(checkpoints, run, now=now)


def write_status(
    runs: Runs,
    run: Mapping[str, Any],
    changes: Callable[[Mapping[str, Any]], Mapping[str, Any]],
    *,
    condition: tuple[str, str, str, str] | None,
    now: datetime.datetime,
) -> None:
    """Merge ``changes(status)`` and the ``condition`` (type, status, reason, message) into the
    run's status, conditioned on its resourceVersion; re-read and derive again on a 409."""
    meta = run["metadata"]
    for attempt in range(CONFLICT_ATTEMPTS):
        if attempt:
            run = runs.get(meta["namespace"], meta["name"])
        status = run.get("status") or {}
        patch = dict(changes(status))
        if condition is not None:
            kind, state, reason, message = condition
            patch["conditions"] = set_condition(
                status.get("conditions") or [],
                type=kind,
                status=state,
                reason=reason,
                message=message,
                now=now,
                observed_generation=run["metadata"].get("generation", 1),
            )
        try:
            runs.patch_status(
                meta["namespace"],
                meta["name"],
                patch,
                resource_version=run["metadata"]["resourceVersion"],
            )
            return
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    raise RuntimeError(f"run {meta['namespace']}/{meta['name']} kept changing")
