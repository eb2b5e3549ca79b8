"""Denying Jobs in a namespace with a ValidatingAdmissionPolicy (CEL, enforced by the API server):
a real admission denial for the tests of starts that cannot complete."""

from __future__ import annotations

import json
from collections.abc import Sequence

from kubernetes import client

from harness.waiting import wait_for
from smart_resume import resource

ADMISSION = ("admissionregistration.k8s.io", "v1")


def deny_jobs(api: client.ApiClient, namespace: str, *, streams: Sequence[str] = ()) -> None:
    """Deny every Job created in ``namespace`` (or only those of ``streams``, by their stream
    label); returns once the API server enforces it (a dry-run create is denied)."""
    name = _policy_name(namespace)
    label = resource.LABEL_STREAM
    expression = (
        f"!(has(object.metadata.labels) && '{label}' in object.metadata.labels && "
        f"object.metadata.labels['{label}'] in {json.dumps(list(streams))})"
        if streams
        else "false"
    )
    objects = client.CustomObjectsApi(api)
    rule = {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE"]}
    objects.create_cluster_custom_object(
        *ADMISSION,
        "validatingadmissionpolicies",
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{**rule, "resources": ["jobs"]}]},
                "validations": [
                    {"expression": expression, "message": "Jobs are not admitted here"}
                ],
            },
        },
    )
    objects.create_cluster_custom_object(
        *ADMISSION,
        "validatingadmissionpolicybindings",
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        },
    )
    labels = {label: streams[0]} if streams else {}
    probe = {
        "metadata": {"name": "probe", "labels": labels},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}
            }
        },
    }

    def denied() -> bool:
        try:
            client.BatchV1Api(api).create_namespaced_job(namespace, probe, dry_run="All")
        except client.ApiException as exc:
            return exc.status in (403, 422)
        return False

    wait_for(denied, timeout=30, what="the admission policy to deny Jobs")


def allow_jobs(api: client.ApiClient, namespace: str) -> None:
    """Remove what ``deny_jobs`` created."""
    objects = client.CustomObjectsApi(api)
    for plural in ("validatingadmissionpolicybindings", "validatingadmissionpolicies"):
        objects.delete_cluster_custom_object(*ADMISSION, plural, _policy_name(namespace))


def _policy_name(namespace: str) -> str:
    return f"no-jobs-{namespace}"
