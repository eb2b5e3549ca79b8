"""A run's report as the API server has it now: the run and its streams' checkpoints."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from smart_resume.core.report import CycleView, RunReport, build_report
from smart_resume.kube.streams import Checkpoints


def report_of(
    checkpoints: Checkpoints, run: Mapping[str, Any], *, now: datetime.datetime
) -> RunReport:
    """The report of ``run``, with the checkpoint of each stream it started (one LIST)."""
    found = {c["metadata"]["name"]: c for c in checkpoints.list(run["metadata"]["namespace"])}
    cycles: dict[int, CycleView | None] = {}
    for key, entry in ((run.get("status") or {}).get("streams") or {}).items():
        checkpoint = found.get((entry or {}).get("checkpoint", ""))
        cycles[int(key)] = CycleView.of(checkpoint.get("status") or {}) if checkpoint else None
    return build_report(run, cycles, now=now)
