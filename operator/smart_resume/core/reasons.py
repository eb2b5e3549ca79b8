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
