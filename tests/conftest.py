"""Session-wide real parts: one Kubernetes control plane, the CRDs, a pod runner; a namespace per test.

The control plane starts on first use, so pure unit tests never pay for it. With
``SMART_RESUME_TEST_KUBECONFIG`` pointing at an existing cluster (for example kind), the tests use
that cluster and start nothing; the pod runner then only runs when the cluster has no nodes
(no kubelet to run pods).
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from harness.controlplane import ControlPlane
from harness.podrunner import PodRunner
from harness.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]
CRDS_DIR = REPO_ROOT / "crds"


class Cluster:
    """Connection facts of the cluster under test."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        loaded = yaml.safe_load(kubeconfig.read_text())
        context = next(c["context"] for c in loaded["contexts"]
                       if c["name"] == loaded["current-context"])
        cluster = next(c["cluster"] for c in loaded["clusters"] if c["name"] == context["cluster"])
        self.server: str = cluster["server"]
        self.ca_data = base64.b64decode(cluster.get("certificate-authority-data", ""))

    def api_client(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    external = os.environ.get("SMART_RESUME_TEST_KUBECONFIG")
    if external:
        if not Path(external).is_file():
            pytest.exit(f"SMART_RESUME_TEST_KUBECONFIG={external} is not a file", returncode=2)
        yield Cluster(Path(external))
        return
    plane = ControlPlane(Path(tempfile.mkdtemp(prefix="smart-resume-test-")))
    try:
        plane.up()
    except Exception as exc:  # an actionable message, not a fixture traceback
        plane.down()
        pytest.exit(f"cannot start the local control plane: {exc}", returncode=3)
    try:
        yield Cluster(plane.kubeconfig)
    finally:
        plane.down()
        plane.state_dir.rmdir()


@pytest.fixture(scope="session")
def api_client(cluster: Cluster) -> client.ApiClient:
    return cluster.api_client()


@pytest.fixture(scope="session")
def crds(api_client: client.ApiClient) -> list[str]:
    """Install (or update) every CRD under crds/ and wait until each is Established."""
    extensions = client.ApiextensionsV1Api(api_client)
    names = []
    for path in sorted(CRDS_DIR.glob("*.yaml")):
        for manifest in yaml.safe_load_all(path.read_text()):
            if not manifest:
                continue
            name = manifest["metadata"]["name"]
            try:
                current = extensions.read_custom_resource_definition(name)
                manifest["metadata"]["resourceVersion"] = current.metadata.resource_version
                extensions.replace_custom_resource_definition(name, manifest)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
                extensions.create_custom_resource_definition(manifest)
            names.append(name)
    for name in names:
        wait_for(lambda n=name: _established(extensions, n), timeout=30, what=f"CRD {name} Established")
    return names


def _established(extensions: client.ApiextensionsV1Api, name: str) -> bool:
    conditions = extensions.read_custom_resource_definition(name).status.conditions or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


@pytest.fixture(scope="session")
def pod_runner(cluster: Cluster, api_client: client.ApiClient) -> Iterator[PodRunner | None]:
    """Runs Job pods as local processes when the cluster has no kubelet (no nodes)."""
    if client.CoreV1Api(api_client).list_node().items:
        yield None
        return
    workdir = Path(tempfile.mkdtemp(prefix="smart-resume-pods-"))
    base_env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO_ROOT / "tests"),
        "PYTHONUNBUFFERED": "1",
    }
    runner = PodRunner(api_client, server=cluster.server, ca_data=cluster.ca_data,
                       base_env=base_env, workdir=workdir).start()
    try:
        yield runner
    finally:
        runner.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture()
def namespace(api_client: client.ApiClient, pod_runner: PodRunner | None) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (with everything in it)."""
    core = client.CoreV1Api(api_client)
    name = f"t-{secrets.token_hex(4)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(lambda: _has_default_service_account(core, name), timeout=30,
             what=f"default service account in {name}")
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
