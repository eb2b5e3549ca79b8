"""PURE: which finished runs to delete so that a namespace keeps only its recent history.

Deleting an old run loses nothing: a resuming run copied the progress it needed into its own
status. The run being finished now is never pruned, nor is any run that has not finished.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from smart_resume.core.status import is_terminal


def runs_to_prune(runs: Iterable[Mapping[str, Any]], *, keep: int, current: str) -> list[str]:
    """Names of the finished runs beyond the ``keep`` most recent (by creationTimestamp)."""
    finished = [
        run
        for run in runs
        if is_terminal((run.get("status") or {}).get("phase", ""))
        or run["metadata"]["name"] == current
    ]
    finished.sort(
        key=lambda run: (run["metadata"].get("creationTimestamp", ""), run["metadata"]["name"]),
        reverse=True,
    )
    return [
        run["metadata"]["name"]
        for run in finished[max(keep, 1) :]
        if run["metadata"]["name"] != current
    ]
