"""Run records in Airtable: the real operator writes Job Tracking, Client Run Results and the
Clients' last-run fields into the fake Airtable over real HTTP."""

from __future__ import annotations

import collections
import json
import signal
from typing import Any

import pytest
from kubernetes import client

from cluster.conftest import AIRTABLE_KEY, MASTER_BASE, Airtable
from fakes.server import Response
from harness.operator import OperatorProcess
from harness.waiting import wait_for
from smart_resume.integrations.airtable_fields import (
    ClientRunResultsTable,
    ClientsTable,
    JobTrackingTable,
)
from support.runs import create_run, get_run, wait_phase

pytestmark = pytest.mark.cluster

LS = ClientsTable.TASKS["lead_scoring"]
PS = ClientsTable.TASKS["post_scoring"]


def _condition(run: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(
        (c for c in (run.get("status") or {}).get("conditions") or [] if c["type"] == kind), {}
    )


def wait_synced(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    """The run once its records show its final phase."""

    def probe() -> dict[str, Any] | None:
        run = get_run(api, namespace, name)
        status = run.get("status") or {}
        synced = (status.get("airtable") or {}).get("syncedPhase") == status.get("phase")
        ok = _condition(run, "AirtableSynced").get("status") == "True"
        return run if synced and ok and status.get("completionTime") else None

    return wait_for(probe, timeout=90, what=f"run {name}'s records to be synced")


def _master_writes(airtable: Airtable) -> collections.Counter[str]:
    """Write requests to the master base, per table (the operator is their only sender)."""
    counts: collections.Counter[str] = collections.Counter()
    for request in airtable.fake.requests:
        parts = request.path.split("/")
        if request.method != "GET" and len(parts) >= 4 and parts[2] == MASTER_BASE:
            counts[parts[3].replace("%20", " ")] += 1
    return counts


def _by(records: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for fields in records:
        found[str(fields.get(key))].append(fields)
    return found


def test_run_records__two_streams_with_links_and_figures(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
) -> None:
    """A finished two-stream run has one Job Tracking record with its figures, one linked
    Client Run Results record per client, and per-task last-run fields on its Clients; no
    secret value appears in any of them."""
    airtable.add_client("acme-recruiting", 1, task_seconds=0.3)
    airtable.add_client("blue-harbor", 1, task_seconds=0.3)
    airtable.add_client("cedar-talent", 2, behaviour="fail:post_scoring", task_seconds=0.3)
    create_run(api_client, run_namespace, "nightly", streams=[1, 2], maxAttempts=1)

    wait_phase(api_client, run_namespace, "nightly", {"PartiallySucceeded"})
    run = wait_synced(api_client, run_namespace, "nightly")
    run_id = run["status"]["runId"]

    jobs = _by(airtable.records(JobTrackingTable.TABLE), JobTrackingTable.RUN_ID)
    assert list(jobs) == [run_id] and len(jobs[run_id]) == 1
    job = jobs[run_id][0]
    assert job[JobTrackingTable.STATUS] == "PartiallySucceeded"
    assert job[JobTrackingTable.STREAMS] == "1, 2"
    assert (job[JobTrackingTable.RUN_NAMESPACE], job[JobTrackingTable.RUN_NAME]) == (
        run_namespace,
        "nightly",
    )
    assert job[JobTrackingTable.CLIENTS_PROCESSED] == 3
    assert job[JobTrackingTable.CLIENTS_COMPLETED] == 2
    assert job[JobTrackingTable.CLIENTS_QUARANTINED] == 1
    assert job[JobTrackingTable.SUCCESS_RATE] == 66.7
    assert job[JobTrackingTable.LEADS_EXAMINED] == 6  # each fake task examines 2, scores 1
    assert job[JobTrackingTable.LEADS_SCORED] == 3
    assert job[JobTrackingTable.POSTS_HARVESTED] == 3
    assert job[JobTrackingTable.POSTS_SCORED] == 2  # cedar-talent's post scoring failed
    assert job[JobTrackingTable.START_TIME] == run["status"]["startTime"]
    assert job[JobTrackingTable.END_TIME] == run["status"]["completionTime"]

    job_record_id = airtable.fake.records(MASTER_BASE, JobTrackingTable.TABLE)[0]["id"]
    results = _by(airtable.records(ClientRunResultsTable.TABLE), ClientRunResultsTable.CLIENT_ID)
    assert sorted(results) == ["acme-recruiting", "blue-harbor", "cedar-talent"]
    for client_id, (result,) in results.items():
        stream = 2 if client_id == "cedar-talent" else 1
        assert result[ClientRunResultsTable.RUN_CLIENT_KEY] == f"{run_id}-S{stream}-C{client_id}"
        assert result[ClientRunResultsTable.JOB_TRACKING] == [job_record_id]
        assert result[ClientRunResultsTable.LEADS_SCORED] == 1
        assert result[ClientRunResultsTable.LEAD_SCORING_SECONDS] >= 0.3
    cedar = results["cedar-talent"][0]
    assert cedar[ClientRunResultsTable.STATE] == "Quarantined"
    assert "quarantined after 1 attempts" in cedar[ClientRunResultsTable.ERROR]
    assert "post scoring: Failed" in cedar[ClientRunResultsTable.TASK_STATES]
    assert results["acme-recruiting"][0][ClientRunResultsTable.STATE] == "Completed"

    clients = _by(airtable.records(ClientsTable.TABLE), ClientsTable.CLIENT_ID)
    assert sorted(clients) == ["acme-recruiting", "blue-harbor", "cedar-talent"]  # none added
    acme, cedar_client = clients["acme-recruiting"][0], clients["cedar-talent"][0]
    assert acme[LS.job_status] == "COMPLETED" and acme[LS.job_id] == run_id
    assert acme[LS.count_last_run] == 1
    assert acme[LS.last_run_date] == run["status"]["completionTime"][:10]
    assert acme[LS.last_run_time] == "0 s"
    assert cedar_client[PS.job_status] == "FAILED"
    assert cedar_client[LS.job_status] == "COMPLETED"

    everything = json.dumps(airtable.fake.records(MASTER_BASE, JobTrackingTable.TABLE))
    everything += json.dumps(airtable.fake.records(MASTER_BASE, ClientRunResultsTable.TABLE))
    assert AIRTABLE_KEY not in everything
    writes = _master_writes(airtable)
    print(f"\nmaster-base write requests for one 3-client, 2-stream run: {dict(writes)}")
    assert writes[JobTrackingTable.TABLE] == 2  # Running, then PartiallySucceeded
    assert 'smart_resume_airtable_requests_total{status="2xx"}' in operator.scrape()

    # No e-mail recipient configured here: the alerts are Events, once each, but the report is
    # the lifecycle's own RunPartiallySucceeded Event, not a second one.
    keys = {"report", f"quarantined/{run_id}/2/cedar-talent"}
    wait_for(
        lambda: keys <= set(_notifications(api_client, run_namespace, "nightly").get("sent") or {}),
        timeout=30,
        what="the quarantine alert and the report recorded as sent",
    )

    def _reasons() -> collections.Counter[str] | None:
        found = collections.Counter(_event_reasons(api_client, run_namespace, "nightly"))
        return found if {"ClientQuarantined", "RunPartiallySucceeded"} <= set(found) else None

    reasons = wait_for(_reasons, timeout=30, what="the alert and the run's end as Events")
    assert reasons["ClientQuarantined"] == 1 and reasons["RunPartiallySucceeded"] == 1, reasons
    assert reasons["RunReport"] == 0, reasons


def _requests_to(airtable: Airtable, table: str, since: int) -> int:
    path = f"/v0/{MASTER_BASE}/{table.replace(' ', '%20')}"
    return sum(1 for r in airtable.fake.requests[since:] if r.method == "PATCH" and r.path == path)


def test_run_records__operator_killed_at_every_step_leaves_one_record_per_key(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
) -> None:
    """SIGKILLed while each write of the final sync is in flight (Job Tracking, Client Run
    Results, Clients: each applied by Airtable after the operator died) and restarted each
    time, the operator leaves exactly one record per key."""
    for client_id in ("acme-recruiting", "blue-harbor"):
        airtable.add_client(client_id, 1)
    airtable.add_client("cedar-talent", 2)
    # Hold every sync back until the run has ended, so that the kills hit its final sync.
    outage = Response.html("<html><body>502 Bad Gateway</body></html>", 200)
    airtable.fake.fail_next(outage, times=10_000, path_contains="Job%20Tracking")
    create_run(api_client, run_namespace, "nightly", streams=[1, 2])
    wait_phase(api_client, run_namespace, "nightly", {"Succeeded"})

    airtable.fake.clear_faults()
    for table in (JobTrackingTable, ClientRunResultsTable, ClientsTable):
        mark = len(airtable.fake.requests)
        airtable.fake.stall_next(4.0, path_contains=table.TABLE.replace(" ", "%20"))
        wait_for(
            lambda t=table.TABLE, m=mark: _requests_to(airtable, t, m),  # type: ignore[misc]
            timeout=60,
            what=f"the operator's write to {table.TABLE}",
        )
        operator.stop(signal.SIGKILL)
        operator.start()

    run = wait_synced(api_client, run_namespace, "nightly")
    run_id = run["status"]["runId"]
    jobs = _by(airtable.records(JobTrackingTable.TABLE), JobTrackingTable.RUN_ID)
    assert {key: len(found) for key, found in jobs.items()} == {run_id: 1}
    results = _by(
        airtable.records(ClientRunResultsTable.TABLE), ClientRunResultsTable.RUN_CLIENT_KEY
    )
    assert {key: len(found) for key, found in results.items()} == {
        f"{run_id}-S1-Cacme-recruiting": 1,
        f"{run_id}-S1-Cblue-harbor": 1,
        f"{run_id}-S2-Ccedar-talent": 1,
    }
    clients = _by(airtable.records(ClientsTable.TABLE), ClientsTable.CLIENT_ID)
    assert {key: len(found) for key, found in clients.items()} == {
        "acme-recruiting": 1,
        "blue-harbor": 1,
        "cedar-talent": 1,
    }
    assert all(c[0][LS.job_id] == run_id for c in clients.values())
    assert jobs[run_id][0][JobTrackingTable.STATUS] == "Succeeded"


def test_run_records__airtable_429_503_and_html_then_recovers_loses_nothing(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator_env: dict[str, str],
    tmp_path: Any,
) -> None:
    """While the master base answers 429, then 503s, then an HTML page, the run goes on and
    says why its records lag (AirtableSynced=False: RateLimited, Unavailable, BadAnswer); once
    Airtable recovers, every record is there once."""
    env = {**operator_env, "SMART_RESUME_AIRTABLE_RECORDS_RETRY_SECONDS": "0.5"}
    operator = OperatorProcess(env, run_namespace, tmp_path / "operator.log").start()
    try:
        airtable.add_client("acme-recruiting", 1)
        airtable.add_client("cedar-talent", 2)
        master = f"/v0/{MASTER_BASE}/Job"
        rate_limited = Response.json({"errors": [{"error": "RATE_LIMIT_REACHED"}]}, 429)
        airtable.fake.fail_next(rate_limited, times=1, path_contains=master)
        airtable.fake.fail_next(Response.json({}, 503), times=6, path_contains=master)
        page = Response.html("<html><body>Maintenance</body></html>", 200)
        airtable.fake.fail_next(page, times=1, path_contains=master)
        create_run(api_client, run_namespace, "nightly", streams=[1, 2])
        reasons: set[str] = set()

        def synced() -> dict[str, Any] | None:
            run = get_run(api_client, run_namespace, "nightly")
            condition = _condition(run, "AirtableSynced")
            if condition.get("status") == "False":
                reasons.add(condition["reason"])
            status = run.get("status") or {}
            done = (status.get("airtable") or {}).get("syncedPhase") == "Succeeded"
            return run if done and condition.get("status") == "True" else None

        run = wait_for(synced, timeout=120, what="records synced after the outage")
    finally:
        operator.stop()
    assert reasons == {"RateLimited", "Unavailable", "BadAnswer"}
    run_id = run["status"]["runId"]
    jobs = _by(airtable.records(JobTrackingTable.TABLE), JobTrackingTable.RUN_ID)
    assert {key: len(found) for key, found in jobs.items()} == {run_id: 1}
    assert jobs[run_id][0][JobTrackingTable.CLIENTS_COMPLETED] == 2
    results = _by(
        airtable.records(ClientRunResultsTable.TABLE), ClientRunResultsTable.RUN_CLIENT_KEY
    )
    assert sorted(results) == [f"{run_id}-S1-Cacme-recruiting", f"{run_id}-S2-Ccedar-talent"]
    assert all(len(found) == 1 for found in results.values())
    assert "AirtableSyncFailed" in _event_reasons(api_client, run_namespace, "nightly")


def _notifications(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return dict((get_run(api, namespace, name).get("status") or {}).get("notifications") or {})


def _event_reasons(api: client.ApiClient, namespace: str, name: str) -> list[str]:
    events = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    )
    return [event.reason for event in events.items]


def test_operator_start__wrong_master_base_is_a_clear_error(
    run_namespace: str, operator_env: dict[str, str], tmp_path: Any
) -> None:
    """An operator whose master base lacks the run-record tables stops at start-up, naming the
    base and the tables it needs."""
    env = {**operator_env, "SMART_RESUME_AIRTABLE_MASTER_BASE_ID": "appNOSUCHBASE0001"}
    process = OperatorProcess(env, run_namespace, tmp_path / "operator.log")
    with pytest.raises(AssertionError, match="operator exited"):
        process.start()
    log = process.log()
    assert "appNOSUCHBASE0001 cannot hold run records" in log
    assert "Job Tracking" in log and "Client Run Results" in log
    assert AIRTABLE_KEY not in log
