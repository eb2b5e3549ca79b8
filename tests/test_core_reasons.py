"""Why a stream ended once its Job did (``core.reasons.job_end_reason``)."""

from __future__ import annotations

from smart_resume.core.reasons import StreamReason, job_end_reason


def test_job_end_reason__job_completed_without_any_checkpoint() -> None:
    """A Job that completed although no worker ever reported nor checkpointed says exactly that
    (it used to end with the operator's own ``JobCreated`` or the bare ``Complete``)."""
    reason = job_end_reason(StreamReason.COMPLETE, "", cycle_closed=False, checkpointed=False)
    assert reason == StreamReason.JOB_ENDED_WITHOUT_CHECKPOINT


def test_job_end_reason__job_failed_without_any_checkpoint() -> None:
    """A failed Job (e.g. BackoffLimitExceeded) whose worker never wrote gets the same reason."""
    reason = job_end_reason("BackoffLimitExceeded", "", cycle_closed=False, checkpointed=False)
    assert reason == StreamReason.JOB_ENDED_WITHOUT_CHECKPOINT


def test_job_end_reason__deadline_and_missing_job_keep_their_reasons() -> None:
    """The Job's deadline and a deleted Job say more than a missing checkpoint does."""
    for job_reason in (StreamReason.DEADLINE_EXCEEDED, StreamReason.JOB_MISSING):
        assert job_end_reason(job_reason, "", cycle_closed=False, checkpointed=False) == job_reason


def test_job_end_reason__worker_reason_wins_when_it_says_more() -> None:
    """A worker that stopped on purpose is believed; a closed cycle takes the worker's word."""
    assert (
        job_end_reason(
            "BackoffLimitExceeded", StreamReason.LOCK_LOST, cycle_closed=False, checkpointed=True
        )
        == StreamReason.LOCK_LOST
    )
    assert (
        job_end_reason(
            StreamReason.COMPLETE,
            StreamReason.CYCLE_COMPLETED,
            cycle_closed=True,
            checkpointed=True,
        )
        == StreamReason.CYCLE_COMPLETED
    )


def test_job_end_reason__checkpointed_crash_keeps_the_jobs_reason() -> None:
    """A worker that checkpointed and then crashed without a reason: the Job's reason stays."""
    assert (
        job_end_reason("BackoffLimitExceeded", "", cycle_closed=False, checkpointed=True)
        == "BackoffLimitExceeded"
    )
