"""Proof that the test control plane is real: the Job, CronJob and garbage-collector controllers
act on our objects, and the pod runner plays the kubelet's part for Job pods."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from kubernetes import client, config

from harness.cluster import Cluster
from harness.podrunner import POD_RUNNER_SCHEDULER, PodRunner
from harness.waiting import wait_for
from smart_resume import resource
from smart_resume.config import JobSettings
from smart_resume.core.spec import RunSpec
from smart_resume.kube.jobs import build_job_manifest

pytestmark = pytest.mark.cluster


def _job(name: str, command: list[str], **spec: object) -> client.V1Job:
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    scheduler_name=POD_RUNNER_SCHEDULER,
                    termination_grace_period_seconds=2,
                    # The test namespaces enforce the `restricted` Pod Security Standard.
                    security_context=client.V1PodSecurityContext(
                        run_as_non_root=True,
                        run_as_user=10001,
                        seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
                    ),
                    containers=[
                        client.V1Container(
                            name="main",
                            image="local",
                            command=command,
                            security_context=client.V1SecurityContext(
                                allow_privilege_escalation=False,
                                capabilities=client.V1Capabilities(drop=["ALL"]),
                            ),
                        )
                    ],
                )
            ),
            **spec,
        ),
    )


def _condition(
    batch: client.BatchV1Api, namespace: str, name: str, kind: str
) -> client.V1JobCondition | None:
    job = batch.read_namespaced_job(name, namespace)
    return next(
        (c for c in job.status.conditions or [] if c.type == kind and c.status == "True"), None
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_job__exit_zero_completes(api_client: client.ApiClient, namespace: str) -> None:
    """A Job whose command exits 0 is marked Complete by the real Job controller."""
    batch = client.BatchV1Api(api_client)
    batch.create_namespaced_job(namespace, _job("ok", ["sh", "-c", "echo hello from $HOSTNAME"]))
    wait_for(
        lambda: _condition(batch, namespace, "ok", "Complete"), timeout=60, what="Job Complete"
    )
    assert batch.read_namespaced_job("ok", namespace).status.succeeded == 1


def test_job__exit_one_fails(
    api_client: client.ApiClient, namespace: str, pod_runner: PodRunner
) -> None:
    """A Job whose only pod exits 1 (backoffLimit 0) is marked Failed with BackoffLimitExceeded."""
    batch = client.BatchV1Api(api_client)
    batch.create_namespaced_job(namespace, _job("bad", ["sh", "-c", "exit 1"]))
    failed = wait_for(
        lambda: _condition(batch, namespace, "bad", "Failed"), timeout=60, what="Job Failed"
    )
    assert failed.reason == "BackoffLimitExceeded"
    assert [pod.exit_code for pod in pod_runner.pods(namespace)] == [1]


def test_job__active_deadline_kills_the_process(
    api_client: client.ApiClient, namespace: str, pod_runner: PodRunner
) -> None:
    """A sleeping pod past activeDeadlineSeconds ends Failed/DeadlineExceeded and its process is
    gone."""
    batch = client.BatchV1Api(api_client)
    batch.create_namespaced_job(
        namespace, _job("slow", ["sleep", "600"], active_deadline_seconds=3)
    )
    failed = wait_for(
        lambda: _condition(batch, namespace, "slow", "Failed"),
        timeout=90,
        what="Job Failed by its deadline",
    )
    assert failed.reason == "DeadlineExceeded"
    (pod,) = pod_runner.pods(namespace)
    assert pod.finished.wait(10), "the pod runner did not see its process end"
    assert pod.pid is not None and not _pid_alive(pod.pid)
    assert pod.exit_code == 143  # ended by SIGTERM within the grace period


def test_cronjob__creates_a_job_on_schedule(api_client: client.ApiClient, namespace: str) -> None:
    """A CronJob scheduled every minute gets a Job from the real CronJob controller."""
    batch = client.BatchV1Api(api_client)
    template = _job("unused", ["true"])
    batch.create_namespaced_cron_job(
        namespace,
        client.V1CronJob(
            metadata=client.V1ObjectMeta(name="every-minute"),
            spec=client.V1CronJobSpec(
                schedule="* * * * *",
                job_template=client.V1JobTemplateSpec(spec=template.spec),
            ),
        ),
    )
    jobs = wait_for(
        lambda: batch.list_namespaced_job(namespace).items,
        timeout=130,
        what="a Job created by the CronJob",
    )
    assert jobs[0].metadata.owner_references[0].kind == "CronJob"
    assert jobs[0].metadata.owner_references[0].name == "every-minute"


def test_garbage_collector__deleting_owner_removes_owned(
    api_client: client.ApiClient, namespace: str
) -> None:
    """Objects whose owner is deleted are removed by the real garbage collector."""
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    for name in ("child-a", "child-b"):
        core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=name, owner_references=[reference])
            ),
        )
    core.delete_namespaced_config_map("owner", namespace)

    def children_left() -> list[str]:
        names = [cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items]
        return [name for name in names if name.startswith("child-")]

    wait_for(lambda: not children_left(), timeout=60, what="owned ConfigMaps to be collected")


def test_pod_security__test_namespaces_refuse_pods_short_of_restricted(
    api_client: client.ApiClient, namespace: str
) -> None:
    """Pod Security Admission enforces `restricted` on the test namespaces, as on the runs'
    namespaces of a hardened cluster: a pod without the restricted security context is refused."""
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="rooted"),
        spec=client.V1PodSpec(
            scheduler_name=POD_RUNNER_SCHEDULER,
            containers=[client.V1Container(name="main", image="local", command=["true"])],
        ),
    )
    with pytest.raises(client.ApiException) as caught:
        client.CoreV1Api(api_client).create_namespaced_pod(namespace, pod)
    assert caught.value.status == 403
    message = json.loads(caught.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest"' in message
    assert "runAsNonRoot" in message


def test_owner_references__block_owner_deletion_needs_the_owners_finalizers(
    api_client: client.ApiClient, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """OwnerReferencesPermissionEnforcement runs: an account that may create ConfigMaps but not
    update their finalizers cannot set blockOwnerDeletion on an owner reference to one."""
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="maker"))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="maker"),
            rules=[
                client.V1PolicyRule(
                    api_groups=[""], resources=["configmaps"], verbs=["create", "get"]
                )
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="maker"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="maker"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="maker", namespace=namespace)
            ],
        ),
    )
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    kubeconfig = cluster.kubeconfig_for(
        api_client, tmp_path / "kubeconfig", namespace=namespace, account="maker"
    )
    maker = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))

    def child(name: str, *, block: bool) -> client.V1ConfigMap:
        reference = client.V1OwnerReference(
            api_version="v1",
            kind="ConfigMap",
            name="owner",
            uid=owner.metadata.uid,
            block_owner_deletion=block,
        )
        return client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name, owner_references=[reference])
        )

    maker.create_namespaced_config_map(namespace, child("plain", block=False))
    with pytest.raises(client.ApiException) as caught:
        maker.create_namespaced_config_map(namespace, child("blocking", block=True))
    assert caught.value.status == 403
    assert "cannot set blockOwnerDeletion" in caught.value.body


def test_pod_security__the_worker_pod_template_is_restricted(
    api_client: client.ApiClient, namespace: str
) -> None:
    """The pod of a stream Job, as the operator builds it, is admitted (server-side dry run) in
    a namespace enforcing `restricted`."""
    run = {
        "apiVersion": resource.API_VERSION,
        "kind": resource.KIND,
        "metadata": {"name": "nightly", "namespace": namespace, "uid": "0000-1111"},
        "spec": {"streams": [1]},
    }
    job = build_job_manifest(
        run=run,
        spec=RunSpec.from_body(run),
        stream=1,
        settings=JobSettings(service_account="default"),  # the worker's own is not needed here
        forwarded_env={},
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "worker-dry-run"},
        "spec": job["spec"]["template"]["spec"],
    }
    client.CoreV1Api(api_client).create_namespaced_pod(namespace, pod, dry_run="All")
