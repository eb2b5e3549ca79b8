"""Fixtures that run the real operator against the real control plane.

The operator runs as a subprocess (``smart-resume operator -n <test namespace>``) with the identity
of the operator ServiceAccount from ``manifests/rbac-operator.yaml``, so its RBAC is exercised;
workers run as pods through the pod runner with the worker ServiceAccount from
``manifests/rbac-worker.yaml``. Clients come from the fake Airtable over real HTTP; tasks are the
test-only implementations of ``support.fake_tasks``.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from harness import manifests
from harness.waiting import wait_for
from smart_resume.integrations.airtable_fields import ClientsTable
from smart_resume.testing.fake_airtable import FakeAirtable
from support import fake_tasks

MASTER_BASE = "appMASTERBASE0001"
AIRTABLE_KEY = "patTESTKEY.secret-value-0001"
OPERATOR_NAMESPACE = "smart-resume-system"
CLIENT_FIELDS = [
    ClientsTable.CLIENT_ID, ClientsTable.CLIENT_NAME, ClientsTable.STATUS,
    ClientsTable.PROCESSING_STREAM, ClientsTable.AIRTABLE_BASE_ID,
    fake_tasks.BEHAVIOUR_FIELD, fake_tasks.SECONDS_FIELD,
]


class Airtable:
    """The fake Airtable with the master base's Clients table, and a way to add clients."""

    def __init__(self, fake: FakeAirtable) -> None:
        self.fake = fake
        fake.add_table(MASTER_BASE, ClientsTable.TABLE, fields=CLIENT_FIELDS)

    def add_client(self, client_id: str, stream: int, *, behaviour: str = "",
                   task_seconds: float = 0.05, name: str | None = None) -> None:
        fields: dict[str, Any] = {
            ClientsTable.CLIENT_ID: client_id, ClientsTable.CLIENT_NAME: name or client_id.title(),
            ClientsTable.STATUS: "Active", ClientsTable.PROCESSING_STREAM: stream,
            ClientsTable.AIRTABLE_BASE_ID: f"app{client_id[:14]:0<14}",
            fake_tasks.SECONDS_FIELD: task_seconds,
        }
        if behaviour:
            fields[fake_tasks.BEHAVIOUR_FIELD] = behaviour
        self.fake.add_records(MASTER_BASE, ClientsTable.TABLE, [fields])


@pytest.fixture()
def airtable() -> Iterator[Airtable]:
    with FakeAirtable(api_key=AIRTABLE_KEY) as fake:
        yield Airtable(fake)


@pytest.fixture(scope="session")
def operator_kubeconfig(api_client: client.ApiClient, cluster: Any, crds: list[str],
                        tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig with a token of the operator ServiceAccount (manifests/rbac-operator.yaml)."""
    core = client.CoreV1Api(api_client)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=OPERATOR_NAMESPACE)))
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    manifests.apply(api_client, manifests.load("rbac-operator.yaml"))
    manifests.apply(api_client, [d for d in manifests.load("rbac-worker.yaml") if d["kind"] == "ClusterRole"])
    token = core.create_namespaced_service_account_token(
        "smart-resume-operator", OPERATOR_NAMESPACE,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=24 * 3600))).status.token
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: local\n  cluster:\n    server: {cluster.server}\n"
        f"    certificate-authority-data: {base64.b64encode(cluster.ca_data).decode()}\n"
        f"users:\n- name: operator\n  user:\n    token: {token}\n"
        "contexts:\n- name: operator\n  context:\n    cluster: local\n    user: operator\n"
        "current-context: operator\n")
    return path


@pytest.fixture()
def run_namespace(api_client: client.ApiClient, namespace: str) -> str:
    """The test namespace, prepared like a runs namespace: worker identity and credentials Secret."""
    manifests.apply(api_client, [d for d in manifests.load("rbac-worker.yaml", namespace=namespace)
                                 if d["kind"] != "ClusterRole"])
    client.CoreV1Api(api_client).create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="smart-resume-credentials"),
        string_data={"SMART_RESUME_AIRTABLE_API_KEY": AIRTABLE_KEY}))
    return namespace


class OperatorProcess:
    """``smart-resume operator`` as a subprocess; can be stopped and restarted mid-run."""

    def __init__(self, env: dict[str, str], namespace: str, log_path: Path) -> None:
        self._env = env
        self._namespace = namespace
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        port = _free_port()
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "smart_resume.cli", "--log-format", "plain", "--verbose",
                 "operator", "-n", self._namespace, "--liveness", f"http://127.0.0.1:{port}/healthz"],
                env=self._env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self._healthy(port), timeout=30, what="operator liveness endpoint")
        return self

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(sig)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _healthy(self, port: int) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(f"operator exited with {self._process.returncode}:\n{self.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False


@pytest.fixture()
def task_log(tmp_path: Path) -> Path:
    return tmp_path / "task-log.txt"


@pytest.fixture()
def operator_env(operator_kubeconfig: Path, airtable: Airtable, task_log: Path) -> dict[str, str]:
    """The operator's environment: its configuration, handed on to the workers it starts."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "KUBECONFIG": str(operator_kubeconfig),
        "SMART_RESUME_AIRTABLE_ENDPOINT_URL": airtable.fake.url,
        "SMART_RESUME_AIRTABLE_MASTER_BASE_ID": MASTER_BASE,
        "SMART_RESUME_JOB_TASK_PLUGINS": "support.fake_tasks:register",
        "SMART_RESUME_JOB_TERMINATION_GRACE_PERIOD_SECONDS": "5",
        "SMART_RESUME_JOB_BACKOFF_LIMIT": "0",
        "SMART_RESUME_LEASE_RENEW_INTERVAL_SECONDS": "1",
        "SMART_RESUME_LEASE_DURATION_SECONDS": "6",
        fake_tasks.LOG_ENV: str(task_log),
    }


@pytest.fixture()
def operator(operator_env: dict[str, str], run_namespace: str, tmp_path: Path,
             request: pytest.FixtureRequest) -> Iterator[OperatorProcess]:
    process = OperatorProcess(operator_env, run_namespace, tmp_path / "operator.log").start()
    try:
        yield process
    finally:
        process.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            sys.stderr.write(f"\n--- operator log ---\n{process.log()[-6000:]}\n")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
