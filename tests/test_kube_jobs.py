"""The stream Job manifest: deterministic, owned by the run, locked down, secrets by reference."""

from __future__ import annotations

from smart_resume import resource
from smart_resume.config import JobSettings
from smart_resume.core.spec import RunSpec
from smart_resume.kube.jobs import build_job_manifest

RUN = {
    "apiVersion": resource.API_VERSION,
    "kind": resource.KIND,
    "metadata": {"name": "nightly", "namespace": "runs", "uid": "uid-1"},
    "spec": {"streams": [2], "deadlineSeconds": 900, "clientTimeoutSeconds": 60},
}


def _manifest() -> dict:  # type: ignore[type-arg]
    return build_job_manifest(
        run=RUN,
        spec=RunSpec.from_body(RUN),
        stream=2,
        settings=JobSettings(image="img:1"),
        forwarded_env={"SMART_RESUME_AI_MODEL": "m"},
    )


def test_build_job_manifest__deadline_owner_and_name() -> None:
    """The Job has the run's deadline, a controller owner reference and a deterministic name."""
    job = _manifest()
    assert job["metadata"]["name"] == "nightly-s2"
    assert job["spec"]["activeDeadlineSeconds"] == 900
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("SmartResumeRun", "uid-1", True)
    assert job["spec"]["template"]["metadata"]["labels"] == resource.labels("nightly", 2)
    assert job["spec"]["podReplacementPolicy"] == "Failed"


def test_build_job_manifest__non_root_and_secrets_by_reference() -> None:
    """The worker runs as non-root and receives every secret through secretKeyRef, none inline."""
    pod = _manifest()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["command"] == ["smart-resume", "worker"]
    assert container["args"] == ["--run", "nightly", "--stream", "2"]
    inline = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    refs = {e["name"]: e["valueFrom"] for e in container["env"] if "valueFrom" in e}
    assert inline == {"SMART_RESUME_AI_MODEL": "m"}
    assert refs["SMART_RESUME_AI_API_KEY"]["secretKeyRef"]["name"] == "smart-resume-credentials"


def test_build_job_manifest__scheduler_name_only_when_configured() -> None:
    """Worker pods ask for a scheduler only when the operator is configured with one."""
    assert "schedulerName" not in _manifest()["spec"]["template"]["spec"]
    job = build_job_manifest(
        run=RUN,
        spec=RunSpec.from_body(RUN),
        stream=2,
        settings=JobSettings(scheduler_name="edge-scheduler"),
        forwarded_env={},
    )
    assert job["spec"]["template"]["spec"]["schedulerName"] == "edge-scheduler"
