"""Zero rework and one worker per stream (issue 7), proved on the real control plane.

Each test is named after the invariant it proves and checks the shared invariants at its end:
no task of a client completes twice in a cycle (the fake tasks log every start and completion:
a completed task is work paid for), every client of a finished cycle is in exactly one terminal
state, and never do two worker processes of one stream live at the same time (the pod runner
records when each process started and ended).
"""

from __future__ import annotations

import collections
import datetime
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from cluster.conftest import Airtable
from harness.operator import OperatorProcess
from harness.podrunner import PodRunner
from harness.waiting import wait_for
from smart_resume import resource
from support.admission import allow_jobs, deny_jobs
from support.fake_tasks import completions, read_log
from support.runs import create_run, events, get_run, patch_spec, wait_phase

pytestmark = pytest.mark.cluster

CHECKPOINTS = (resource.GROUP, resource.VERSION, "smartresumestreams")
TERMINAL_CLIENT_STATES = {"Completed", "Quarantined"}


# -- invariants ---------------------------------------------------------------------------------


def _cycle(api: client.ApiClient, namespace: str, stream: int) -> dict[str, str]:
    """The raw client entries of the stream's checkpoint ({} when there is none)."""
    try:
        checkpoint = client.CustomObjectsApi(api).get_namespaced_custom_object(
            *CHECKPOINTS[:2], namespace, CHECKPOINTS[2], f"stream-{stream}"
        )
    except client.ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    return dict((checkpoint.get("status") or {}).get("clients") or {})


def assert_invariants(
    api: client.ApiClient,
    namespace: str,
    task_log: Path,
    pod_runner: PodRunner,
    *,
    finished_streams: dict[int, set[str]],
) -> None:
    """No task done twice; each client of a finished cycle in one terminal state; never two
    live workers of one stream."""
    checked = set().union(*finished_streams.values()) if finished_streams else None
    twice = {
        key: n
        for key, n in completions(task_log).items()
        if n > 1 and (checked is None or key[0] in checked)
    }
    assert twice == {}, f"work done twice: {twice}; log: {read_log(str(task_log))}"
    for stream, clients in finished_streams.items():
        cycle = _cycle(api, namespace, stream)
        assert set(cycle) == clients, cycle
        states = {client_id: entry.split(" ")[0] for client_id, entry in cycle.items()}
        assert set(states.values()) <= TERMINAL_CLIENT_STATES, states
    by_stream: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    for pod in pod_runner.pods(namespace):
        if pod.started_at is None:
            continue
        stream = pod.name.rsplit("-s", 1)[-1].split("-")[0]
        by_stream[stream].append((pod.started_at, pod.ended_at or time.monotonic()))
    for stream, lives in by_stream.items():
        lives.sort()
        for (_, end), (start, _) in zip(lives, lives[1:], strict=False):
            assert start >= end, f"two live workers on stream {stream}: {lives}"


def _add_clients(airtable: Airtable, stream: int, ids: list[str], seconds: float) -> None:
    for client_id in ids:
        airtable.add_client(client_id, stream, task_seconds=seconds)


def _completed_in(api: client.ApiClient, namespace: str, stream: int) -> int:
    return sum(1 for e in _cycle(api, namespace, stream).values() if e.startswith("Completed"))


def _delete_run(api: client.ApiClient, namespace: str, name: str) -> None:
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        resource.GROUP, resource.VERSION, namespace, resource.PLURAL, name
    )


def _gone(api: client.ApiClient, namespace: str, name: str) -> bool:
    try:
        get_run(api, namespace, name)
    except client.ApiException as exc:
        return exc.status == 404
    return False


IDS = ["acme-recruiting", "blue-harbor", "cedar-talent", "delta-staffing", "ember-hr"]


# -- case 1: ordering ---------------------------------------------------------------------------


def test_job_exists_only_once_its_run_id_and_cycle_are_persisted(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: Path,
    pod_runner: PodRunner,
) -> None:
    """Case 1. When each stream's Job appears, the run's status already holds the run ID and
    the stream's cycle, and the stream's checkpoint names the run as the cycle's owner."""
    streams = [1, 2, 3, 4, 5]
    for stream in streams:
        airtable.add_client(f"client-{stream}", stream)
    seen: dict[str, dict[str, Any]] = {}
    batch = client.BatchV1Api(api_client)
    watcher = watch.Watch()

    def watch_jobs() -> None:
        for event in watcher.stream(batch.list_namespaced_job, run_namespace, timeout_seconds=60):
            job = event["object"]
            if event["type"] == "ADDED":
                stream = job.metadata.labels[resource.LABEL_STREAM]
                run = get_run(api_client, run_namespace, "ordered")
                seen[stream] = {
                    "status": run.get("status") or {},
                    "owner": (
                        _checkpoint_status(api_client, run_namespace, int(stream)).get("ownerUid")
                    ),
                    "uid": run["metadata"]["uid"],
                }
            if len(seen) == len(streams):
                watcher.stop()

    thread = threading.Thread(target=watch_jobs, daemon=True)
    thread.start()
    time.sleep(0.5)  # the watch is established before the run exists (no event is missed)
    create_run(api_client, run_namespace, "ordered", streams=streams)
    thread.join(60)
    assert sorted(seen) == [str(s) for s in streams]
    for stream, observed in seen.items():
        status = observed["status"]
        assert status.get("runId"), f"Job of stream {stream} created before the run ID"
        assert (status.get("streams") or {}).get(stream, {}).get("cycle"), (
            f"Job of stream {stream} created before its cycle: {status}"
        )
        assert observed["owner"] == observed["uid"], "the cycle is claimed before the Job"
    wait_phase(api_client, run_namespace, "ordered", {"Succeeded"})
    assert_invariants(
        api_client,
        run_namespace,
        task_log,
        pod_runner,
        finished_streams={s: {f"client-{s}"} for s in streams},
    )


def _checkpoint_status(api: client.ApiClient, namespace: str, stream: int) -> dict[str, Any]:
    try:
        found = client.CustomObjectsApi(api).get_namespaced_custom_object(
            *CHECKPOINTS[:2], namespace, CHECKPOINTS[2], f"stream-{stream}"
        )
    except client.ApiException:
        return {}
    return dict(found.get("status") or {})


def test_worker_without_its_persisted_cycle_does_no_work(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator_env: dict[str, str],
    task_log: Path,
    pod_runner: PodRunner,
) -> None:
    """Case 1. A worker whose run has no persisted cycle (here: a Job made by hand, with no
    operator) records why and exits without touching a client."""
    from smart_resume.config import Settings
    from smart_resume.core.spec import RunSpec
    from smart_resume.kube.jobs import Jobs, build_job_manifest

    airtable.add_client("acme-recruiting", 1)
    run = create_run(api_client, run_namespace, "unprepared", streams=[1])
    settings = Settings.from_env({**operator_env, "SMART_RESUME_JOB_IMAGE": "unused"})
    forwarded = {k: v for k, v in operator_env.items() if k.startswith("SMART_RESUME_")}
    Jobs(api_client).ensure(
        build_job_manifest(
            run=run,
            spec=RunSpec.from_body(run),
            stream=1,
            settings=settings.job,
            forwarded_env=forwarded,
        )
    )
    pod = wait_for(lambda: pod_runner.pods(run_namespace), timeout=30, what="the worker pod")[0]
    assert pod.finished.wait(30), pod.log_text()[-2000:]
    assert read_log(str(task_log)) == [], "no task ran"
    stream = get_run(api_client, run_namespace, "unprepared")["status"]["streams"]["1"]
    assert stream["workerReason"] == "CheckpointMissing", stream


# -- case 4: progress outlives runs -------------------------------------------------------------


def test_deleting_a_run_mid_cycle_keeps_its_progress_for_the_next_run(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: Path,
    pod_runner: PodRunner,
) -> None:
    """Case 4. A run deleted mid-cycle loses nothing: the next run continues its cycle and no
    client's task is done twice."""
    _add_clients(airtable, 1, IDS, 0.4)
    create_run(api_client, run_namespace, "deleted", streams=[1])
    wait_for(
        lambda: _completed_in(api_client, run_namespace, 1) >= 2,
        timeout=60,
        what="two clients completed",
    )
    _delete_run(api_client, run_namespace, "deleted")
    wait_for(lambda: _gone(api_client, run_namespace, "deleted"), timeout=60, what="deletion")
    wait_for(
        lambda: all(p.finished.is_set() for p in pod_runner.pods(run_namespace)),
        timeout=30,
        what="the deleted run's worker to exit",
    )
    create_run(api_client, run_namespace, "continuing", streams=[1])
    run = wait_phase(api_client, run_namespace, "continuing", {"Succeeded"})
    assert run["status"]["streams"]["1"]["resumedFrom"] == "deleted"
    assert run["status"]["progress"] == f"{len(IDS)}/{len(IDS)}"
    assert len(completions(task_log)) == len(IDS) * 3
    assert_invariants(
        api_client, run_namespace, task_log, pod_runner, finished_streams={1: set(IDS)}
    )


def test_pruning_runs_of_other_streams_keeps_an_unfinished_cycle(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator_env: dict[str, str],
    tmp_path: Path,
    task_log: Path,
    pod_runner: PodRunner,
) -> None:
    """Case 4. With a history limit of 1, finishing runs of another stream prune the only run of
    stream 1, whose cycle was cut by its deadline; the next run of stream 1 still continues that
    cycle and repeats nothing."""
    _add_clients(airtable, 1, IDS, 0.5)
    airtable.add_client("other-stream", 2)
    env = {**operator_env, "SMART_RESUME_JOB_HISTORY_LIMIT": "1"}
    process = OperatorProcess(env, run_namespace, tmp_path / "operator.log").start()
    try:
        create_run(
            api_client,
            run_namespace,
            "cut",
            streams=[1],
            deadlineSeconds=12,
            clientTimeoutSeconds=7,
        )
        wait_phase(api_client, run_namespace, "cut", {"TimedOut"}, timeout=60)
        done_before = completions(task_log)
        assert 0 < len(done_before) < len(IDS) * 3
        for name in ("other-a", "other-b"):
            create_run(api_client, run_namespace, name, streams=[2], resume="Fresh")
            wait_phase(api_client, run_namespace, name, {"Succeeded"})
        wait_for(lambda: _gone(api_client, run_namespace, "cut"), timeout=30, what="pruning")
        create_run(api_client, run_namespace, "next", streams=[1])
        run = wait_phase(api_client, run_namespace, "next", {"Succeeded"}, timeout=120)
    finally:
        process.stop()
    assert run["status"]["progress"] == f"{len(IDS)}/{len(IDS)}"
    assert_invariants(
        api_client, run_namespace, task_log, pod_runner, finished_streams={1: set(IDS)}
    )


# -- case 3: suspend / unsuspend ----------------------------------------------------------------


def test_unsuspended_run_never_continues_a_cycle_a_later_run_finished(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: Path,
    pod_runner: PodRunner,
) -> None:
    """Case 3. A suspended run whose cycle a later run took over and finished is Skipped when
    unsuspended (CycleTakenOver) and redoes nothing."""
    _add_clients(airtable, 1, IDS[:3], 0.5)
    create_run(api_client, run_namespace, "old", streams=[1])
    wait_for(
        lambda: (
            _completed_in(api_client, run_namespace, 1) >= 1
            or any(e == "completed" for e, *_ in read_log(str(task_log)))
        ),
        timeout=60,
        what="a first client done",
    )
    patch_spec(api_client, run_namespace, "old", suspend=True)
    wait_phase(api_client, run_namespace, "old", {"Suspended"})
    wait_for(
        lambda: all(p.finished.is_set() for p in pod_runner.pods(run_namespace)),
        timeout=30,
        what="the suspended run's worker to exit",
    )
    create_run(api_client, run_namespace, "newer", streams=[1])
    wait_phase(api_client, run_namespace, "newer", {"Succeeded"})
    done = completions(task_log)

    patch_spec(api_client, run_namespace, "old", suspend=False)
    old = wait_phase(
        api_client, run_namespace, "old", {"Skipped", "Succeeded", "PartiallySucceeded", "Failed"}
    )
    assert old["status"]["streams"]["1"]["reason"] == "CycleTakenOver", old["status"]
    assert completions(task_log) == done, "nothing done again after unsuspending"
    assert_invariants(
        api_client, run_namespace, task_log, pod_runner, finished_streams={1: set(IDS[:3])}
    )


# -- case 2: clocks and fencing -----------------------------------------------------------------


def _skewed_holder(
    api: client.ApiClient, namespace: str, skew_seconds: float
) -> tuple[Any, threading.Event]:
    """A Lease holder for stream 1 whose wall clock is off by ``skew_seconds``, renewing every
    second through the worker's own Heartbeat; stop it by setting the returned event."""
    from smart_resume.kube.leases import StreamLock
    from smart_resume.worker.heartbeat import Heartbeat
    from smart_resume.worker.stream import StopSignals

    def skewed_clock() -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=skew_seconds)

    lock = StreamLock(
        api,
        namespace=namespace,
        stream=1,
        holder=f"{namespace}/skewed-worker/{int(skew_seconds)}",
        duration_seconds=6,
    )
    lock._create(skewed_clock())
    heartbeat = Heartbeat(
        lock,
        interval_seconds=1,
        renew_deadline_seconds=4,
        signals=StopSignals(),
        clock=skewed_clock,
    )
    return heartbeat, heartbeat._stopped


@pytest.mark.parametrize("skew_seconds", [-600, 600], ids=["clock-10min-behind", "10min-ahead"])
def test_skewed_clock_neither_loses_a_live_lease_nor_keeps_a_dead_one(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: Path,
    pod_runner: PodRunner,
    skew_seconds: int,
) -> None:
    """Case 2. A holder whose clock is 10 minutes off keeps its Lease while it renews (a run
    started meanwhile is Skipped), and once it is dead, the Lease is taken over by the next run
    after the operator saw it unchanged for its duration on its own clock."""
    airtable.add_client("acme-recruiting", 1)
    heartbeat, stopped = _skewed_holder(api_client, run_namespace, skew_seconds)
    with heartbeat:
        create_run(api_client, run_namespace, "polite", streams=[1])
        polite = wait_phase(
            api_client, run_namespace, "polite", {"Skipped", "Succeeded"}, timeout=30
        )
    assert polite["status"]["streams"]["1"]["reason"] == "LockHeld", polite["status"]
    # The scenario, not a synchronisation: the holder is dead for more than a Lease duration. A
    # renewTime 10 minutes ahead would look live for 10 more minutes to a comparison of clocks;
    # the operator, watching it stay unchanged on its own clock, takes it over.
    time.sleep(7)
    create_run(api_client, run_namespace, "taker", streams=[1])
    taker = wait_phase(api_client, run_namespace, "taker", {"Succeeded", "Skipped"}, timeout=60)
    assert taker["status"]["phase"] == "Succeeded", taker["status"]
    assert "StaleLockTakenOver" in [e.reason for e in events(api_client, run_namespace, "taker")]
    assert_invariants(
        api_client,
        run_namespace,
        task_log,
        pod_runner,
        finished_streams={1: {"acme-recruiting"}},
    )


# -- case 5: a start that cannot complete -------------------------------------------------------


def test_start_that_cannot_create_its_job_gives_up_and_frees_the_stream(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
) -> None:
    """Case 5. When admission denies the stream's Job, the start gives up after bounded retries:
    Warning Event, Succeeded=False, the stream Failed with StartFailed, its Lease released."""
    airtable.add_client("acme-recruiting", 1)
    deny_jobs(api_client, run_namespace)
    try:
        create_run(api_client, run_namespace, "blocked", streams=[1])
        run = wait_phase(api_client, run_namespace, "blocked", {"Failed"}, timeout=90)
    finally:
        allow_jobs(api_client, run_namespace)
    stream = run["status"]["streams"]["1"]
    assert (stream["phase"], stream["reason"]) == ("Failed", "StartFailed"), stream
    assert "Jobs are not admitted here" in stream["message"]
    condition = next(c for c in run["status"]["conditions"] if c["type"] == "Succeeded")
    assert condition["status"] == "False"
    warnings = [e for e in events(api_client, run_namespace, "blocked") if e.type == "Warning"]
    assert "StartFailed" in [e.reason for e in warnings]
    leases = client.CoordinationV1Api(api_client).list_namespaced_lease(run_namespace).items
    assert leases == [], "the stream's Lease is released"


# -- case 6 (and a worker SIGKILLed mid-client, then the Job's retry) ---------------------------


def test_retried_pod_gets_only_what_is_left_of_the_jobs_deadline(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator_env: dict[str, str],
    tmp_path: Path,
    task_log: Path,
    pod_runner: PodRunner,
) -> None:
    """Case 6. A worker SIGKILLed mid-client is replaced by the Job's retry, which counts the
    deadline from the Job's startTime: it stops taking clients in time (DeadlineNear) instead of
    being killed mid-client by activeDeadlineSeconds, and repeats no finished task."""
    _add_clients(airtable, 1, [f"client-{n}" for n in range(8)], 1.2)
    env = {**operator_env, "SMART_RESUME_JOB_BACKOFF_LIMIT": "1"}
    process = OperatorProcess(env, run_namespace, tmp_path / "operator.log").start()
    try:
        create_run(
            api_client,
            run_namespace,
            "retried",
            streams=[1],
            deadlineSeconds=30,
            clientTimeoutSeconds=10,
        )
        first = wait_for(lambda: pod_runner.pods(run_namespace), timeout=30, what="a pod")[0]
        wait_for(
            lambda: first.started_at and time.monotonic() - first.started_at > 9,
            timeout=30,
            what="the first pod to work for 9 s",
        )
        pod_runner.kill(first)
        run = wait_phase(
            api_client,
            run_namespace,
            "retried",
            {"TimedOut", "Failed", "Succeeded", "PartiallySucceeded"},
            timeout=90,
        )
    finally:
        process.stop()
    stream = run["status"]["streams"]["1"]
    assert len(pod_runner.pods(run_namespace)) == 2, "the Job retried the killed pod once"
    assert stream["reason"] == "DeadlineNear", stream
    second = [p for p in pod_runner.pods(run_namespace) if p is not first][0]
    assert second.exit_code == 0, second.log_text()[-2000:]
    starts = collections.Counter(
        (c, t) for event, _, c, t in read_log(str(task_log)) if event == "started"
    )
    done = completions(task_log)
    unfinished = [key for key in starts if key not in done]
    assert len(unfinished) <= 1, f"only the killed client's task was cut: {unfinished}"
    assert_invariants(api_client, run_namespace, task_log, pod_runner, finished_streams={})


# -- case 9: status size ------------------------------------------------------------------------


def _object_bytes(
    api: client.ApiClient, group_version_plural: tuple[str, str, str], namespace: str
) -> list[int]:
    listing = client.CustomObjectsApi(api).list_namespaced_custom_object(
        *group_version_plural[:2], namespace, group_version_plural[2]
    )
    return [len(json.dumps(item, separators=(",", ":"))) for item in listing["items"]]


def test_checkpoints_stay_small_and_take_at_most_three_writes_per_client(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: Path,
    pod_runner: PodRunner,
) -> None:
    """Case 9. For a 40-client stream with all three tasks, every object (run and checkpoint,
    managedFields included) grows by well under 250 bytes per client; the checkpoint takes at
    most 3 writes per client (plus a handful per cycle), and the run's status is not written per
    client at all (the operator copies counts at most once per reconcile)."""
    ids = [f"client-{n:03d}" for n in range(40)]
    _add_clients(airtable, 1, ids, 0.0)
    writes = collections.Counter[str]()
    stop = threading.Event()

    def count(plural: str) -> None:
        objects = client.CustomObjectsApi(api_client)
        watcher = watch.Watch()
        for event in watcher.stream(
            objects.list_namespaced_custom_object,
            resource.GROUP,
            resource.VERSION,
            run_namespace,
            plural,
            timeout_seconds=120,
        ):
            if event["type"] == "MODIFIED":
                writes[plural] += 1
            if stop.is_set():
                watcher.stop()

    threads = [
        threading.Thread(target=count, args=(plural,), daemon=True)
        for plural in (resource.PLURAL, CHECKPOINTS[2])
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # the watches are established before anything is written
    create_run(api_client, run_namespace, "sized", streams=[1])
    wait_phase(api_client, run_namespace, "sized", {"Succeeded"}, timeout=180)
    stop.set()
    sizes = _object_bytes(
        api_client, (resource.GROUP, resource.VERSION, resource.PLURAL), run_namespace
    )
    sizes += _object_bytes(api_client, CHECKPOINTS, run_namespace)
    assert max(sizes) / len(ids) < 250, f"bytes per client: {[s / len(ids) for s in sizes]}"
    assert writes[CHECKPOINTS[2]] <= 3 * len(ids) + 5, dict(writes)
    assert writes[resource.PLURAL] < len(ids), dict(writes)
    assert_invariants(
        api_client, run_namespace, task_log, pod_runner, finished_streams={1: set(ids)}
    )


# -- case 10: one owner per status field --------------------------------------------------------


def _status_fields(entry: dict[str, Any]) -> set[str]:
    def leaves(node: dict[str, Any], path: str) -> set[str]:
        found: set[str] = set()
        for key, child in node.items():
            if key == ".":
                continue
            here = f"{path}.{key.removeprefix('f:')}"
            found |= leaves(child, here) if child else {here}
        return found

    return leaves((entry.get("fieldsV1") or {}).get("f:status") or {}, "status")


def test_every_run_status_field_has_one_writer(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: Path,
    pod_runner: PodRunner,
) -> None:
    """Case 10. In the run's managedFields, the worker owns only the fields it alone writes
    (why it stopped), and none that the operator writes too."""
    airtable.add_client("acme-recruiting", 1)
    create_run(api_client, run_namespace, "owned", streams=[1])
    run = wait_phase(api_client, run_namespace, "owned", {"Succeeded"})
    by_manager: dict[str, set[str]] = collections.defaultdict(set)
    for entry in run["metadata"]["managedFields"]:
        if entry.get("subresource") == "status":
            by_manager[entry["manager"]] |= _status_fields(entry)
    operator_fields = set().union(
        *(f for m, f in by_manager.items() if m.startswith("kopf") or m == "smart-resume-operator")
    )
    worker_fields = set().union(
        *(
            f
            for m, f in by_manager.items()
            if not (m.startswith("kopf") or m == "smart-resume-operator")
        )
    )
    assert worker_fields, by_manager
    assert worker_fields & operator_fields == set(), by_manager
    assert worker_fields <= {
        "status.streams.1.workerReason",
        "status.streams.1.workerMessage",
        "status.streams.1.workerCheckpoint",
        "status.streams.1.workerLease",
    }
    assert_invariants(
        api_client, run_namespace, task_log, pod_runner, finished_streams={1: {"acme-recruiting"}}
    )


# -- case 2: a worker cut off from the API server -----------------------------------------------


def test_worker_cut_off_from_the_api_server_stops_before_another_run_takes_over(
    api_client: client.ApiClient,
    cluster: Any,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    task_log: Path,
    pod_runner: PodRunner,
) -> None:
    """Case 2 (fencing). A worker whose API server connection is cut (a proxy between them)
    passes its renew deadline, kills its client in flight and does no more work; only then can
    another run take the stream over (the operator waits a full Lease duration on its clock), and
    no task of the cut-off worker starts or completes after the new run's first. Only the client
    in flight at the cut, whose end never reached the checkpoint, may be processed again."""
    from harness.proxy import CuttableProxy

    _add_clients(airtable, 1, IDS, 3.0)  # a client (9 s) outlasts the takeover (> 6 s)
    proxy = CuttableProxy(cluster.server)
    pod_runner.server_for = lambda pod: (
        proxy.server if pod.metadata.name.startswith("isolated-") else None
    )
    try:
        create_run(api_client, run_namespace, "isolated", streams=[1])
        in_flight = wait_for(
            lambda: _checkpoint_status(api_client, run_namespace, 1).get("current"),
            timeout=60,
            what="a client in progress",
        )
        proxy.cut()
        create_run(api_client, run_namespace, "successor", streams=[1])
        successor = wait_phase(api_client, run_namespace, "successor", {"Succeeded"}, timeout=120)
    finally:
        pod_runner.server_for = lambda pod: None
        proxy.cut()
    log = read_log(str(task_log))
    isolated_id = get_run(api_client, run_namespace, "isolated")["status"]["runId"]
    successor_id = successor["status"]["runId"]
    first_of_successor = next(i for i, line in enumerate(log) if line[1] == successor_id)
    late = [line for line in log[first_of_successor:] if line[1] == isolated_id]
    assert late == [], f"the cut-off worker worked on after the takeover: {late}"
    (isolated_pod,) = [p for p in pod_runner.pods(run_namespace) if p.name.startswith("isolated")]
    assert "renew deadline passed" in isolated_pod.log_text()
    assert "StaleLockTakenOver" in [
        e.reason for e in events(api_client, run_namespace, "successor")
    ]
    # What the cut-off worker did after its last checkpoint could not be recorded: only the
    # client in flight at the cut may be done again (real tasks then select nothing to pay for).
    twice = {key for key, n in completions(task_log).items() if n > 1}
    assert {client_id for client_id, _ in twice} <= {in_flight}, twice
