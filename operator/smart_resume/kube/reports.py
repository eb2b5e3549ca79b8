"""A run's report as the API server has it now: the run and its streams' checkpoints."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from smart_resume.core.report import RunReport, report_from
from smart_resume.kube.streams import Checkpoints


def report_of(
    checkpoints: Checkpoints, run: Mapping[str, Any], *, now: datetime.datetime
) -> RunReport:
    """The report of ``run``, with the checkpoint of each stream it started (one LIST)."""
    found = {c["metadata"]["name"]: c for c in checkpoints.list(run["metadata"]["namespace"])}

    def status_of(name: str) -> Mapping[str, Any] | None:
        checkpoint = found.get(name)
        return None if checkpoint is None else checkpoint.get("status") or {}

    return report_from(run, status_of, now=now)
