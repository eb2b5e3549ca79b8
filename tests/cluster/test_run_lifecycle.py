"""The run lifecycle end to end: real operator, real control plane, worker pods run by the pod runner."""

from __future__ import annotations

import collections

import pytest
from kubernetes import client

from cluster.conftest import Airtable, OperatorProcess
from harness.waiting import wait_for
from smart_resume import resource
from support.fake_tasks import read_log
from support.runs import create_run, get_run, wait_phase

pytestmark = pytest.mark.cluster

TASKS = ["lead_scoring", "post_harvesting", "post_scoring"]


def _completions(task_log: object) -> collections.Counter[tuple[str, str]]:
    return collections.Counter((c, t) for event, _, c, t in read_log(str(task_log)) if event == "completed")


def _events(api: client.ApiClient, namespace: str, name: str) -> list[str]:
    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}").items
    return [event.reason for event in events]


def test_run__three_streams_succeed(api_client: client.ApiClient, run_namespace: str,
                                    airtable: Airtable, operator: OperatorProcess,
                                    task_log: object) -> None:
    """A three-stream run processes every client of every stream once and ends Succeeded."""
    clients = {1: ["acme-recruiting", "blue-harbor"], 2: ["cedar-talent"], 3: ["delta-staffing", "ember-hr"]}
    for stream, ids in clients.items():
        for client_id in ids:
            airtable.add_client(client_id, stream)
    create_run(api_client, run_namespace, "nightly", streams=[1, 2, 3])

    run = wait_phase(api_client, run_namespace, "nightly", {"Succeeded"})

    status = run["status"]
    assert status["runId"].startswith("SR-")
    assert status["progress"] == "5/5"
    assert status["streamsSummary"] == "3/3"
    assert status["completionTime"]
    condition = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert (condition["status"], condition["reason"]) == ("True", "Succeeded")
    for stream, ids in clients.items():
        entry = status["streams"][str(stream)]
        assert entry["phase"] == "Succeeded"
        assert entry["job"] == resource.job_name("nightly", stream)
        assert sorted(entry["clients"]) == sorted(ids)
        for client_entry in entry["clients"].values():
            assert client_entry["state"] == "Completed"
            assert client_entry["attempts"] == 1
            assert [client_entry["tasks"][t]["state"] for t in TASKS] == ["Completed"] * 3
            assert client_entry["tasks"]["lead_scoring"]["examined"] == 2
    done = _completions(task_log)
    assert set(done.values()) == {1}
    assert len(done) == 5 * 3
    assert {"StreamStarted", "RunSucceeded"} <= set(_events(api_client, run_namespace, "nightly"))
    leases = client.CoordinationV1Api(api_client).list_namespaced_lease(run_namespace).items
    assert leases == [], "every stream Lease is released when its Job ends"
