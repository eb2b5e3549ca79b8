"""Resume: which earlier run a stream continues, what it carries over, and what to process next.

A *cycle* is one pass over a stream's clients; its ID (``status.streams.<n>.cycle``) is the run ID
of the run that started it. With ``resume: Auto`` a run looks for the latest earlier run of the
stream; if that run left its cycle unfinished, the new run copies the progress into its own status
(``carry_forward``), so deleting old runs never loses the chain, and continues the same cycle.

``attempts`` counts how often a worker *started* a client in the cycle (it increments before the
first task), so an attempt cut by a crash, SIGTERM or the deadline counts too: a client that kills
its worker every time is quarantined instead of starving its stream.

The worker's loop is: ``plan = plan_cycle(...)``; quarantine ``plan.quarantine``; process
``plan.order``, each client at ``plan.remaining_tasks(id)``; then plan again from the updated
entries, until ``order`` is empty. Failed and timed-out clients are thus retried after the rest,
until they complete or reach ``max_attempts``.

Pure functions over status dicts: no I/O, no clock. Whether to resume at all (``spec.resume``,
ad-hoc runs) is the caller's decision.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from smart_resume.core.spec import ordered_tasks
from smart_resume.core.status import (
    ClientState,
    ClientStatus,
    StreamStatus,
    TaskState,
    is_cycle_finished,
)

__all__ = ["CyclePlan", "carry_forward", "find_resume_source", "is_cycle_finished", "plan_cycle"]

_CARRIED_STREAM_KEYS = ("cycle", "clientsTotal", "clientsDone", "clients")
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


def find_resume_source(
    stream: int, runs: Iterable[Mapping[str, Any]], *, current: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """The run whose unfinished cycle of ``stream`` the ``current`` run should continue, if any.

    Among the runs created before ``current`` (by ``creationTimestamp``, then name) that are not
    ad-hoc (no ``spec.clients``) and started a cycle of the stream, the latest decides: its cycle
    is continued if unfinished; if finished, a new cycle starts (``None``). Earlier runs never
    matter, because the latest one carried their progress forward. Runs that skipped the stream
    (no ``cycle``) are passed over.

    Raises:
        ValueError: if ``current`` has no ``metadata.creationTimestamp``, so "earlier" is unknown.
    """
    if not current.get("metadata", {}).get("creationTimestamp"):
        raise ValueError("the current run has no metadata.creationTimestamp")
    now = _creation_key(current)
    candidates = [
        run
        for run in runs
        if _creation_key(run) < now
        and not (run.get("spec") or {}).get("clients")
        and _stream_status(run, stream).get("cycle")
    ]
    latest = max(candidates, key=_creation_key, default=None)
    if latest is None or is_cycle_finished(_stream_status(latest, stream)):
        return None
    return latest


def carry_forward(stream_status: StreamStatus) -> dict[str, Any]:
    """The stream status a resuming run starts from, built from the source run's entry.

    Keeps the cycle ID, the counters and every client with its attempts and task progress.
    A client or task cut while Running becomes Pending (it continues at its first unfinished
    task); TimedOut and Failed clients keep their state for a later retry. Everything about the
    source run's own execution (job, lease, phase, heartbeat, current client) is left behind.
    The input is not changed.
    """
    carried = {
        key: copy.deepcopy(stream_status[key])
        for key in _CARRIED_STREAM_KEYS
        if stream_status.get(key) is not None
    }
    carried["clients"] = {
        client_id: _interrupt(client)
        for client_id, client in (carried.get("clients") or {}).items()
        if client
    }
    return carried


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
        carried: the cycle's client entries so far (``status.streams.<n>.clients``); clients
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


def _interrupt(client: ClientStatus) -> dict[str, Any]:
    result = copy.deepcopy(dict(client))
    if result.get("state") == ClientState.RUNNING:
        result["state"] = ClientState.PENDING.value
        result.pop("message", None)
    for task in (result.get("tasks") or {}).values():
        if task and task.get("state") == TaskState.RUNNING:
            task["state"] = TaskState.PENDING.value
    return result


def _stream_status(run: Mapping[str, Any], stream: int) -> StreamStatus:
    streams = (run.get("status") or {}).get("streams") or {}
    return streams.get(str(stream)) or {}


def _creation_key(run: Mapping[str, Any]) -> tuple[str, str]:
    # creationTimestamp is whole-second RFC 3339 in UTC, so strings sort in time order;
    # the name breaks ties between runs created in the same second.
    metadata = run.get("metadata") or {}
    return (metadata.get("creationTimestamp") or "", metadata.get("name") or "")
