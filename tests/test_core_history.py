"""History pruning keeps the newest finished runs and never touches unfinished ones."""

from __future__ import annotations

from smart_resume.core.history import runs_to_prune


def _run(name: str, created: str, phase: str) -> dict[str, object]:
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": {"phase": phase}}


def test_runs_to_prune__keeps_the_newest_finished() -> None:
    """Finished runs beyond the limit go, oldest first; running ones and the current one stay."""
    runs = [
        _run("a", "2026-11-01T00:00:00Z", "Succeeded"),
        _run("b", "2026-11-02T00:00:00Z", "TimedOut"),
        _run("c", "2026-11-03T00:00:00Z", "Running"),
        _run("d", "2026-11-04T00:00:00Z", "Failed"),
        _run("e", "2026-11-05T00:00:00Z", "Running"),
    ]
    assert runs_to_prune(runs, keep=2, current="e") == ["b", "a"]
    assert runs_to_prune(runs, keep=10, current="e") == []


def test_runs_to_prune__never_the_current_run() -> None:
    """Even with keep=0 the run that just finished is kept."""
    runs = [
        _run("old", "2026-11-01T00:00:00Z", "Succeeded"),
        _run("new", "2026-11-02T00:00:00Z", "Succeeded"),
    ]
    assert runs_to_prune(runs, keep=0, current="new") == ["old"]
