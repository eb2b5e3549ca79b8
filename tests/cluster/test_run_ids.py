"""Run IDs are unique for good: across namespaces, operator restarts and deleted runs."""

from __future__ import annotations

import concurrent.futures
import datetime
import re
from pathlib import Path

import pytest
from kubernetes import client

from cluster.conftest import OPERATOR_NAMESPACE
from harness import manifests
from harness.cluster import RESTRICTED_POD_SECURITY
from harness.operator import OperatorProcess
from harness.waiting import wait_for
from smart_resume import resource
from smart_resume.kube.runids import RunIdCounter
from support.runs import create_run, get_run

pytestmark = pytest.mark.cluster

DAY = datetime.date(2026, 12, 1)


def test_run_id_counter__racing_takers_never_share_a_number(
    api_client: client.ApiClient, operator_kubeconfig: Path
) -> None:
    """Eight takers (as eight operators would: a counter each, so each keeps its own last copy)
    taking 5 IDs each from one counter ConfigMap, with 409s and retries on the real API server,
    get 40 different, consecutive IDs; and a taker whose copy went stale still gets the next."""
    name = "test-run-ids-race"
    counters = [
        RunIdCounter(api_client, namespace=OPERATOR_NAMESPACE, name=name, today=lambda: DAY)
        for _ in range(8)
    ]
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            taken = list(pool.map(lambda n: counters[n % 8].take(), range(40)))
    finally:
        client.CoreV1Api(api_client).delete_namespaced_config_map(name, OPERATOR_NAMESPACE)
    assert sorted(taken) == [f"SR-261201-{n:03d}" for n in range(1, 41)]


def _run_id(api: client.ApiClient, namespace: str, name: str) -> str:
    def probe() -> str:
        return str((get_run(api, namespace, name).get("status") or {}).get("runId") or "")

    return wait_for(probe, timeout=60, what=f"run ID of {namespace}/{name}")


def test_run_ids__two_namespaces_restart_and_deletion_never_reuse_one(
    api_client: client.ApiClient,
    run_namespace: str,
    operator_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """Runs created at once in two namespaces, each watched by its own operator process, get
    different IDs of today; after deleting every run and restarting the operators, a new run
    gets an ID never handed out before."""
    core = client.CoreV1Api(api_client)
    other = f"{run_namespace}-b"
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=other, labels=RESTRICTED_POD_SECURITY))
    )
    manifests.apply(api_client, manifests.load("runs/rbac.yaml", namespace=other))  # served too
    operators = [
        OperatorProcess(operator_env, ns, tmp_path / f"operator-{ns}.log").start()
        for ns in (run_namespace, other)
    ]
    try:
        names = [(ns, f"adhoc-{i}") for i in range(3) for ns in (run_namespace, other)]
        for ns, name in names:
            create_run(api_client, ns, name, streams=[1], suspend=True)
        ids = {(ns, name): _run_id(api_client, ns, name) for ns, name in names}
        today = datetime.datetime.now(datetime.UTC).strftime("%y%m%d")
        assert len(set(ids.values())) == len(names), ids
        assert all(re.fullmatch(rf"SR-{today}-\d{{3,}}", run_id) for run_id in ids.values())

        for ns, name in names:
            client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
                resource.GROUP, resource.VERSION, ns, resource.PLURAL, name
            )
        for operator in operators:
            operator.stop()
            operator.start()
        create_run(api_client, other, "after-restart", streams=[1], suspend=True)
        later = _run_id(api_client, other, "after-restart")
    finally:
        for operator in operators:
            operator.stop()
        core.delete_namespace(other, propagation_policy="Background")
    assert later not in ids.values()
    assert later > max(ids.values())
