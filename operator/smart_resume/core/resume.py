"""Resume: what a worker processes next in its stream's cycle.

A *cycle* is one pass over a stream's clients; its ID is the run ID of the run that opened it, and
its progress lives in the stream's checkpoint (a SmartResumeStream, see ``core.checkpoint``), which
outlives runs. With ``resume: Auto`` a run claims the stream's unfinished cycle and continues it.

``attempts`` counts how often a worker *started* a client in the cycle (it increments before the
first task), so an attempt cut by a crash, SIGTERM or the deadline counts too: a client that kills
its worker every time is quarantined instead of starving its stream.

The worker's loop is: ``plan = plan_cycle(...)``; quarantine ``plan.quarantine``; process
``plan.order``, each client at ``plan.remaining_tasks(id)``; then plan again from the updated
entries, until ``order`` is empty. Failed and timed-out clients are thus retried after the rest,
until they complete or reach ``max_attempts``.

Pure functions over decoded client entries: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from smart_resume.core.spec import ordered_tasks
from smart_resume.core.status import ClientState, ClientStatus, TaskState

__all__ = ["CyclePlan", "plan_cycle"]

_RETRY_STATES = frozenset({ClientState.TIMED_OUT, ClientState.FAILED})


@dataclasses.dataclass(frozen=True)
class CyclePlan:
    """What a worker does with each client of its stream; every client is in exactly one group."""

    order: tuple[str, ...]
    """To process now: pending (new or interrupted) clients, then retries, each in load order."""
    quarantine: tuple[str, ...]
    """To mark Quarantined now (with an alert): attempts used up, work left."""
    quarantined: tuple[str, ...]
    """Already Quarantined earlier in the cycle: left alone."""
    completed: tuple[str, ...]
    """Completed, with none of the requested tasks left: skipped."""
    dropped: tuple[str, ...]
    """Carried entries of clients no longer loaded for the stream: to remove from the status."""
    remaining: Mapping[str, tuple[str, ...]]
    """Per loaded client, the requested tasks not yet Completed, in canonical order."""

    def remaining_tasks(self, client_id: str) -> list[str]:
        """The tasks ``client_id`` still needs, in order: a resumed client starts at the first."""
        return list(self.remaining[client_id])


def plan_cycle(
    client_ids: Iterable[str],
    carried: Mapping[str, ClientStatus],
    *,
    tasks: Iterable[str],
    max_attempts: int,
) -> CyclePlan:
    """Sort the stream's clients, in load order, into the groups of a ``CyclePlan``.

    Args:
        client_ids: the stream's clients as loaded now, in their stable order.
        carried: the cycle's client entries so far (decoded from the checkpoint); clients
            missing from it are new and pending, entries of clients not loaded are dropped.
        tasks: the run's requested tasks (any order).
        max_attempts: attempts per client per cycle.

    What is left of a client comes from its task states, so a run that asks for other tasks than
    the run that started the cycle does just those: a Completed client gets the new tasks, and a
    Failed one whose failed task is not asked for is processed with no task (recorded Completed).
    """
    loaded = list(dict.fromkeys(client_ids))
    wanted = ordered_tasks(tasks)
    remaining = {client_id: _remaining(carried.get(client_id), wanted) for client_id in loaded}
    groups: dict[str, list[str]] = {
        name: [] for name in ("first", "retry", "quarantine", "quarantined", "completed")
    }
    for client_id in loaded:
        group = _group(carried.get(client_id) or {}, remaining[client_id], max_attempts)
        groups[group].append(client_id)
    return CyclePlan(
        order=(*groups["first"], *groups["retry"]),
        quarantine=tuple(groups["quarantine"]),
        quarantined=tuple(groups["quarantined"]),
        completed=tuple(groups["completed"]),
        dropped=tuple(client_id for client_id in carried if client_id not in remaining),
        remaining=remaining,
    )


def _group(client: ClientStatus, remaining: tuple[str, ...], max_attempts: int) -> str:
    state = client.get("state", ClientState.PENDING)
    if state == ClientState.QUARANTINED:
        return "quarantined"
    if not remaining:
        # Processing a client with no task left just records it Completed, closing the cycle.
        return "completed" if state == ClientState.COMPLETED else "first"
    if client.get("attempts", 0) >= max_attempts:
        return "quarantine"
    return "retry" if state in _RETRY_STATES else "first"


def _remaining(client: ClientStatus | None, tasks: tuple[str, ...]) -> tuple[str, ...]:
    progress: Mapping[str, Any] = (client or {}).get("tasks") or {}
    return tuple(
        task for task in tasks if (progress.get(task) or {}).get("state") != TaskState.COMPLETED
    )
