"""The SmartResumeRun CRD as the real API server applies it.

Bad runs are rejected with a message that names the problem, the defaults match ``RunSpec``'s, and
a status that uses every declared field survives the status subresource unpruned.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from typing import Any

import pytest
from kubernetes import client

from harness.cluster import Cluster
from smart_resume import resource
from smart_resume.core.spec import RunSpec

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crds")]

NAME = "run"


def _run(spec: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": resource.API_VERSION,
        "kind": resource.KIND,
        "metadata": {"name": NAME},
    }
    if spec is not None:
        body["spec"] = spec
    return body


def _api(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def _create(api_client: client.ApiClient, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = _api(api_client).create_namespaced_custom_object(
        resource.GROUP, resource.VERSION, namespace, resource.PLURAL, body
    )
    return created


def _rejection(error: client.ApiException) -> str:
    """The message of a 422 response, which lists every problem as "field: Kind: detail"."""
    assert error.status == 422, error.body
    message: str = json.loads(error.body)["message"]
    return message


def _patch(api_client: client.ApiClient, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    patched: dict[str, Any] = _api(api_client).patch_namespaced_custom_object(
        resource.GROUP, resource.VERSION, namespace, resource.PLURAL, NAME, {"spec": spec}
    )
    return patched


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"streams": [1], "tasks": ["lead_scoring", "magic"]},
            ["spec.tasks[1]", 'Unsupported value: "magic"'],
            id="unknown-task",
        ),
        pytest.param(
            {"streams": [1, 2, 1]}, ["spec.streams[2]", "Duplicate value: 1"], id="duplicate-stream"
        ),
        pytest.param(
            {"streams": [0]}, ["spec.streams[0]", "greater than or equal to 1"], id="zero-stream"
        ),
        pytest.param(
            {"streams": [65]}, ["spec.streams[0]", "less than or equal to 64"], id="stream-too-high"
        ),
        pytest.param({"streams": []}, ["spec.streams", "at least 1 items"], id="no-streams"),
        pytest.param(
            {"streams": [1], "clientTimeoutSeconds": -5},
            ["spec.clientTimeoutSeconds", "greater than or equal to 1"],
            id="negative-client-timeout",
        ),
        pytest.param(
            {"streams": [1], "deadlineSeconds": 5},
            ["spec.deadlineSeconds", "greater than or equal to 10"],
            id="deadline-too-short",
        ),
        pytest.param(
            {"streams": [1], "clientTimeoutSeconds": 7200, "deadlineSeconds": 7200},
            ["spec.clientTimeoutSeconds", "clientTimeoutSeconds must be less than deadlineSeconds"],
            id="client-timeout-not-below-deadline",
        ),
        pytest.param(
            {"streams": [1], "clientTimeoutSeconds": 9000},
            ["clientTimeoutSeconds must be less than deadlineSeconds"],
            id="client-timeout-above-default-deadline",
        ),
        pytest.param(
            {"streams": [1], "maxAttempts": 11},
            ["spec.maxAttempts", "less than or equal to 10"],
            id="too-many-attempts",
        ),
        pytest.param(
            {"streams": [1], "resume": "Sometimes"},
            ["spec.resume", 'Unsupported value: "Sometimes"'],
            id="unknown-resume-mode",
        ),
        pytest.param(
            {"streams": [1], "clients": ["acme", "acme"]},
            ["spec.clients[1]", 'Duplicate value: "acme"'],
            id="duplicate-client",
        ),
        pytest.param(
            {"tasks": ["lead_scoring"]}, ["spec.streams", "Required value"], id="missing-streams"
        ),
        pytest.param(None, ["spec", "Required value"], id="missing-spec"),
    ],
)
def test_create__bad_run_is_rejected_with_its_problem(
    api_client: client.ApiClient, namespace: str, spec: dict[str, Any] | None, expected: list[str]
) -> None:
    """A run that breaks a rule is refused with 422 and a message that names field and rule."""
    with pytest.raises(client.ApiException) as caught:
        _create(api_client, namespace, _run(spec))
    message = _rejection(caught.value)
    for fragment in expected:
        assert fragment in message


def test_create__minimal_run_gets_the_defaults_runspec_applies(
    api_client: client.ApiClient, namespace: str
) -> None:
    """The API server fills in the same defaults as ``RunSpec.from_body``, and nothing optional."""
    created = _create(api_client, namespace, _run({"streams": [2]}))
    assert created["spec"] == {
        "streams": [2],
        "tasks": ["lead_scoring", "post_harvesting", "post_scoring"],
        "clientTimeoutSeconds": 600,
        "deadlineSeconds": 7200,
        "maxAttempts": 3,
        "resume": "Auto",
        "suspend": False,
        "dryRun": False,
    }
    assert RunSpec.from_body(created) == RunSpec.from_body({"spec": {"streams": [2]}})


def test_create__image_in_spec_is_dropped(api_client: client.ApiClient, namespace: str) -> None:
    """Fields outside the schema, such as an image, never reach the operator."""
    created = _create(api_client, namespace, _run({"streams": [1], "image": "evil:latest"}))
    assert "image" not in created["spec"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            {"streams": [1, 2]}, "spec is immutable except suspend: streams changed", id="streams"
        ),
        pytest.param(
            {"tasks": ["lead_scoring"]},
            "spec is immutable except suspend: tasks changed",
            id="tasks",
        ),
        pytest.param(
            {"leadScoringLimit": 5},
            "spec is immutable except suspend: leadScoringLimit changed",
            id="add-lead-scoring-limit",
        ),
        pytest.param(
            {"clients": None},
            "spec is immutable except suspend: clients changed",
            id="remove-clients",
        ),
        pytest.param(
            {"clientTimeoutSeconds": 300},
            "spec is immutable except suspend: clientTimeoutSeconds changed",
            id="client-timeout",
        ),
        pytest.param(
            {"deadlineSeconds": 3600},
            "spec is immutable except suspend: deadlineSeconds changed",
            id="deadline",
        ),
        pytest.param(
            {"maxAttempts": 5},
            "spec is immutable except suspend: maxAttempts changed",
            id="max-attempts",
        ),
        pytest.param(
            {"resume": "Fresh"}, "spec is immutable except suspend: resume changed", id="resume"
        ),
        pytest.param(
            {"dryRun": True}, "spec is immutable except suspend: dryRun changed", id="dry-run"
        ),
    ],
)
def test_update__spec_change_is_rejected(
    api_client: client.ApiClient, namespace: str, change: dict[str, Any], expected: str
) -> None:
    """Every spec field but suspend is fixed at creation, including adding or removing one."""
    _create(api_client, namespace, _run({"streams": [1], "clients": ["acme"]}))
    with pytest.raises(client.ApiException) as caught:
        _patch(api_client, namespace, change)
    assert expected in _rejection(caught.value)


def test_update__suspend_can_be_flipped(api_client: client.ApiClient, namespace: str) -> None:
    """Suspending and unsuspending a run is the one spec change allowed."""
    _create(api_client, namespace, _run({"streams": [1], "leadScoringLimit": 10}))
    assert _patch(api_client, namespace, {"suspend": True})["spec"]["suspend"] is True
    assert _patch(api_client, namespace, {"suspend": False})["spec"]["suspend"] is False


def test_status__every_field_survives_the_status_subresource(
    api_client: client.ApiClient, namespace: str
) -> None:
    """A status using every declared field is stored as written: nothing is pruned."""
    _create(api_client, namespace, _run({"streams": [1, 2]}))
    written = _api(api_client).patch_namespaced_custom_object_status(
        resource.GROUP, resource.VERSION, namespace, resource.PLURAL, NAME, {"status": FULL_STATUS}
    )
    assert written["status"] == FULL_STATUS


CHECKPOINT_STATUS: dict[str, Any] = {
    "cycle": "SR-251121-001",
    "owner": "nightly-x7k2",
    "ownerUid": "7d1c5a52-0000-4000-8000-000000000001",
    "clientsTotal": 3,
    "clientsDone": 1,
    "progress": "1/3",
    "current": "globex",
    "clients": {
        "acme": "Completed 1 ls=C12/10/1/1 ph=C12/12/0/0 ps=C4/3/0/1",
        "globex": "Running 2 ls=C3/3/0/0",
        "initech": "Failed 1 ls=F0/0/0/0",
    },
    "problems": {"initech": "lead_scoring failed: 500 from the AI"},
}


def test_checkpoint_status__every_field_survives_the_status_subresource(
    api_client: client.ApiClient, namespace: str
) -> None:
    """A SmartResumeStream keeps every status field the operator and the worker write."""
    objects = _api(api_client)
    objects.create_namespaced_custom_object(
        resource.GROUP,
        resource.VERSION,
        namespace,
        resource.STREAM_PLURAL,
        {
            "apiVersion": resource.API_VERSION,
            "kind": resource.STREAM_KIND,
            "metadata": {"name": "stream-1"},
            "spec": {},
        },
    )
    written = objects.patch_namespaced_custom_object_status(
        resource.GROUP,
        resource.VERSION,
        namespace,
        resource.STREAM_PLURAL,
        "stream-1",
        {"status": CHECKPOINT_STATUS},
    )
    assert written["status"] == CHECKPOINT_STATUS


def test_status__unknown_phase_is_rejected(api_client: client.ApiClient, namespace: str) -> None:
    """The status enums hold for the operator's writes too."""
    _create(api_client, namespace, _run({"streams": [1]}))
    status = copy.deepcopy(FULL_STATUS)
    status["streams"]["1"]["phase"] = "Exploded"
    with pytest.raises(client.ApiException) as caught:
        _api(api_client).patch_namespaced_custom_object_status(
            resource.GROUP, resource.VERSION, namespace, resource.PLURAL, NAME, {"status": status}
        )
    assert 'status.streams.1.phase: Unsupported value: "Exploded"' in _rejection(caught.value)


FULL_STATUS: dict[str, Any] = {
    "runId": "SR-251122-003",
    "phase": "Running",
    "observedGeneration": 1,
    "conditions": [
        {
            "type": "Succeeded",
            "status": "Unknown",
            "reason": "Running",
            "message": "Streams are processing clients",
            "lastTransitionTime": "2025-11-22T05:48:00Z",
            "observedGeneration": 1,
        }
    ],
    "startTime": "2025-11-22T05:48:00Z",
    "completionTime": "2025-11-22T06:48:00Z",
    "progress": "1/3",
    "current": "1:globex",
    "streamsSummary": "1/2",
    "totals": {"clients": 3, "completed": 1, "timedOut": 0, "failed": 1, "quarantined": 0},
    "notifications": {"client-timeout/1/acme": "2025-11-22T05:58:00Z"},
    "airtable": {"jobRecordId": "rec123", "pending": [{"anything": True}]},
    "problemClients": [{"stream": 1, "client": "initech", "message": "post_scoring failed: 500"}],
    "streams": {
        "1": {
            "job": "run-s1",
            "lease": "smart-resume-stream-1",
            "phase": "Running",
            "reason": "Processing",
            "message": "2 clients left",
            "cycle": "SR-251121-001",
            "resumedFrom": "older-run",
            "checkpoint": "stream-1",
            "clientsTotal": 3,
            "clientsDone": 1,
            "counts": {"completed": 1, "timedOut": 0, "failed": 1, "quarantined": 0},
            "current": "globex",
            "startAttempts": 0,
            "workerReason": "DeadlineNear",
            "workerMessage": "stopped taking clients",
        },
        "2": {"phase": "Skipped", "reason": "LockHeld", "message": "held by run other"},
    },
}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed here")
def test_kubectl_apply__bad_run_is_rejected_with_the_reason(
    cluster: Cluster, namespace: str
) -> None:
    """What a person sees: `kubectl apply` of an inverted timeout fails and says why."""
    manifest = json.dumps(
        _run({"streams": [1], "clientTimeoutSeconds": 900, "deadlineSeconds": 600})
    )
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, "apply", "-f", "-"],
        input=manifest,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "clientTimeoutSeconds must be less than deadlineSeconds" in result.stderr
