"""Pure decisions of the lifecycle (``controller.lifecycle``), without a cluster."""

from __future__ import annotations

from smart_resume.controller.known import Known
from smart_resume.controller.lifecycle import last_words_seen


def _known(version: str | None) -> Known:
    versions = {("acme", "stream-1"): [version]} if version else {}
    return Known(
        runs_index={},
        jobs_index={},
        checkpoints_index={("acme", "stream-1"): [{"cycle": "c1"}]},
        checkpoint_versions_index=versions,
    )


def test_last_words_seen__needs_the_reason_and_the_checkpoint_at_the_version_named() -> None:
    """A Job's end is folded only once the worker's reason is in the run and the checkpoint is
    seen at the version the worker last wrote: the runs' and the checkpoints' watches are not
    ordered, and a fold on an older checkpoint would judge the stream on counts from before its
    last client (a Succeeded stream judged Failed)."""
    words = {"checkpoint": "stream-1", "workerReason": "CycleCompleted", "workerCheckpoint": "42"}
    assert last_words_seen("acme", words, _known("42"))
    assert not last_words_seen("acme", words, _known("41")), "the checkpoint's watch lags"
    assert not last_words_seen("acme", words, _known(None)), "the checkpoint not seen yet"
    assert not last_words_seen("acme", {"checkpoint": "stream-1"}, _known("42")), "no words yet"


def test_last_words_seen__words_without_a_version_are_enough() -> None:
    """A worker that stopped before its first checkpoint (``NotCycleOwner``, a bad setting)
    names no version: its reason alone is its last words."""
    words = {"checkpoint": "stream-1", "workerReason": "NotCycleOwner"}
    assert last_words_seen("acme", words, _known(None))
