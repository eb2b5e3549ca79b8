"""The install on a real API server: kustomize renders it, the server accepts it, and each account
may do exactly what README "Least privilege" says, asked of the API server with the account's own
token (SelfSubjectRulesReview for everything it may do in a served namespace, and
SelfSubjectAccessReview for what it may not do elsewhere).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from harness import manifests
from harness.binaries import locate_binaries
from harness.cluster import Cluster
from smart_resume import resource
from smart_resume.config import JobSettings
from smart_resume.core.spec import RunSpec
from smart_resume.kube.jobs import build_job_manifest

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
STREAM_LEASES = [resource.lease_name(n) for n in range(1, 65)]
SELF_REVIEW_GROUPS = {"authorization.k8s.io", "authentication.k8s.io"}
"""Every authenticated user may review its own rights (system:basic-user); not ours to test."""

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
"""``kubectl(*args, stdin=None, check=True)`` against the test cluster."""
Rule = tuple[str, str, str, str]
"""(API group, resource, verb, resource name or "")."""


def _rules(group: str, res: str, verbs: str, names: list[str] | None = None) -> set[Rule]:
    return {(group, res, verb, name) for verb in verbs.split() for name in (names or [""])}


WORKER_RULES = (
    _rules("smartresume.io", "smartresumeruns", "get")
    | _rules("smartresume.io", "smartresumeruns/status", "patch")
    | _rules("smartresume.io", "smartresumestreams", "get")
    | _rules("smartresume.io", "smartresumestreams/status", "patch")
    | _rules("batch", "jobs", "get")
    | _rules("coordination.k8s.io", "leases", "get patch delete", STREAM_LEASES)
)
OPERATOR_DISCOVERY_RULES = _rules(
    "apiextensions.k8s.io", "customresourcedefinitions", "list watch"
) | _rules("", "namespaces", "list watch")
OPERATOR_RULES = (
    OPERATOR_DISCOVERY_RULES
    | _rules("smartresume.io", "smartresumeruns", "get list watch patch delete")
    | _rules("smartresume.io", "smartresumeruns/status", "patch")
    | _rules("smartresume.io", "smartresumeruns/finalizers", "update")
    | _rules("smartresume.io", "smartresumestreams", "get list watch create")
    | _rules("smartresume.io", "smartresumestreams/status", "update")
    | _rules("batch", "jobs", "list watch create patch delete")
    | _rules("coordination.k8s.io", "leases", "create")
    | _rules("coordination.k8s.io", "leases", "get update patch delete", STREAM_LEASES)
    | _rules("", "events", "create")
)
SCHEDULER_RULES = _rules("smartresume.io", "smartresumeruns", "create")


@pytest.fixture(scope="module")
def kubectl(cluster: Cluster) -> Kubectl:
    binary = locate_binaries().kubectl

    def run(
        *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(binary), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        )
        if check and result.returncode:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    return run


def _render(kubectl: Kubectl, directory: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(kubectl("kustomize", str(directory)).stdout) if d]


def _by_kind_and_name(documents: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


def test_kustomize__renders_the_whole_install(kubectl: Kubectl) -> None:
    """`kubectl kustomize manifests/` yields every object README "Install on kind" lists, and
    the workers get the operator's image."""
    objects = _by_kind_and_name(_render(kubectl, REPO / "manifests"))
    assert set(objects) == {
        ("Namespace", "smart-resume-system"),
        ("Namespace", "smart-resume-runs"),
        ("CustomResourceDefinition", resource.CRD_NAME),
        ("CustomResourceDefinition", f"{resource.STREAM_PLURAL}.{resource.GROUP}"),
        ("ServiceAccount", "smart-resume-operator"),
        ("Role", "smart-resume-operator-run-ids"),
        ("RoleBinding", "smart-resume-operator-run-ids"),
        ("ClusterRole", "smart-resume-operator-discovery"),
        ("ClusterRoleBinding", "smart-resume-operator-discovery"),
        ("ConfigMap", "smart-resume-config"),
        ("Deployment", "smart-resume-operator"),
        ("Service", "smart-resume-operator-metrics"),
        ("NetworkPolicy", "smart-resume-operator"),
        ("Role", "smart-resume-operator"),
        ("RoleBinding", "smart-resume-operator"),
        ("ServiceAccount", "smart-resume-worker"),
        ("Role", "smart-resume-worker"),
        ("RoleBinding", "smart-resume-worker"),
        ("Secret", "smart-resume-credentials"),
        ("NetworkPolicy", "smart-resume-workers"),
        ("ServiceAccount", "smart-resume-scheduler"),
        ("Role", "smart-resume-scheduler"),
        ("RoleBinding", "smart-resume-scheduler"),
        ("ConfigMap", "smart-resume-nightly-run"),
        ("CronJob", "smart-resume-nightly"),
        ("NetworkPolicy", "smart-resume-nightly"),
    }
    deployment = objects[("Deployment", "smart-resume-operator")]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    settings = objects[("ConfigMap", "smart-resume-config")]["data"]
    assert settings["SMART_RESUME_JOB_IMAGE"] == container["image"] == "smart-resume-operator:0.1.0"
    service = objects[("Service", "smart-resume-operator-metrics")]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert {"name": "metrics", "containerPort": 9090} in container["ports"]


def test_kustomize__applies_with_server_dry_run(kubectl: Kubectl) -> None:
    """`kubectl apply -k manifests/ --dry-run=server` passes: every object is valid for this API
    server, and Pod Security (restricted, warn mode) finds nothing to warn about.

    The namespaces are created for real first: a dry run creates nothing, so objects in a
    namespace that does not exist yet would be rejected.
    """
    kubectl("apply", "--filename", str(REPO / "manifests" / "namespaces.yaml"))
    result = kubectl("apply", "--kustomize", str(REPO / "manifests"), "--dry-run=server")
    assert "deployment.apps/smart-resume-operator created (server dry run)" in result.stdout
    assert "cronjob.batch/smart-resume-nightly created (server dry run)" in result.stdout
    assert "PodSecurity" not in result.stderr


def test_kustomize__dry_run_reports_a_pod_that_breaks_the_restricted_profile(
    kubectl: Kubectl,
) -> None:
    """The Pod Security check of the test above is live: the operator's Deployment without its
    seccomp profile draws a warning from the same dry run."""
    kubectl("apply", "--filename", str(REPO / "manifests" / "namespaces.yaml"))
    objects = _by_kind_and_name(_render(kubectl, REPO / "manifests"))
    deployment = objects[("Deployment", "smart-resume-operator")]
    del deployment["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]
    result = kubectl(
        "apply", "--filename", "-", "--dry-run=server", stdin=yaml.safe_dump(deployment)
    )
    assert 'would violate PodSecurity "restricted:latest"' in result.stderr
    assert "seccompProfile" in result.stderr


def test_worker_job__passes_the_restricted_profile_of_the_runs_namespace(kubectl: Kubectl) -> None:
    """The Job the operator creates for a stream draws no Pod Security warning in the install's
    runs namespace (restricted): its pods would be admitted."""
    kubectl("apply", "--filename", str(REPO / "manifests" / "namespaces.yaml"))
    run = {
        "metadata": {"name": "nightly-x7k2", "namespace": "smart-resume-runs", "uid": "0000"},
        "spec": {"streams": [1]},
    }
    job = build_job_manifest(
        run=run,
        spec=RunSpec.from_body(run),
        stream=1,
        settings=JobSettings(),
        forwarded_env={},
    )
    result = kubectl("apply", "--filename", "-", "--dry-run=server", stdin=yaml.safe_dump(job))
    assert "created (server dry run)" in result.stdout
    assert "PodSecurity" not in result.stderr


def test_overlay__serves_another_namespace_as_the_readme_shows(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    """The overlay of README "Serving more namespaces" adds team-b's Roles and bindings (the
    worker's subject moved there, the operator's left in smart-resume-system), and the operator
    serves both namespaces."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Serving more namespaces", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    files = re.split(r"^# (my-install/\S+)\n", block, flags=re.MULTILINE)[1:]
    (tmp_path / "manifests").symlink_to(REPO / "manifests")  # the overlay sits next to it
    for name, text in zip(files[::2], files[1::2], strict=True):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    rendered = _render(kubectl, tmp_path / "my-install")
    team_b = [d for d in rendered if d["metadata"].get("namespace") == "team-b"]
    rbac = {"Role", "RoleBinding", "ServiceAccount"}
    assert sorted(
        (d for d in team_b if d["kind"] in rbac), key=lambda d: (d["kind"], d["metadata"]["name"])
    ) == sorted(
        manifests.load("runs/rbac.yaml", namespace="team-b"),
        key=lambda d: (d["kind"], d["metadata"]["name"]),
    )
    bindings = _by_kind_and_name(team_b)
    assert bindings[("RoleBinding", "smart-resume-operator")]["subjects"][0]["namespace"] == (
        "smart-resume-system"
    )
    assert bindings[("RoleBinding", "smart-resume-worker")]["subjects"][0]["namespace"] == "team-b"
    deployment = _by_kind_and_name(rendered)[("Deployment", "smart-resume-operator")]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace=")] == [
        "--namespace=smart-resume-runs",
        "--namespace=team-b",
    ]


# -- who may do what ------------------------------------------------------------------------


@pytest.fixture()
def served(api_client: client.ApiClient, run_namespace: str) -> str:
    """A served namespace with the nightly CronJob's identity too."""
    manifests.apply(api_client, manifests.load("nightly/rbac.yaml", namespace=run_namespace))
    return run_namespace


def _identity(
    cluster: Cluster, api: client.ApiClient, tmp_path: Path, namespace: str, account: str
) -> client.ApiClient:
    kubeconfig = cluster.kubeconfig_for(
        api, tmp_path / f"{account}.kubeconfig", namespace=namespace, account=account
    )
    return config.new_client_from_config(config_file=str(kubeconfig))


def _granted(identity: client.ApiClient, namespace: str) -> set[Rule]:
    """Everything ``identity`` may do in ``namespace`` (namespaced and cluster-wide rules)."""
    review = client.AuthorizationV1Api(identity).create_self_subject_rules_review(
        client.V1SelfSubjectRulesReview(
            spec=client.V1SelfSubjectRulesReviewSpec(namespace=namespace)
        )
    )
    return {
        (group, res, verb, name)
        for rule in review.status.resource_rules
        for group in rule.api_groups or [""]
        for res in rule.resources or []
        for verb in rule.verbs
        for name in rule.resource_names or [""]
        if group not in SELF_REVIEW_GROUPS
    }


def _allowed(
    identity: client.ApiClient,
    verb: str,
    group: str,
    res: str,
    namespace: str | None = None,
    name: str | None = None,
) -> bool:
    resource_name, _, subresource = res.partition("/")
    review = client.AuthorizationV1Api(identity).create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb,
                    group=group,
                    resource=resource_name,
                    subresource=subresource or None,
                    namespace=namespace,
                    name=name,
                )
            )
        )
    )
    return bool(review.status.allowed)


def test_worker_rbac__only_its_run_and_the_stream_leases(
    cluster: Cluster, api_client: client.ApiClient, served: str, tmp_path: Path
) -> None:
    """The worker may read runs, patch their status and get/patch the 64 stream Leases in its
    namespace; nothing else: not another application's Lease, not Leases elsewhere."""
    worker = _identity(cluster, api_client, tmp_path, served, "smart-resume-worker")
    assert _granted(worker, served) == WORKER_RULES
    denied = [
        ("patch", "coordination.k8s.io", "leases", served, "other-app-leader-election"),
        ("get", "coordination.k8s.io", "leases", served, "smart-resume-stream-65"),
        ("create", "coordination.k8s.io", "leases", served, None),
        ("patch", "coordination.k8s.io", "leases", "kube-system", "smart-resume-stream-1"),
        ("get", "smartresume.io", "smartresumeruns", "kube-system", None),
        ("get", "", "secrets", served, "smart-resume-credentials"),
    ]
    assert [d for d in denied if _allowed(worker, *d)] == []


def test_operator_rbac__only_in_the_namespaces_it_serves(
    cluster: Cluster,
    api_client: client.ApiClient,
    operator_kubeconfig: Path,
    served: str,
) -> None:
    """The operator may manage runs, Jobs, stream Leases and Events in a served namespace, update
    the runs' finalizers (for blockOwnerDeletion), and only read CRDs and namespaces
    cluster-wide: no Job or Lease in kube-system or in its own namespace."""
    operator = config.new_client_from_config(config_file=str(operator_kubeconfig))
    assert _granted(operator, served) == OPERATOR_RULES
    assert _granted(operator, "kube-system") == OPERATOR_DISCOVERY_RULES
    denied = [
        ("create", "batch", "jobs", "kube-system", None),
        ("create", "coordination.k8s.io", "leases", "kube-system", None),
        ("create", "batch", "jobs", "smart-resume-system", None),
        ("list", "smartresume.io", "smartresumeruns", None, None),
        ("update", "coordination.k8s.io", "leases", served, "other-app-leader-election"),
        ("get", "", "secrets", served, "smart-resume-credentials"),
        ("create", "", "pods", served, None),
    ]
    assert [d for d in denied if _allowed(operator, *d)] == []


def test_scheduler_rbac__may_create_runs_and_nothing_else(
    cluster: Cluster, api_client: client.ApiClient, served: str, tmp_path: Path
) -> None:
    """The nightly CronJob's account may create SmartResumeRuns in its namespace, and nothing
    else: not read, change or delete them, and not create them elsewhere."""
    scheduler = _identity(cluster, api_client, tmp_path, served, "smart-resume-scheduler")
    assert _granted(scheduler, served) == SCHEDULER_RULES
    assert not _allowed(scheduler, "create", "smartresume.io", "smartresumeruns", "kube-system")
