"""The Job of one stream: its manifest (pure) and the calls that create, suspend and delete it.

Names are deterministic (``resource.job_name``) so that a handler re-run after an operator restart
meets 409 AlreadyExists instead of starting a second worker for the stream. Image, service account
and credentials come from the operator's configuration, never from the SmartResumeRun.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from smart_resume import resource
from smart_resume.config import JobSettings, secret_env_names
from smart_resume.core.spec import RunSpec
from smart_resume.exit_codes import EXIT_CONFIGURATION

WORKER_USER_ID = 10001


def build_job_manifest(
    *,
    run: Mapping[str, Any],
    spec: RunSpec,
    stream: int,
    settings: JobSettings,
    forwarded_env: Mapping[str, str],
) -> dict[str, Any]:
    """The Job that runs ``smart-resume worker`` for ``stream`` of ``run`` (a SmartResumeRun
    body)."""
    meta = run["metadata"]
    labels = resource.labels(meta["name"], stream)
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in forwarded_env.items()]
    env += [
        {
            "name": name,
            "valueFrom": {
                "secretKeyRef": {"name": settings.credentials_secret, "key": name, "optional": True}
            },
        }
        for name in secret_env_names()
    ]
    env.append(
        {
            "name": "SMART_RESUME_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        }
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": resource.job_name(meta["name"], stream),
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [owner_reference(run)],
        },
        "spec": {
            "activeDeadlineSeconds": spec.deadline_seconds,
            "backoffLimit": settings.backoff_limit,
            # Never two workers on one stream: a replacement pod starts only once the old one is
            # gone.
            "podReplacementPolicy": "Failed",
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": "worker",
                            "operator": "In",
                            "values": [EXIT_CONFIGURATION],
                        },
                    }
                ]
            },
            "suspend": spec.suspend,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": settings.service_account,
                    **(
                        {"schedulerName": settings.scheduler_name}
                        if settings.scheduler_name
                        else {}
                    ),
                    "terminationGracePeriodSeconds": settings.termination_grace_period_seconds,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": WORKER_USER_ID,
                        "runAsGroup": WORKER_USER_ID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "worker",
                            "image": settings.image,
                            "imagePullPolicy": settings.image_pull_policy,
                            "command": ["smart-resume", "worker"],
                            "args": ["--run", meta["name"], "--stream", str(stream)],
                            "env": env,
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def owner_reference(run: Mapping[str, Any]) -> dict[str, Any]:
    meta = run["metadata"]
    return {
        "apiVersion": resource.API_VERSION,
        "kind": resource.KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class Jobs:
    """Create, suspend and delete the Jobs of runs."""

    def __init__(self, api: client.ApiClient) -> None:
        self._batch = client.BatchV1Api(api)

    def ensure(self, manifest: dict[str, Any]) -> bool:
        """Create the Job; ``False`` when it already exists (a re-run handler), which is fine."""
        try:
            response = self._batch.create_namespaced_job(
                manifest["metadata"]["namespace"],
                manifest,  # type: ignore[arg-type]  # the client validates a dict into a V1Job
                _preload_content=False,  # the Job as created is not read: not parsed either
            )
            response.drain_conn()  # type: ignore[attr-defined]  # a urllib3 response
            response.release_conn()  # type: ignore[attr-defined]
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def exists(self, namespace: str, name: str) -> bool:
        try:
            self._batch.read_namespaced_job(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def set_suspended(self, namespace: str, name: str, suspended: bool) -> None:
        self._batch.patch_namespaced_job(name, namespace, {"spec": {"suspend": suspended}})

    def delete(self, namespace: str, name: str) -> None:
        """Delete with Background propagation, or the pods would be orphaned and keep running."""
        try:
            self._batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise
