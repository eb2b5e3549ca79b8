"""The operator's view of runs, Jobs and checkpoints from its kopf indices."""

from __future__ import annotations

from typing import Any

from smart_resume import resource
from smart_resume.controller.known import JobState, Known, job_ended, job_state, run_entry


def _run(name: str, run_id: str = "") -> dict[str, Any]:
    return {
        "apiVersion": resource.API_VERSION,
        "kind": resource.KIND,
        "metadata": {
            "name": name,
            "namespace": "acme",
            "uid": f"uid-{name}",
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {"streams": [1]},
        "status": {"runId": run_id},
    }


def test_run_entry__keeps_what_the_lifecycle_reads_without_managed_fields() -> None:
    """The index holds the run's spec, status and identity, not its managed fields."""
    entry = run_entry(_run("nightly-1", "2026-12-01-1"))
    assert "managedFields" not in entry["metadata"]
    assert entry["metadata"]["uid"] == "uid-nightly-1"
    assert entry["status"]["runId"] == "2026-12-01-1"
    assert entry["spec"] == {"streams": [1]}


def test_job_ended__reads_the_jobs_conditions() -> None:
    """Running until a condition is True; Complete, or the Failed condition's reason."""
    assert job_ended({}) is None
    assert job_ended({"conditions": [{"type": "Complete", "status": "False"}]}) is None
    assert job_ended({"conditions": [{"type": "Complete", "status": "True"}]}) == "Complete"
    failed = {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}
    assert job_ended(failed) == "DeadlineExceeded"
    assert job_ended({"conditions": [{"type": "Failed", "status": "True"}]}) == "Failed"


def test_known__finds_runs_jobs_and_checkpoints_by_key() -> None:
    """Runs by namespace and run label (long names shortened as Job labels are), Jobs by stream,
    checkpoints by name; unknown keys give nothing rather than an error."""
    long_name = "a-very-long-run-name-" + "x" * 60
    runs = [run_entry(_run("nightly-1")), run_entry(_run(long_name))]
    label = resource.labels(long_name)[resource.LABEL_RUN]
    job = job_state(
        resource.job_name(long_name, 2),
        resource.labels(long_name, 2),
        {"conditions": [{"type": "Complete", "status": "True"}]},
    )
    known = Known(
        runs_index={"acme": runs},
        jobs_index={("acme", label): [job]},
        checkpoints_index={("acme", "stream-2"): [{"cycle": "c1"}]},
        checkpoint_versions_index={("acme", "stream-2"): ["41"]},
    )
    assert [r["metadata"]["name"] for r in known.runs("acme")] == ["nightly-1", long_name]
    assert known.runs("other") == []
    found = known.run("acme", label)
    assert found is not None and found["metadata"]["name"] == long_name
    assert known.run("acme", "nobody") is None
    assert known.jobs("acme", long_name) == {2: JobState(job.name, 2, "Complete")}
    assert known.jobs("acme", "nightly-1") == {}
    assert known.checkpoint("acme", "stream-2") == {"cycle": "c1"}
    assert known.checkpoint("acme", "stream-3") is None
    seen = known.checkpoint_object("acme", "stream-2")
    assert seen is not None
    assert seen["metadata"] == {"name": "stream-2", "namespace": "acme", "resourceVersion": "41"}
    assert seen["status"] == {"cycle": "c1"}
    assert known.checkpoint_object("acme", "stream-3") is None
