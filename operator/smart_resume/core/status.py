"""The vocabulary of a run's status and the pure reductions over it.

A run's status holds ``streams.<n>`` entries (what the run did with each stream: its Job, Lease,
cycle, phase and reason, and the cycle's counts copied from the stream's checkpoint) and top-level
fields that the operator derives from them with the functions here: the phase of each stream and
of the run, the printer-column summaries, the totals and the ``Succeeded`` condition.

Everything here is a function of its arguments: no I/O and no clock (``now`` is passed in). The
shapes are the CRD's, camelCase keys included, so results can be patched in as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, NamedTuple, TypeAlias

StreamStatus: TypeAlias = Mapping[str, Any]
"""One ``status.streams.<n>`` entry."""
ClientStatus: TypeAlias = Mapping[str, Any]
"""One client of a cycle, decoded from its checkpoint (``core.checkpoint``)."""


class Phase(StrEnum):
    """The phase of a run, and of each of its streams."""

    PENDING = "Pending"  # accepted; no stream Job has been created yet
    RUNNING = "Running"  # at least one stream is still working
    SUCCEEDED = "Succeeded"  # every client of every stream completed
    PARTIALLY_SUCCEEDED = "PartiallySucceeded"  # finished; some clients or streams did not succeed
    TIMED_OUT = "TimedOut"  # the deadline stopped the work with clients left
    FAILED = "Failed"  # the work stopped with clients left, not because of the deadline
    TERMINATED = "Terminated"  # stopped by deleting the run
    SUSPENDED = "Suspended"  # stopped by spec.suspend; progress kept, continues when unsuspended
    SKIPPED = "Skipped"  # nothing run: the stream's Lease is held by another live run


class ClientState(StrEnum):
    PENDING = "Pending"  # not started in this cycle, or interrupted and waiting to continue
    RUNNING = "Running"  # a worker is processing it now
    COMPLETED = "Completed"  # every requested task completed
    TIMED_OUT = "TimedOut"  # hit the per-client timeout; retried later in the cycle
    FAILED = "Failed"  # a task failed; retried later in the cycle
    QUARANTINED = "Quarantined"  # gave up for this cycle after maxAttempts attempts


class TaskState(StrEnum):
    PENDING = "Pending"  # not started, or interrupted before it finished
    RUNNING = "Running"  # in progress
    COMPLETED = "Completed"  # finished; never run again in this cycle
    TIMED_OUT = "TimedOut"  # cut by the per-client timeout
    FAILED = "Failed"  # raised an error


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"  # not decided yet (the run is still going)


class ConditionType(StrEnum):
    SUCCEEDED = "Succeeded"  # the convention for bounded-execution objects: did the run succeed?


class ConditionFields(NamedTuple):
    status: ConditionStatus
    reason: str
    message: str


TERMINAL_PHASES: Final = frozenset(
    {
        Phase.SUCCEEDED,
        Phase.PARTIALLY_SUCCEEDED,
        Phase.TIMED_OUT,
        Phase.FAILED,
        Phase.TERMINATED,
        Phase.SKIPPED,
    }
)
DONE_CLIENT_STATES: Final = frozenset({ClientState.COMPLETED, ClientState.QUARANTINED})
"""Client states that close a client for the cycle."""
CURRENT_MAX_CHARS: Final = 80
CLIENT_COUNT_KEYS: Final = ("completed", "timedOut", "failed", "quarantined")

_TOTALS_BY_STATE: Final = {
    "completed": ClientState.COMPLETED,
    "timedOut": ClientState.TIMED_OUT,
    "failed": ClientState.FAILED,
    "quarantined": ClientState.QUARANTINED,
}

_SUCCEEDED_CONDITION: Final = {
    Phase.PENDING: (ConditionStatus.UNKNOWN, "No stream has started yet"),
    Phase.RUNNING: (ConditionStatus.UNKNOWN, "Streams are processing clients"),
    Phase.SUSPENDED: (ConditionStatus.UNKNOWN, "Suspended; progress is kept"),
    Phase.SUCCEEDED: (ConditionStatus.TRUE, "Every client of every stream completed"),
    Phase.PARTIALLY_SUCCEEDED: (
        ConditionStatus.FALSE,
        "Finished, but some clients were quarantined or some streams did not succeed",
    ),
    Phase.TIMED_OUT: (ConditionStatus.FALSE, "The deadline passed with clients left"),
    Phase.FAILED: (ConditionStatus.FALSE, "Work stopped with clients left"),
    Phase.TERMINATED: (ConditionStatus.FALSE, "The run was deleted before it finished"),
    Phase.SKIPPED: (ConditionStatus.FALSE, "Every stream is locked by another run"),
}


def is_terminal(phase: str) -> bool:
    """Whether ``phase`` (of a run or a stream) is final: nothing will change it any more."""
    return phase in TERMINAL_PHASES


def is_cycle_finished(stream_status: StreamStatus) -> bool:
    """Whether the stream's cycle has closed every client (Completed or Quarantined).

    Read from the run's ``streams.<n>`` counts, which the operator copies from the stream's
    checkpoint. A cycle whose worker never loaded its clients (no ``clientsTotal``) is
    unfinished; a stream with no clients at all (``clientsTotal: 0``) finishes at once.
    """
    total = stream_status.get("clientsTotal")
    return isinstance(total, int) and int(stream_status.get("clientsDone") or 0) >= total


def _all_completed(stream_status: StreamStatus) -> bool:
    counts: Mapping[str, int] = stream_status.get("counts") or {}
    return int(counts.get("completed", 0)) >= int(stream_status.get("clientsTotal") or 0)


def stream_phase(
    stream_status: StreamStatus,
    *,
    job_finished: bool,
    deadline_exceeded: bool,
    terminated: bool,
    suspended: bool = False,
) -> Phase:
    """The phase of one stream.

    Args:
        stream_status: the ``status.streams.<n>`` entry; its ``job`` says a Job was created.
        job_finished: the stream's Job has ended (Complete or Failed): no worker writes any more.
        deadline_exceeded: the work stopped because of the run deadline
            (the Job failed with DeadlineExceeded, or the worker stopped short of it).
        terminated: the run is being or has been deleted.
        suspended: the run is suspended (its Jobs are stopped).

    A stream already marked Skipped stays Skipped. While its worker may still write, a stream is
    Running (Pending before its Job exists). Once it stopped: a finished cycle is Succeeded when
    every client completed, else PartiallySucceeded; with clients left it is Terminated,
    Suspended, TimedOut or Failed, in that order of precedence.
    """
    if stream_status.get("phase") == Phase.SKIPPED:
        return Phase.SKIPPED
    if not (job_finished or terminated or suspended):
        return Phase.RUNNING if stream_status.get("job") else Phase.PENDING
    if is_cycle_finished(stream_status):
        return Phase.SUCCEEDED if _all_completed(stream_status) else Phase.PARTIALLY_SUCCEEDED
    if terminated:
        return Phase.TERMINATED
    if suspended:
        return Phase.SUSPENDED
    return Phase.TIMED_OUT if deadline_exceeded else Phase.FAILED


def run_phase(stream_phases: Iterable[str], *, suspended: bool, terminated: bool) -> Phase:
    """The phase of a run from the phases of its streams.

    ==============================================  =====================
    streams                                         run
    ==============================================  =====================
    none yet                                        Pending
    some not terminal, run terminated               Terminated
    some not terminal, run suspended                Suspended
    some Pending, the others Skipped                Pending
    some not terminal (otherwise)                   Running
    all terminal, all the same phase X              X
    all terminal, any Terminated                    Terminated
    all terminal, any (Partially)Succeeded          PartiallySucceeded
    all terminal, any Failed                        Failed
    all terminal, rest TimedOut and Skipped         TimedOut
    ==============================================  =====================

    Deleting or suspending a run whose streams have all finished changes nothing.
    """
    phases = {Phase(phase) for phase in stream_phases}
    if not phases:
        return Phase.PENDING
    if phases - TERMINAL_PHASES:
        if terminated:
            return Phase.TERMINATED
        if suspended:
            return Phase.SUSPENDED
        return Phase.PENDING if phases <= {Phase.PENDING, Phase.SKIPPED} else Phase.RUNNING
    if len(phases) == 1:
        return next(iter(phases))
    for phase, outcome in (
        (Phase.TERMINATED, Phase.TERMINATED),
        (Phase.SUCCEEDED, Phase.PARTIALLY_SUCCEEDED),
        (Phase.PARTIALLY_SUCCEEDED, Phase.PARTIALLY_SUCCEEDED),
        (Phase.FAILED, Phase.FAILED),
    ):
        if phase in phases:
            return outcome
    return Phase.TIMED_OUT


def summarize(status: Mapping[str, Any]) -> dict[str, Any]:
    """The run-level summary fields derived from ``status.streams``.

    Returns:
        ``progress`` ("12/40": clients done, i.e. Completed or Quarantined, over all clients),
        ``current`` ("1:acme 2:globex": the client each unfinished stream works on, cut to
        ``CURRENT_MAX_CHARS``), ``streamsSummary`` ("2/3": streams in a terminal phase over
        streams in the status) and ``totals`` (client counts by outcome). Counts come from each
        stream's ``clientsTotal``, ``clientsDone`` and ``counts``.
    """
    streams = _sorted_streams(status.get("streams") or {})
    totals = dict.fromkeys(("clients", *CLIENT_COUNT_KEYS), 0)
    done = 0
    for stream in streams.values():
        counts: Mapping[str, int] = stream.get("counts") or {}
        totals["clients"] += int(stream.get("clientsTotal") or 0)
        done += int(stream.get("clientsDone") or 0)
        for key in CLIENT_COUNT_KEYS:
            totals[key] += int(counts.get(key, 0))
    finished = sum(is_terminal(stream.get("phase", "")) for stream in streams.values())
    return {
        "progress": f"{min(done, totals['clients'])}/{totals['clients']}",
        "current": _current(streams),
        "streamsSummary": f"{finished}/{len(streams)}",
        "totals": totals,
    }


def client_counts(by_state: Mapping[str, int]) -> dict[str, int]:
    """A stream's ``counts`` (completed, timedOut, failed, quarantined) from clients by state."""
    return {key: int(by_state.get(state, 0)) for key, state in _TOTALS_BY_STATE.items()}


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    *,
    type: str,
    status: str,
    reason: str,
    message: str,
    now: datetime,
    observed_generation: int,
) -> list[dict[str, Any]]:
    """``conditions`` with the condition of ``type`` added or replaced; the input is not changed.

    ``lastTransitionTime`` moves to ``now`` only when the condition's status changes (or it is
    new): it records when the status last flipped, not when it was last confirmed.
    """
    previous = next((c for c in conditions if c.get("type") == type), None)
    kept = None
    if previous is not None and previous.get("status") == status:
        kept = previous.get("lastTransitionTime")
    updated = {
        "type": type,
        "status": str(status),
        "reason": reason,
        "message": message,
        "lastTransitionTime": kept or format_time(now),
        "observedGeneration": observed_generation,
    }
    result = [updated if c.get("type") == type else dict(c) for c in conditions]
    return result if previous is not None else [*result, updated]


def succeeded_condition_for(phase: str) -> ConditionFields:
    """The ``Succeeded`` condition for a run in ``phase``: the reason is the phase itself.

    Unknown while the run can still change; True only for Succeeded; False for every other end
    (PartiallySucceeded included, so "Succeeded=True" always means every client completed).
    """
    condition_status, message = _SUCCEEDED_CONDITION[Phase(phase)]
    return ConditionFields(condition_status, str(phase), message)


def format_time(moment: datetime) -> str:
    """``moment`` as the API server writes times: RFC 3339, UTC, whole seconds (``...T05:48:00Z``).

    Raises:
        ValueError: for a naive datetime, whose time zone would be a guess.
    """
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware one (e.g. datetime.now(UTC))")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sorted_streams(streams: Mapping[str, StreamStatus]) -> dict[str, StreamStatus]:
    def key(name: str) -> tuple[int, str]:
        return (int(name), "") if name.isdigit() else (0, name)

    # A null value is a merge-patch deletion that may still show up in a caller's copy.
    return {name: streams[name] for name in sorted(streams, key=key) if streams[name]}


def _current(streams: Mapping[str, StreamStatus]) -> str:
    working = [
        f"{name}:{stream['current']}"
        for name, stream in streams.items()
        if stream.get("current") and not is_terminal(stream.get("phase", ""))
    ]
    text = " ".join(working)
    if len(text) <= CURRENT_MAX_CHARS:
        return text
    shown: list[str] = []
    for item in working:
        # Keep room for the "+N" marker that counts the streams left out.
        marker = f" +{len(working) - len(shown) - 1}"
        if len(" ".join([*shown, item])) + len(marker) > CURRENT_MAX_CHARS:
            break
        shown.append(item)
    return " ".join([*shown, f"+{len(working) - len(shown)}"])
