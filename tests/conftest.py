"""Session-wide real parts: one Kubernetes control plane, the CRDs, a pod runner; a namespace per
test.

The control plane starts on first use, so pure unit tests never pay for it. With
``SMART_RESUME_TEST_KUBECONFIG`` pointing at an existing cluster (for example kind), the tests use
that cluster and start nothing; Job pods of the tests still run through the pod runner, because
they ask for its scheduler name, which no scheduler of a real cluster serves. The local control
plane writes an audit log of the operator's requests (``audit_log``), for the tests that count
them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from harness.cluster import RESTRICTED_POD_SECURITY, Cluster, install_crds
from harness.controlplane import ControlPlane
from harness.manifests import OPERATOR_USER
from harness.podrunner import PodRunner
from harness.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]
CRDS_DIR = REPO_ROOT / "crds"


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    external = os.environ.get("SMART_RESUME_TEST_KUBECONFIG")
    if external:
        if not Path(external).is_file():
            pytest.exit(f"SMART_RESUME_TEST_KUBECONFIG={external} is not a file", returncode=2)
        yield Cluster(Path(external))
        return
    plane = ControlPlane(
        Path(tempfile.mkdtemp(prefix="smart-resume-test-")),
        audit=True,
        audit_users=(OPERATOR_USER,),
    )
    try:
        state = plane.up()
    except Exception as exc:  # an actionable message, not a fixture traceback
        plane.down()
        pytest.exit(f"cannot start the local control plane: {exc}", returncode=3)
    try:
        yield Cluster(plane.kubeconfig, audit_log=plane.audit_log_path(state))
    finally:
        plane.down()
        plane.state_dir.rmdir()


@pytest.fixture()
def audit_log(cluster: Cluster) -> Path:
    """The audit log of the operator's requests (the local control plane only)."""
    if cluster.audit_log is None:
        pytest.skip("counts the operator's requests in the local control plane's audit log")
    return cluster.audit_log


@pytest.fixture(scope="session")
def api_client(cluster: Cluster) -> client.ApiClient:
    return cluster.api_client()


@pytest.fixture(scope="session")
def crds(api_client: client.ApiClient) -> list[str]:
    """Every CRD under crds/, installed (or updated) and Established."""
    return install_crds(api_client, CRDS_DIR)


@pytest.fixture(scope="session")
def pod_runner(cluster: Cluster, api_client: client.ApiClient) -> Iterator[PodRunner]:
    """Runs, as local processes, the Job pods that ask for the pod runner's scheduler name."""
    workdir = Path(tempfile.mkdtemp(prefix="smart-resume-pods-"))
    base_env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO_ROOT / "tests"),
        "PYTHONUNBUFFERED": "1",
    }
    runner = PodRunner(api_client, cluster, base_env=base_env, workdir=workdir).start()
    try:
        yield runner
    finally:
        runner.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture()
def namespace(api_client: client.ApiClient, pod_runner: PodRunner) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (with everything in it)."""
    core = client.CoreV1Api(api_client)
    name = f"t-{secrets.token_hex(4)}"
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=RESTRICTED_POD_SECURITY))
    )
    wait_for(
        lambda: _has_default_service_account(core, name),
        timeout=30,
        what=f"default service account in {name}",
    )
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


def _has_default_service_account(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.read_namespaced_service_account("default", namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True
