"""PURE: a stream's cycle checkpoint (the status of its SmartResumeStream) and who may continue it.

The checkpoint keeps one short string per client instead of nested objects, so that 1,000 clients
cost about 70 bytes each in the object and one ``f:<client>`` entry each in managedFields::

    Completed 1 ls=C2/1/0/1 ph=C2/1/0/1 ps=T2/2/0/0

reads: state, attempts, then per task started in the cycle its state initial (``C`` Completed,
``R`` Running, ``P`` Pending, ``T`` TimedOut, ``F`` Failed) and its counts ``examined/succeeded/
failed/skipped``, accumulated over every attempt of the cycle. Task codes: ``ls`` lead scoring,
``ph`` post harvesting, ``ps`` post scoring.

In memory the worker and the planner use the decoded shape (``state``, ``attempts``,
``tasks.<task>.state`` and counts), the same one ``core.resume.plan_cycle`` reads.

Ownership: the operator *opens* or *claims* a cycle (``cycle``, ``owner``, ``ownerUid``) with a
write conditioned on the object's resourceVersion, before it creates the Job; the worker writes
the progress of a cycle its run owns, with writes conditioned the same way, so a worker whose
cycle was claimed by a later run gets a 409 and stops instead of writing over it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any, Final

from smart_resume.core.status import DONE_CLIENT_STATES, ClientState, TaskState

TASK_CODES: Final = {"lead_scoring": "ls", "post_harvesting": "ph", "post_scoring": "ps"}
_TASKS_BY_CODE: Final = {code: task for task, code in TASK_CODES.items()}
_STATE_CODES: Final = {
    TaskState.COMPLETED: "C",
    TaskState.RUNNING: "R",
    TaskState.PENDING: "P",
    TaskState.TIMED_OUT: "T",
    TaskState.FAILED: "F",
}
_STATES_BY_CODE: Final = {code: state for state, code in _STATE_CODES.items()}
COUNT_KEYS: Final = ("examined", "succeeded", "failed", "skipped")
PROBLEM_MAX_CHARS: Final = 200
"""A problem client's message in the checkpoint is cut to this length."""


def encode_client(entry: Mapping[str, Any]) -> str:
    """The checkpoint string of a client entry in the decoded shape."""
    parts = [str(entry.get("state", ClientState.PENDING)), str(int(entry.get("attempts", 0)))]
    tasks: Mapping[str, Any] = entry.get("tasks") or {}
    for task, code in TASK_CODES.items():
        progress = tasks.get(task)
        if not progress:
            continue
        state = _STATE_CODES[TaskState(progress.get("state", TaskState.PENDING))]
        counts = "/".join(str(int(progress.get(key, 0))) for key in COUNT_KEYS)
        parts.append(f"{code}={state}{counts}")
    return " ".join(parts)


def decode_client(text: str) -> dict[str, Any]:
    """The decoded shape of a checkpoint string; the inverse of ``encode_client``.

    Raises:
        ValueError: for a string that ``encode_client`` cannot have written.
    """
    state, attempts, *task_parts = text.split(" ")
    tasks: dict[str, dict[str, Any]] = {}
    for part in task_parts:
        code, _, value = part.partition("=")
        counts = value[1:].split("/")
        if code not in _TASKS_BY_CODE or len(counts) != len(COUNT_KEYS):
            raise ValueError(f"not a task checkpoint: {part!r}")
        tasks[_TASKS_BY_CODE[code]] = {
            "state": _STATES_BY_CODE[value[0]].value,
            **{key: int(count) for key, count in zip(COUNT_KEYS, counts, strict=True)},
        }
    return {"state": ClientState(state).value, "attempts": int(attempts), "tasks": tasks}


def decode_clients(stream_status: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every client entry of a stream checkpoint, decoded; deleted (null) entries left out."""
    clients: Mapping[str, str | None] = stream_status.get("clients") or {}
    return {client_id: decode_client(text) for client_id, text in clients.items() if text}


@dataclasses.dataclass(frozen=True)
class CycleCounts:
    """How far a cycle got: what the run status and the printer columns show of it."""

    total: int | None
    """Clients in the cycle once a worker loaded them; None before."""
    by_state: Mapping[str, int]

    @property
    def done(self) -> int:
        return sum(self.by_state.get(state, 0) for state in DONE_CLIENT_STATES)

    @property
    def finished(self) -> bool:
        """Every client closed (Completed or Quarantined); no clients at all: closed at once."""
        return self.total is not None and self.done >= self.total

    @property
    def all_completed(self) -> bool:
        return self.finished and self.by_state.get(ClientState.COMPLETED, 0) >= (self.total or 0)


def cycle_counts(stream_status: Mapping[str, Any]) -> CycleCounts:
    total = stream_status.get("clientsTotal")
    by_state: dict[str, int] = {}
    for entry in decode_clients(stream_status).values():
        by_state[entry["state"]] = by_state.get(entry["state"], 0) + 1
    return CycleCounts(total if isinstance(total, int) else None, by_state)


class ClaimDecision(enum.StrEnum):
    OURS = "Ours"  # already ours: a re-run handler, or an unsuspended run nobody overtook
    CONTINUE = "Continue"  # an unfinished cycle of an earlier run: continue it
    OPEN = "Open"  # no cycle, a finished one, or resume Fresh: open a new cycle


@dataclasses.dataclass(frozen=True)
class Claim:
    decision: ClaimDecision
    status: dict[str, Any]
    """The checkpoint's status after the claim (the input when nothing changes)."""
    previous_owner: str | None = None
    """The run whose cycle is continued (``resumedFrom``)."""


def claim_cycle(
    stream_status: Mapping[str, Any],
    *,
    run_name: str,
    run_uid: str,
    run_id: str,
    continue_unfinished: bool,
) -> Claim:
    """How a run takes the cycle of a stream whose Lease it holds.

    A run that owns the cycle keeps it. Otherwise, with ``continue_unfinished`` an unfinished
    cycle is continued: its progress stays and the owner changes, which fences the previous
    owner's worker. Else a new cycle (ID: the run ID) is opened with no progress.
    """
    if stream_status.get("ownerUid") == run_uid:
        return Claim(ClaimDecision.OURS, dict(stream_status))
    owner = {"owner": run_name, "ownerUid": run_uid}
    has_cycle = bool(stream_status.get("cycle"))
    if continue_unfinished and has_cycle and not cycle_counts(stream_status).finished:
        return Claim(
            ClaimDecision.CONTINUE,
            {**stream_status, **owner},
            previous_owner=stream_status.get("owner"),
        )
    return Claim(ClaimDecision.OPEN, {"cycle": run_id, **owner, "clients": {}})


def owns_cycle(stream_status: Mapping[str, Any], *, run_uid: str, cycle: str | None) -> bool:
    """Whether the run ``run_uid`` owns the checkpoint's cycle ``cycle`` (its worker may work)."""
    return bool(cycle) and (
        stream_status.get("ownerUid") == run_uid and stream_status.get("cycle") == cycle
    )


def progress_text(done: int, total: int | None) -> str:
    """``done/total`` as the printer columns show it (``?`` before the clients are loaded)."""
    return f"{done}/{'?' if total is None else total}"
