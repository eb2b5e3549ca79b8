"""`smart-resume report RUN` (and `kubectl smart-resume report RUN`) against a real run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client

from cluster.conftest import Airtable
from harness.binaries import locate_binaries
from harness.cluster import Cluster
from harness.operator import OperatorProcess
from support.runs import create_run, wait_phase

pytestmark = pytest.mark.cluster

BIN = Path(sys.executable).parent


def _report(
    cluster: Cluster, *args: str, kubectl: bool = False
) -> subprocess.CompletedProcess[str]:
    command = (
        [str(locate_binaries().kubectl), "smart-resume", "report", *args]
        if kubectl
        else [str(BIN / "smart-resume"), "report", *args]
    )
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        },
    )


def test_report__lists_streams_clients_and_tasks_of_a_finished_run(
    cluster: Cluster,
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
) -> None:
    """The table names every client with one line per task, fits 100 columns, and `-o json`
    carries the same clients."""
    for client_id, stream in (("acme-recruiting", 1), ("blue-harbor", 1), ("cedar-talent", 2)):
        airtable.add_client(client_id, stream)
    create_run(api_client, run_namespace, "reported", streams=[1, 2])
    wait_phase(api_client, run_namespace, "reported", {"Succeeded"})

    text = _report(cluster, "reported", "-n", run_namespace)
    as_json = _report(cluster, "reported", "-n", run_namespace, "-o", "json")

    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("Run reported (SR-") and lines[0].endswith(": Succeeded")
    assert max(len(line) for line in lines) <= 100
    for client_id in ("acme-recruiting", "blue-harbor", "cedar-talent"):
        assert any(line.split()[1:2] == [client_id] for line in lines if line[:1].isdigit())
    assert sum("lead scoring" in line for line in lines) == 3
    data = json.loads(as_json.stdout)
    assert sorted(c["client_id"] for c in data["clients"]) == [
        "acme-recruiting",
        "blue-harbor",
        "cedar-talent",
    ]
    assert {c["state"] for c in data["clients"]} == {"Completed"}


def test_report__watch_follows_the_run_until_it_ends(
    cluster: Cluster,
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
) -> None:
    """`--watch` prints the report again as the run moves, and returns once it has ended."""
    airtable.add_client("acme-recruiting", 1, task_seconds=1.0)
    airtable.add_client("blue-harbor", 1, task_seconds=1.0)
    create_run(api_client, run_namespace, "watched", streams=[1])

    watched = _report(cluster, "watched", "-n", run_namespace, "--watch")

    assert watched.returncode == 0, watched.stderr
    titles = [line for line in watched.stdout.splitlines() if line.startswith("Run watched")]
    assert len(titles) >= 2, watched.stdout
    assert titles[-1].endswith(": Succeeded")
    assert not titles[0].endswith(": Succeeded")


def test_report__as_a_kubectl_plugin_and_for_a_missing_run(
    cluster: Cluster, api_client: client.ApiClient, run_namespace: str
) -> None:
    """kubectl finds the plugin on PATH; a run that does not exist is a clear error, exit 1."""
    missing = _report(cluster, "no-such-run", "-n", run_namespace, kubectl=True)

    assert missing.returncode == 1
    assert f"no SmartResumeRun 'no-such-run' in namespace '{run_namespace}'" in missing.stderr
