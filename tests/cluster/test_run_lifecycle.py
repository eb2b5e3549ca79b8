"""The run lifecycle end to end: real operator, real control plane, worker pods run by the pod
runner."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from cluster.conftest import Airtable
from harness.operator import OperatorProcess
from harness.podrunner import PodRunner
from harness.tables import get_table
from harness.waiting import wait_for
from smart_resume import resource
from support.fake_tasks import completions, read_log
from support.runs import (
    create_run,
    cycle_clients,
    events,
    get_checkpoint,
    get_run,
    patch_spec,
    wait_phase,
)

pytestmark = pytest.mark.cluster

TASKS = ["lead_scoring", "post_harvesting", "post_scoring"]


def _events(api: client.ApiClient, namespace: str, name: str) -> list[str]:
    return [event.reason for event in events(api, namespace, name)]


def test_run__three_streams_succeed(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: object,
) -> None:
    """A three-stream run processes every client of every stream once and ends Succeeded."""
    clients = {
        1: ["acme-recruiting", "blue-harbor"],
        2: ["cedar-talent"],
        3: ["delta-staffing", "ember-hr"],
    }
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
        assert (entry["clientsDone"], entry["clientsTotal"]) == (len(ids), len(ids))
        cycle = cycle_clients(api_client, run_namespace, stream)
        assert sorted(cycle) == sorted(ids)
        for client_entry in cycle.values():
            assert client_entry["state"] == "Completed"
            assert client_entry["attempts"] == 1
            assert [client_entry["tasks"][t]["state"] for t in TASKS] == ["Completed"] * 3
            assert client_entry["tasks"]["lead_scoring"]["examined"] == 2
    done = completions(task_log)
    assert set(done.values()) == {1}
    assert len(done) == 5 * 3
    assert {"StreamStarted", "RunSucceeded"} <= set(_events(api_client, run_namespace, "nightly"))
    leases = client.CoordinationV1Api(api_client).list_namespaced_lease(run_namespace).items
    assert leases == [], "every stream Lease is released when its Job ends"


def test_run__printer_columns_show_progress(
    api_client: client.ApiClient, run_namespace: str, airtable: Airtable, operator: OperatorProcess
) -> None:
    """`kubectl get srr` shows Phase, Streams, Progress, Current and Age of a finished run."""
    airtable.add_client("acme-recruiting", 1)
    create_run(api_client, run_namespace, "columns", streams=[1])
    wait_phase(api_client, run_namespace, "columns", {"Succeeded"})
    path = f"/apis/{resource.GROUP}/{resource.VERSION}/namespaces/{run_namespace}/{resource.PLURAL}"
    columns, rows = get_table(api_client, path)
    assert columns == ["Name", "Phase", "Streams", "Progress", "Current", "Age"]
    assert rows[0][:4] == ["columns", "Succeeded", "1/1", "1/1"]


def test_run__deadline_cut_then_resumed_without_repeats(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: object,
) -> None:
    """A run cut by its deadline ends TimedOut; the next run resumes its cycle and repeats
    nothing."""
    ids = ["acme-recruiting", "blue-harbor", "cedar-talent", "delta-staffing", "ember-hr"]
    for client_id in ids:
        airtable.add_client(client_id, 1, task_seconds=0.5)
    create_run(
        api_client, run_namespace, "first", streams=[1], deadlineSeconds=12, clientTimeoutSeconds=7
    )
    first = wait_phase(api_client, run_namespace, "first", {"TimedOut"})
    first_stream = first["status"]["streams"]["1"]
    first_cycle = cycle_clients(api_client, run_namespace, 1)
    done_first = [c for c, e in first_cycle.items() if e["state"] == "Completed"]
    assert 0 < len(done_first) < len(ids), first_cycle
    assert first_stream["reason"] in ("DeadlineNear", "DeadlineExceeded")

    create_run(api_client, run_namespace, "second", streams=[1])
    second = wait_phase(api_client, run_namespace, "second", {"Succeeded"})

    stream = second["status"]["streams"]["1"]
    assert stream["resumedFrom"] == "first"
    assert stream["cycle"] == first_stream["cycle"] == first["status"]["runId"]
    assert second["status"]["progress"] == f"{len(ids)}/{len(ids)}"
    done = completions(task_log)
    assert len(done) == len(ids) * 3 and set(done.values()) == {1}, done
    runs_of = {
        c: {r for e, r, c2, _ in read_log(str(task_log)) if c2 == c and e == "completed"}
        for c in ids
    }
    assert all(runs_of[c] == {first["status"]["runId"]} for c in done_first)


def test_run__hanging_client_times_out_and_is_quarantined(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: object,
) -> None:
    """A client hanging in a task is cut by the client timeout, retried after the rest, then
    quarantined; the other clients of the stream complete."""
    airtable.add_client("acme-recruiting", 1)
    airtable.add_client("blue-harbor", 1, behaviour="hang:post_harvesting")
    airtable.add_client("cedar-talent", 1)
    create_run(
        api_client, run_namespace, "hang", streams=[1], clientTimeoutSeconds=4, maxAttempts=2
    )
    run = wait_phase(api_client, run_namespace, "hang", {"PartiallySucceeded"}, timeout=120)

    clients = cycle_clients(api_client, run_namespace, 1)
    assert clients["acme-recruiting"]["state"] == clients["cedar-talent"]["state"] == "Completed"
    hung = clients["blue-harbor"]
    assert (hung["state"], hung["attempts"]) == ("Quarantined", 2)
    assert hung["tasks"]["lead_scoring"]["state"] == "Completed"
    assert hung["tasks"]["post_harvesting"]["state"] == "TimedOut"
    (problem,) = run["status"]["problemClients"]
    assert (problem["client"], problem["stream"]) == ("blue-harbor", 1)
    assert "quarantined after 2 attempts" in problem["message"]
    log = read_log(str(task_log))
    hung_starts = [
        i
        for i, (e, _, c, t) in enumerate(log)
        if (e, c, t) == ("started", "blue-harbor", "post_harvesting")
    ]
    cedar_done = max(
        i for i, (e, _, c, _) in enumerate(log) if (e, c) == ("completed", "cedar-talent")
    )
    assert len(hung_starts) == 2 and hung_starts[1] > cedar_done, "the retry comes after the rest"
    assert completions(task_log)[("blue-harbor", "lead_scoring")] == 1, (
        "a retry resumes, never repeats"
    )
    assert run["status"]["totals"]["quarantined"] == 1


def test_run__two_runs_race_for_one_stream(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: object,
) -> None:
    """Two runs created together for the same stream: exactly one runs it, the other is Skipped."""
    airtable.add_client("acme-recruiting", 1, task_seconds=0.3)
    create_run(api_client, run_namespace, "racer-a", streams=[1])
    create_run(api_client, run_namespace, "racer-b", streams=[1])
    a = wait_phase(api_client, run_namespace, "racer-a", {"Succeeded", "Skipped"})
    b = wait_phase(api_client, run_namespace, "racer-b", {"Succeeded", "Skipped"})

    assert sorted([a["status"]["phase"], b["status"]["phase"]]) == ["Skipped", "Succeeded"]
    loser = a if a["status"]["phase"] == "Skipped" else b
    assert loser["status"]["streams"]["1"]["reason"] == "LockHeld"
    assert "LockHeld" in _events(api_client, run_namespace, loser["metadata"]["name"])
    jobs = client.BatchV1Api(api_client).list_namespaced_job(run_namespace).items
    assert len(jobs) == 1
    assert set(completions(task_log).values()) == {1}


def _stale_lease(api: client.ApiClient, namespace: str) -> None:
    # The generic object API keeps the MicroTime strings exactly as written (see kube/leases.py).
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "coordination.k8s.io",
        "v1",
        namespace,
        "leases",
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": resource.lease_name(1)},
            "spec": {
                "holderIdentity": f"{namespace}/crashed-run/0000",
                "leaseDurationSeconds": 6,
                "acquireTime": "2026-01-01T00:00:00.000000Z",
                "renewTime": "2026-01-01T00:00:00.000000Z",
                "leaseTransitions": 4,
            },
        },
    )


def test_run__stale_lease_is_taken_over_by_exactly_one_racer(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: object,
) -> None:
    """A Lease left by a crashed run is taken over, once, even when two runs race for it."""
    _stale_lease(api_client, run_namespace)
    airtable.add_client("acme-recruiting", 1, task_seconds=0.3)
    leases = client.CoordinationV1Api(api_client)
    create_run(api_client, run_namespace, "taker-a", streams=[1])
    create_run(api_client, run_namespace, "taker-b", streams=[1])

    def taken() -> object:
        lease = leases.read_namespaced_lease(resource.lease_name(1), run_namespace)
        return lease if "crashed-run" not in lease.spec.holder_identity else None

    lease = wait_for(taken, timeout=30, what="the stale Lease to be taken over")
    assert lease.spec.lease_transitions == 5
    a = wait_phase(api_client, run_namespace, "taker-a", {"Succeeded", "Skipped"})
    b = wait_phase(api_client, run_namespace, "taker-b", {"Succeeded", "Skipped"})
    assert sorted([a["status"]["phase"], b["status"]["phase"]]) == ["Skipped", "Succeeded"]
    winner = a if a["status"]["phase"] == "Succeeded" else b
    assert "StaleLockTakenOver" in _events(api_client, run_namespace, winner["metadata"]["name"])
    assert set(completions(task_log).values()) == {1}


def _stream(api: client.ApiClient, namespace: str, name: str) -> dict[str, object]:
    return ((get_run(api, namespace, name).get("status") or {}).get("streams") or {}).get("1") or {}


def _running_client(api: client.ApiClient, namespace: str, name: str) -> object:
    try:
        return (get_checkpoint(api, namespace, 1).get("status") or {}).get("current")
    except client.ApiException:
        return None


def _start_slow_run(
    api: client.ApiClient, namespace: str, airtable: Airtable, name: str, *, task_seconds: float
) -> None:
    """A one-stream run of three clients with slow tasks, returned once a client is in progress."""
    for client_id in ("acme-recruiting", "blue-harbor", "cedar-talent"):
        airtable.add_client(client_id, 1, task_seconds=task_seconds)
    create_run(api, namespace, name, streams=[1])
    wait_for(lambda: _running_client(api, namespace, name), timeout=60, what="a client in progress")


def _run_gone(api: client.ApiClient, namespace: str, name: str) -> bool:
    try:
        get_run(api, namespace, name)
    except client.ApiException as exc:
        return exc.status == 404
    return False


def _delete_run(api: client.ApiClient, namespace: str, name: str) -> None:
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        resource.GROUP, resource.VERSION, namespace, resource.PLURAL, name
    )


def test_run__delete_mid_run_stops_the_worker(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    pod_runner: PodRunner,
) -> None:
    """Deleting a running run stops its Job (the worker gets SIGTERM), frees the Lease, and
    completes."""
    _start_slow_run(api_client, run_namespace, airtable, "doomed", task_seconds=2)
    _delete_run(api_client, run_namespace, "doomed")
    wait_for(
        lambda: _run_gone(api_client, run_namespace, "doomed"),
        timeout=60,
        what="the run to be deleted (finalizer released)",
    )
    batch, leases = client.BatchV1Api(api_client), client.CoordinationV1Api(api_client)
    wait_for(
        lambda: not batch.list_namespaced_job(run_namespace).items,
        timeout=60,
        what="the Job to be deleted",
    )
    assert leases.list_namespaced_lease(run_namespace).items == []
    assert "Terminated" in _events(api_client, run_namespace, "doomed")
    (pod,) = pod_runner.pods(run_namespace)
    assert pod.finished.wait(20)
    assert pod.exit_code == 143, pod.log_text()[-2000:]


def test_run__suspend_keeps_progress_and_resume_continues(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: object,
) -> None:
    """Suspending stops the worker and keeps progress; unsuspending finishes without repeats."""
    ids = ("acme-recruiting", "blue-harbor", "cedar-talent")
    for client_id in ids:
        airtable.add_client(client_id, 1, task_seconds=0.7)
    create_run(api_client, run_namespace, "pausable", streams=[1])

    def first_done() -> bool:
        clients = cycle_clients(api_client, run_namespace, 1)
        return any(e["state"] == "Completed" for e in clients.values())

    wait_for(first_done, timeout=60, what="a first client to complete")
    patch_spec(api_client, run_namespace, "pausable", suspend=True)
    suspended = wait_phase(api_client, run_namespace, "pausable", {"Suspended"})
    assert suspended["status"]["streams"]["1"]["phase"] == "Suspended"
    leases = client.CoordinationV1Api(api_client)
    wait_for(
        lambda: not leases.list_namespaced_lease(run_namespace).items,
        timeout=90,  # the Job controller deletes the pod, the worker wraps up its client first
        what="the Lease to be released while suspended",
    )
    job = client.BatchV1Api(api_client).read_namespaced_job(
        resource.job_name("pausable", 1), run_namespace
    )
    assert job.spec.suspend is True

    patch_spec(api_client, run_namespace, "pausable", suspend=False)
    run = wait_phase(api_client, run_namespace, "pausable", {"Succeeded"})
    assert run["status"]["progress"] == "3/3"
    done = completions(task_log)
    assert len(done) == 9 and set(done.values()) == {1}, done


def test_run__operator_restart_mid_run(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: object,
) -> None:
    """A killed and restarted operator finds the run again: no second Job, no lost checkpoint."""
    import signal

    _start_slow_run(api_client, run_namespace, airtable, "survivor", task_seconds=0.7)
    operator.stop(signal.SIGKILL)
    progress_before = get_run(api_client, run_namespace, "survivor")["status"]["streams"]["1"]
    operator.start()
    run = wait_phase(api_client, run_namespace, "survivor", {"Succeeded"})

    assert run["status"]["progress"] == "3/3"
    jobs = client.BatchV1Api(api_client).list_namespaced_job(run_namespace).items
    assert [j.metadata.name for j in jobs] == [resource.job_name("survivor", 1)]
    assert set(completions(task_log).values()) == {1}
    assert progress_before.get("job") == run["status"]["streams"]["1"]["job"]


def test_run__bad_task_registry_fails_before_any_work(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator_env: dict[str, str],
    tmp_path: object,
    task_log: object,
) -> None:
    """A task plugin that cannot be loaded fails the stream at start-up with a clear reason."""
    airtable.add_client("acme-recruiting", 1)
    env = {**operator_env, "SMART_RESUME_JOB_TASK_PLUGINS": "support.no_such_module:register"}
    process = OperatorProcess(env, run_namespace, tmp_path / "operator.log").start()  # type: ignore[operator]
    try:
        create_run(api_client, run_namespace, "misconfigured", streams=[1])
        run = wait_phase(api_client, run_namespace, "misconfigured", {"Failed"})
    finally:
        process.stop()
    stream = run["status"]["streams"]["1"]
    assert stream["reason"] == "InvalidConfiguration"
    assert "support.no_such_module" in stream["message"]
    assert read_log(str(task_log)) == []
    job = client.BatchV1Api(api_client).read_namespaced_job(
        resource.job_name("misconfigured", 1), run_namespace
    )
    assert job.status.failed == 1, "podFailurePolicy fails the Job at once: no pointless retry"


def test_run__missing_credential_fails_the_stream_naming_the_variable(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: object,
) -> None:
    """A credentials Secret without the Airtable key: the worker refuses to start, the stream's
    message names the variable, and podFailurePolicy fails the Job without a retry."""
    client.CoreV1Api(api_client).replace_namespaced_secret(
        "smart-resume-credentials",
        run_namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="smart-resume-credentials"),
            string_data={"SMART_RESUME_AI_API_KEY": "sk-present"},
        ),
    )
    airtable.add_client("acme-recruiting", 1)
    create_run(api_client, run_namespace, "keyless", streams=[1])
    run = wait_phase(api_client, run_namespace, "keyless", {"Failed"})

    stream = run["status"]["streams"]["1"]
    assert stream["reason"] == "InvalidConfiguration"
    assert "SMART_RESUME_AIRTABLE_API_KEY" in stream["message"]
    assert read_log(str(task_log)) == []
    job = client.BatchV1Api(api_client).read_namespaced_job(
        resource.job_name("keyless", 1), run_namespace
    )
    assert job.status.failed == 1


def test_run__worker_stops_when_its_lease_is_taken(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: object,
) -> None:
    """A worker whose Lease was taken by another holder stops before its next client (LockLost)."""
    _start_slow_run(api_client, run_namespace, airtable, "fenced", task_seconds=1)
    leases = client.CustomObjectsApi(api_client)
    intruder = f"{run_namespace}/intruder/0001"
    leases.patch_namespaced_custom_object(
        "coordination.k8s.io",
        "v1",
        run_namespace,
        "leases",
        resource.lease_name(1),
        {"spec": {"holderIdentity": intruder}},
        _content_type="application/merge-patch+json",
    )

    run = wait_phase(api_client, run_namespace, "fenced", {"Failed"})
    stream = run["status"]["streams"]["1"]
    assert stream["reason"] == "LockLost"
    assert any(
        e["state"] != "Completed" for e in cycle_clients(api_client, run_namespace, 1).values()
    )
    lease = leases.get_namespaced_custom_object(
        "coordination.k8s.io", "v1", run_namespace, "leases", resource.lease_name(1)
    )
    assert lease["spec"]["holderIdentity"] == intruder, "a Lease we lost is never released by us"


def test_run__history_beyond_the_limit_is_pruned(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator_env: dict[str, str],
    tmp_path: object,
) -> None:
    """Finished runs beyond SMART_RESUME_JOB_HISTORY_LIMIT are deleted, oldest first."""
    airtable.add_client("acme-recruiting", 1)
    env = {**operator_env, "SMART_RESUME_JOB_HISTORY_LIMIT": "2"}
    process = OperatorProcess(env, run_namespace, tmp_path / "operator.log").start()  # type: ignore[operator]
    try:
        for name in ("run-1", "run-2", "run-3"):
            create_run(api_client, run_namespace, name, streams=[1])
            wait_phase(api_client, run_namespace, name, {"Succeeded"})
        objects = client.CustomObjectsApi(api_client)

        def names() -> list[str]:
            listing = objects.list_namespaced_custom_object(
                resource.GROUP, resource.VERSION, run_namespace, resource.PLURAL
            )
            return sorted(item["metadata"]["name"] for item in listing["items"])

        wait_for(lambda: names() == ["run-2", "run-3"], timeout=30, what="run-1 to be pruned")
    finally:
        process.stop()


def test_run__created_suspended_starts_when_unsuspended(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: object,
) -> None:
    """A run created with suspend: true takes no Lease and starts no Job until unsuspended."""
    airtable.add_client("acme-recruiting", 1)
    create_run(api_client, run_namespace, "later", streams=[1], suspend=True)
    run = wait_phase(api_client, run_namespace, "later", {"Suspended"})
    assert "job" not in run["status"]["streams"]["1"]
    assert client.BatchV1Api(api_client).list_namespaced_job(run_namespace).items == []
    assert client.CoordinationV1Api(api_client).list_namespaced_lease(run_namespace).items == []

    patch_spec(api_client, run_namespace, "later", suspend=False)
    run = wait_phase(api_client, run_namespace, "later", {"Succeeded"})
    assert run["status"]["progress"] == "1/1"
    assert set(completions(task_log).values()) == {1}


@pytest.mark.parametrize("case", ["as-is", "trailing-newline", "echoed-at-the-snippet-cut"])
def test_run__secrets_never_leak(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    pod_runner: PodRunner,
    case: str,
) -> None:
    """The Airtable key reaches the worker only by secretKeyRef and never shows, whole or as a
    12-character piece, in status, Job, Events or logs: also when the Secret was made with
    --from-file (trailing newline), and when Airtable's error page echoes the key right where
    the 200-character snippet is cut."""
    from cluster.conftest import AIRTABLE_KEY
    from fakes.server import Response

    airtable.add_client("acme-recruiting", 1)
    if case == "trailing-newline":
        client.CoreV1Api(api_client).patch_namespaced_secret(
            "smart-resume-credentials",
            run_namespace,
            {"stringData": {"SMART_RESUME_AIRTABLE_API_KEY": AIRTABLE_KEY + "\n"}},
        )
    if case == "echoed-at-the-snippet-cut":
        page = "p" * 150 + f" Authorization: Bearer {AIRTABLE_KEY} is not allowed here"
        airtable.fake.fail_next(Response.html(page, 403), times=5)
    create_run(api_client, run_namespace, "discreet", streams=[1])
    expected = "Failed" if case == "echoed-at-the-snippet-cut" else "Succeeded"
    run = wait_phase(api_client, run_namespace, "discreet", {expected})

    assert airtable.fake.total_requests > 0, "the worker did authenticate with the key"
    if case == "echoed-at-the-snippet-cut":
        assert "HTTP 403" in run["status"]["streams"]["1"]["message"]
    job = client.BatchV1Api(api_client).read_namespaced_job(
        resource.job_name("discreet", 1), run_namespace
    )
    places = {
        "run": json.dumps(run),
        "job": json.dumps(api_client.sanitize_for_serialization(job)),
        "events": json.dumps(
            [
                e.message
                for e in client.CoreV1Api(api_client).list_namespaced_event(run_namespace).items
            ]
        ),
        "operator log": operator.log(),
        "worker log": "".join(pod.log_text() for pod in pod_runner.pods(run_namespace)),
    }
    pieces = {AIRTABLE_KEY[i : i + 12] for i in range(len(AIRTABLE_KEY) - 11)}
    assert [name for name, text in places.items() if any(p in text for p in pieces)] == []


def test_run__lease_renewals_show_a_live_worker_during_a_long_client(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
) -> None:
    """While one slow client runs, the worker keeps renewing its Lease (the liveness signal; no
    status write per beat)."""
    airtable.add_client("acme-recruiting", 1, task_seconds=2)
    create_run(api_client, run_namespace, "beating", streams=[1])
    leases = client.CoordinationV1Api(api_client)
    seen: set[object] = set()

    def beats_while_busy() -> bool:
        if _running_client(api_client, run_namespace, "beating") == "acme-recruiting":
            try:
                lease = leases.read_namespaced_lease(resource.lease_name(1), run_namespace)
            except client.ApiException:
                return False
            seen.add(lease.spec.renew_time)
        return len(seen) >= 3

    wait_for(beats_while_busy, timeout=30, what="three renewals during one client")
    wait_phase(api_client, run_namespace, "beating", {"Succeeded"})


def test_run__delete_while_operator_down_completes_when_it_returns(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
) -> None:
    """A run deleted while the operator is down waits on its finalizer, then is cleaned up."""
    _start_slow_run(api_client, run_namespace, airtable, "orphan", task_seconds=1)
    operator.stop()
    _delete_run(api_client, run_namespace, "orphan")
    run = get_run(api_client, run_namespace, "orphan")
    assert run["metadata"]["deletionTimestamp"] and run["metadata"]["finalizers"]

    operator.start()
    wait_for(lambda: _run_gone(api_client, run_namespace, "orphan"), timeout=60, what="deletion")
    batch = client.BatchV1Api(api_client)
    wait_for(lambda: not batch.list_namespaced_job(run_namespace).items, timeout=60, what="no Job")
    assert client.CoordinationV1Api(api_client).list_namespaced_lease(run_namespace).items == []


def test_run__finalizer_removed_by_hand_still_cleans_up(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
) -> None:
    """The README's emergency path: without the operator, the garbage collector removes the Jobs
    and Leases of a run whose finalizer was removed by hand."""
    _start_slow_run(api_client, run_namespace, airtable, "stuck", task_seconds=1)
    operator.stop()
    _delete_run(api_client, run_namespace, "stuck")
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        resource.GROUP,
        resource.VERSION,
        run_namespace,
        resource.PLURAL,
        "stuck",
        {"metadata": {"finalizers": []}},
        _content_type="application/merge-patch+json",
    )
    wait_for(lambda: _run_gone(api_client, run_namespace, "stuck"), timeout=30, what="deletion")
    batch, leases = client.BatchV1Api(api_client), client.CoordinationV1Api(api_client)
    wait_for(
        lambda: (
            not batch.list_namespaced_job(run_namespace).items
            and not leases.list_namespaced_lease(run_namespace).items
        ),
        timeout=60,
        what="the garbage collector to remove the Job and the Lease",
    )


AWKWARD_ID = 'acme "big" o\'brien {x}\n back\\slash ☃'
AWKWARD_NAME = 'Acme "Big" O\'Brien & {Sons}\nZürich 🚀'


def test_run__odd_clients_records_are_recorded_and_the_rest_carries_on(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    pod_runner: PodRunner,
) -> None:
    """An ad-hoc run over a client with quotes, apostrophe, braces, a newline and emoji in ID
    and name, a record whose Processing Stream is text, and a Client ID used twice: the good
    clients complete, each bad record is Quarantined with a message saying what to fix, and
    status, Events and every worker log line stay intact."""
    from cluster.conftest import MASTER_BASE
    from fakes.records import client_record
    from smart_resume.core.checkpoint import decode_clients
    from smart_resume.integrations.airtable_fields import ClientsTable

    airtable.add_client(AWKWARD_ID, 1, name=AWKWARD_NAME)
    airtable.add_client("plain-talent", 2)
    airtable.add_client("twin", 2)
    airtable.add_client("twin", 2)
    odd = client_record("stream-less", name="Stream Less", stream=1, base_id="appSTREAMLESS0001")
    airtable.fake.add_records(
        MASTER_BASE, ClientsTable.TABLE, [{**odd, ClientsTable.PROCESSING_STREAM: "two"}]
    )
    clients = [AWKWARD_ID, "plain-talent", "twin", "stream-less"]
    create_run(api_client, run_namespace, "odd", streams=[1, 2], clients=clients)

    run = wait_phase(api_client, run_namespace, "odd", {"PartiallySucceeded", "Failed"})

    checkpoints = [
        client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            resource.GROUP,
            resource.VERSION,
            run_namespace,
            resource.STREAM_PLURAL,
            run["status"]["streams"][n]["checkpoint"],
        )["status"]
        for n in ("1", "2")
    ]
    (first, second) = (decode_clients(checkpoint) for checkpoint in checkpoints)
    (first_problems, second_problems) = (c.get("problems") or {} for c in checkpoints)
    assert first[AWKWARD_ID]["state"] == second["plain-talent"]["state"] == "Completed"
    assert first["stream-less"]["state"] == "Quarantined"
    assert "Processing Stream is 'two', not a stream number" in first_problems["stream-less"]
    assert second["twin"]["state"] == "Quarantined"
    assert "Client ID 'twin' is used by 2 Clients records" in second_problems["twin"]
    assert set(first) | set(second) == set(clients), "every client recorded, each once"
    events = client.CoreV1Api(api_client).list_namespaced_event(run_namespace).items
    assert any(e.reason == "StreamPartiallySucceeded" for e in events)
    for pod in pod_runner.pods(run_namespace):
        for line in pod.log_text().splitlines():
            if line.startswith("{"):
                json.loads(line)
