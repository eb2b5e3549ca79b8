"""Fixtures that run the real operator against the real control plane.

The operator runs as a subprocess (``smart-resume operator -n <test namespace>``) with the identity
of the operator ServiceAccount from ``manifests/operator/rbac.yaml``, and each test namespace is
served like ``smart-resume-runs``, with the Roles and RoleBindings of ``manifests/runs/rbac.yaml``,
so the install's RBAC is exercised; workers run as pods through the pod runner with the worker
ServiceAccount from there. Clients come from the fake Airtable over real HTTP; tasks are the
test-only implementations of ``support.fake_tasks``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from fakes.fake_airtable import FakeAirtable
from fakes.records import add_master_base, client_record
from harness import manifests
from harness.cluster import Cluster
from harness.manifests import OPERATOR_NAMESPACE
from harness.operator import OperatorProcess
from harness.podrunner import POD_RUNNER_SCHEDULER
from smart_resume.integrations.airtable_fields import ClientsTable
from support import fake_tasks

MASTER_BASE = "appMASTERBASE0001"
AIRTABLE_KEY = "patTESTKEY.secret-value-0001"


class Airtable:
    """The fake Airtable with the master base's tables, and a way to add clients."""

    def __init__(self, fake: FakeAirtable) -> None:
        self.fake = fake
        add_master_base(
            fake,
            MASTER_BASE,
            extra_client_fields=(fake_tasks.BEHAVIOUR_FIELD, fake_tasks.SECONDS_FIELD),
        )

    def records(self, table: str) -> list[dict[str, Any]]:
        """The fields of every record of a master-base table, in creation order."""
        return [record["fields"] for record in self.fake.records(MASTER_BASE, table)]

    def add_client(
        self,
        client_id: str,
        stream: int,
        *,
        behaviour: str = "",
        task_seconds: float = 0.05,
        name: str | None = None,
    ) -> None:
        fields: dict[str, Any] = {fake_tasks.SECONDS_FIELD: task_seconds}
        if behaviour:
            fields[fake_tasks.BEHAVIOUR_FIELD] = behaviour
        record = client_record(
            client_id,
            name=name or client_id.title(),
            stream=stream,
            base_id=f"app{client_id[:14]:0<14}",
            **fields,
        )
        self.fake.add_records(MASTER_BASE, ClientsTable.TABLE, [record])


@pytest.fixture()
def airtable() -> Iterator[Airtable]:
    with FakeAirtable(api_key=AIRTABLE_KEY) as fake:
        yield Airtable(fake)


@pytest.fixture(scope="session")
def operator_kubeconfig(
    api_client: client.ApiClient,
    cluster: Cluster,
    crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A kubeconfig with a token of the operator ServiceAccount (manifests/operator/rbac.yaml)."""
    core = client.CoreV1Api(api_client)
    try:
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=OPERATOR_NAMESPACE))
        )
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    manifests.apply(api_client, manifests.load("operator/rbac.yaml"))
    return cluster.kubeconfig_for(
        api_client,
        tmp_path_factory.mktemp("operator") / "kubeconfig",
        namespace=OPERATOR_NAMESPACE,
        account="smart-resume-operator",
    )


@pytest.fixture()
def run_namespace(api_client: client.ApiClient, namespace: str) -> str:
    """The test namespace, served like a runs namespace: the operator's and the workers' Roles,
    the worker identity, and the credentials Secret."""
    manifests.apply(api_client, manifests.load("runs/rbac.yaml", namespace=namespace))
    client.CoreV1Api(api_client).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="smart-resume-credentials"),
            string_data={"SMART_RESUME_AIRTABLE_API_KEY": AIRTABLE_KEY},
        ),
    )
    return namespace


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
        # The operator's own key (the run records); workers get theirs from the Secret only.
        "SMART_RESUME_AIRTABLE_API_KEY": AIRTABLE_KEY,
        "SMART_RESUME_AIRTABLE_RATE_LIMIT_PENALTY_SECONDS": "1",
        "SMART_RESUME_AIRTABLE_RECORDS_RETRY_SECONDS": "1",
        "SMART_RESUME_JOB_TASK_PLUGINS": "support.fake_tasks:register",
        "SMART_RESUME_JOB_SCHEDULER_NAME": POD_RUNNER_SCHEDULER,
        "SMART_RESUME_JOB_TERMINATION_GRACE_PERIOD_SECONDS": "5",
        "SMART_RESUME_JOB_BACKOFF_LIMIT": "0",
        "SMART_RESUME_LEASE_RENEW_INTERVAL_SECONDS": "1",
        "SMART_RESUME_LEASE_RENEW_DEADLINE_SECONDS": "4",
        "SMART_RESUME_LEASE_DURATION_SECONDS": "6",
        fake_tasks.LOG_ENV: str(task_log),
    }


@pytest.fixture()
def operator(
    operator_env: dict[str, str], run_namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OperatorProcess]:
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
