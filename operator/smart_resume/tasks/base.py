"""The contract between the worker loop and a task.

A task is a callable ``run(ctx: TaskContext) -> TaskOutcome`` that processes one client. It must be
idempotent: selecting only the work still to do (a lead already scored is never selected again),
so that a resumed or retried client does nothing twice. It checks ``ctx.cancelled`` between units
of work and returns early when it is set (per-client timeout or SIGTERM). Errors about single
leads are counted in ``skipped`` under a reason code; an exception means the task as a whole failed.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from smart_resume.config import Settings
from smart_resume.core.clients import Client


@dataclasses.dataclass(frozen=True)
class TaskContext:
    client: Client
    run_id: str
    settings: Settings
    services: Any
    """The integration adapters (Airtable, AI, Apify) shared by every task of the worker."""
    lead_scoring_limit: int | None = None
    dry_run: bool = False
    cancelled: threading.Event = dataclasses.field(default_factory=threading.Event)
    logger: logging.Logger = logging.getLogger("smart_resume.tasks")


@dataclasses.dataclass
class TaskOutcome:
    examined: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    """Reason code -> number of items skipped for that reason (e.g. ``ai_refusal``: 2)."""

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count


Task = Callable[[TaskContext], TaskOutcome]
