"""The one vocabulary of why a stream is where it is, shared by the worker and the operator.

The worker records why it stopped (``status.streams.<n>.workerReason`` of its run, a field only
the worker writes); the operator writes the stream's ``reason`` (a field only the operator
writes), taking the worker's reason when it says more than the Job's end does.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class StreamReason(StrEnum):
    # -- written by the worker when it stops ---------------------------------------------------
    CYCLE_COMPLETED = "CycleCompleted"  # every client of the cycle completed
    CYCLE_FINISHED_WITH_PROBLEMS = "CycleFinishedWithProblems"  # closed, some quarantined
    DEADLINE_NEAR = "DeadlineNear"  # less than one client timeout left before the Job's deadline
    STOPPING = "Stopping"  # SIGTERM: deletion, suspension or the Job deadline
    LOCK_LOST = "LockLost"  # another run holds the Lease, or the cycle was claimed by another run
    RENEW_DEADLINE_PASSED = "RenewDeadlinePassed"  # no renewal within the renew deadline: fenced
    NOT_CYCLE_OWNER = "NotCycleOwner"  # the checkpoint's cycle is not this run's: no work done
    CHECKPOINT_MISSING = "CheckpointMissing"  # what the worker reads was not persisted
    INVALID_CONFIGURATION = "InvalidConfiguration"  # settings or task registry
    CLIENTS_UNAVAILABLE = "ClientsUnavailable"  # the Clients table could not be read
    # -- written by the operator ---------------------------------------------------------------
    STARTING = "Starting"  # Lease and cycle persisted, Job being created
    JOB_CREATED = "JobCreated"
    WAITING_FOR_LOCK = "WaitingForLock"  # another holder's Lease, not yet known live or stale
    LOCK_HELD = "LockHeld"  # another live run holds the Lease
    CYCLE_TAKEN_OVER = "CycleTakenOver"  # a later run owns the cycle now
    START_FAILED = "StartFailed"  # the Job could not be created within the retries
    SUSPENDED = "Suspended"
    RESUMED = "Resumed"
    JOB_MISSING = "JobMissing"
    JOB_ENDED_WITHOUT_CHECKPOINT = "JobEndedWithoutCheckpoint"  # no worker ever reported
    DEADLINE_EXCEEDED = "DeadlineExceeded"  # the Job's activeDeadlineSeconds
    COMPLETE = "Complete"  # the Job completed without a worker reason
    FAILED = "Failed"  # the Job failed without a better reason


WORKER_STOP_REASONS: Final = frozenset(
    {
        StreamReason.DEADLINE_NEAR,
        StreamReason.LOCK_LOST,
        StreamReason.RENEW_DEADLINE_PASSED,
        StreamReason.NOT_CYCLE_OWNER,
        StreamReason.CHECKPOINT_MISSING,
        StreamReason.INVALID_CONFIGURATION,
        StreamReason.CLIENTS_UNAVAILABLE,
    }
)
"""Reasons a worker records when it stops on purpose: more telling than its Job's condition."""


def job_end_reason(
    job_reason: str, worker_reason: str, *, cycle_closed: bool, checkpointed: bool
) -> str:
    """Why a stream ended, once its Job did: the worker's reason when it says more.

    Args:
        job_reason: how the Job ended (``Complete``, ``DeadlineExceeded``, ``JobMissing``, ...).
        worker_reason: what the worker recorded when it stopped; empty if it never did.
        cycle_closed: every client of the cycle is closed.
        checkpointed: the cycle's checkpoint has been written by a worker (it knows its clients).
    """
    if not (worker_reason or checkpointed) and job_reason not in (
        StreamReason.DEADLINE_EXCEEDED,
        StreamReason.JOB_MISSING,
    ):
        return StreamReason.JOB_ENDED_WITHOUT_CHECKPOINT
    if cycle_closed or job_reason == StreamReason.COMPLETE:
        return worker_reason or job_reason
    if job_reason == StreamReason.DEADLINE_EXCEEDED or worker_reason not in WORKER_STOP_REASONS:
        return job_reason
    return worker_reason
