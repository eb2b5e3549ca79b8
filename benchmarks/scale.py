"""The operator at scale, against what Kubernetes does alone on the same local control plane.

Starts its own control plane (etcd, kube-apiserver with an audit log, kube-controller-manager),
the operator as a subprocess with its own ServiceAccount (``manifests/rbac-operator.yaml``), and
the pod runner as a *stand-in*: no worker process runs; each pod is reported ``Running`` and then
``Succeeded`` at once (or, for the steady-state phases, held ``Running``). The operator's side and
the baseline's pods are treated alike, so the figures are the control plane's and the operator's
own. A Job that ends without any worker checkpoint ends its stream as the operator decides.

Measured, in this order:

1. a CronJob-triggered Job: seconds from the scheduled minute to the Job (baseline); the operator
   idles meanwhile (its RSS and CPU at idle);
2. create -> all 10 Jobs of a 10-stream run, p50/p95, against creating 10 Jobs directly;
3. a 200-run burst (one stream each) to all Jobs / all settled, against 200 plain Jobs; API
   requests per run (operator) and per Job (controller-manager) from the audit log;
4. steady state with 50, then 500 runs Running: requests per second per client;
5. the operator's RSS and CPU with 500 finished + 50 running runs;
6. the burst again on a second control plane whose controller-manager has a raised QPS.

Requests are attributed per client (user and user agent) from the apiserver's audit log;
``apiserver_request_total`` carries neither.

Run: ``make bench-scale`` (``--samples``, ``--burst``, ``--window`` to change sizes). Prints
figures, writes them as JSON to ``benchmarks/results/scale.json`` and asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import datetime
import functools
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

import smart_resume
from harness import audit, manifests
from harness.cluster import Cluster, install_crds
from harness.controlplane import ControlPlane
from harness.manifests import OPERATOR_NAMESPACE, OPERATOR_USER
from harness.operator import OperatorProcess
from harness.podrunner import POD_RUNNER_SCHEDULER, PodRunner
from smart_resume import resource
from smart_resume.core.status import Phase, is_terminal

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "scale.json"
USER_AGENT = "smart-resume-bench"
RUN_NAMESPACES = "runs-"
STREAMS_PER_NAMESPACE = 64
RAISED_QPS = 100
GOALS = {
    "create_to_jobs_p95_vs_direct": 1.5,
    "burst_settled_vs_plain": 1.25,
    "requests_per_run": 12,
    "steady_requests_per_second_per_running_run": 0.1,
    "rss_mib_550_runs": 150,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    results: dict[str, Any] = {
        "started": _wall_iso(),
        "loadavg_before": os.getloadavg(),
        "cpus": os.cpu_count(),
        "settings": vars(args),
    }
    with Bench(qps=None, namespaces=args.namespaces) as bench:
        results["idle_and_cronjob"] = bench.cronjob_and_idle(args.cronjobs)
        results["create_to_jobs"] = bench.create_to_jobs(args.samples)
        results["burst"] = {
            "controller_manager_qps": "default (20, burst 30)",
            **bench.burst(args.burst),
        }
        results["steady"] = bench.steady(args.running, args.window)
    with Bench(qps=RAISED_QPS, namespaces=args.namespaces) as bench:
        results["burst_raised_qps"] = {
            "controller_manager_qps": f"{RAISED_QPS} (burst {2 * RAISED_QPS})",
            **bench.burst(args.burst),
        }
    results["loadavg_after"] = os.getloadavg()
    results["goals"] = _goals(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    _print(results)
    print(f"\nwritten to {RESULTS.relative_to(REPO)}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20, help="10-stream runs timed one by one")
    parser.add_argument("--burst", type=int, default=200, help="runs (and plain Jobs) at once")
    parser.add_argument(
        "--running", type=int, nargs=2, default=(50, 500), help="runs Running, two steps"
    )
    parser.add_argument("--window", type=float, default=30.0, help="steady-state seconds")
    parser.add_argument("--cronjobs", type=int, default=10, help="CronJobs firing at one minute")
    parser.add_argument("--namespaces", type=int, default=20, help="run namespaces (64 streams)")
    return parser


# -- the environment ------------------------------------------------------------------------------


class Bench:
    """One control plane with the operator, a stand-in pod runner and watches that time things."""

    def __init__(self, *, qps: int | None, namespaces: int) -> None:
        self._qps = qps
        self._namespace_count = namespaces
        self._stack = contextlib.ExitStack()
        self._workdir = Path(tempfile.mkdtemp(prefix="smart-resume-scale-"))
        self.namespaces = [f"{RUN_NAMESPACES}{i:02d}" for i in range(namespaces)]
        self._free = {ns: list(range(1, STREAMS_PER_NAMESPACE + 1)) for ns in self.namespaces}
        self._serial = 0

    def __enter__(self) -> Bench:
        try:
            return self._enter()
        except BaseException:  # __exit__ is not called then: stop what started
            self._stack.close()
            raise

    def _enter(self) -> Bench:
        self._stack.callback(shutil.rmtree, self._workdir, ignore_errors=True)
        self.plane = ControlPlane(
            self._workdir / "cluster", controller_manager_qps=self._qps, audit=True
        )
        self._stack.callback(self.plane.down)
        state = self.plane.up()
        self.audit_log = self.plane.audit_log_path(state)
        cluster = Cluster(self.plane.kubeconfig)
        self.api = _api_client(self.plane.kubeconfig)
        install_crds(self.api, REPO / "crds")
        operator_kubeconfig = self._prepare(cluster)
        self.watches = Watches(self.api)
        self.watches.start()
        self._stack.callback(self.watches.stop)
        self.runner = PodRunner(
            _api_client(self.plane.kubeconfig, agent="smart-resume-pod-runner"),
            cluster,
            base_env={},
            workdir=self._workdir,
            stand_in=True,
        )
        self.runner.start()
        self._stack.callback(self.runner.stop)
        self.operator = OperatorProcess(
            _operator_env(operator_kubeconfig),
            f"{RUN_NAMESPACES}*",
            self._workdir / "operator.log",
            verbose=False,
        )
        self._stack.callback(self.operator.stop)
        self.operator.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            sys.stderr.write(f"--- operator log (tail) ---\n{self.operator.log()[-4000:]}\n")
        self._stack.close()

    def _prepare(self, cluster: Cluster) -> Path:
        core = client.CoreV1Api(self.api)
        for name in [OPERATOR_NAMESPACE, *self.namespaces, "baseline-jobs", "baseline-cron"]:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        manifests.apply(self.api, manifests.load("operator/rbac.yaml"))
        for namespace in self.namespaces:
            manifests.apply(self.api, manifests.load("runs/rbac.yaml", namespace=namespace))
        for namespace in ("baseline-jobs", "baseline-cron"):
            _wait(
                lambda ns=namespace: _has_default_account(core, ns),
                60,
                f"default SA in {namespace}",
            )
        return cluster.kubeconfig_for(
            self.api,
            self._workdir / "operator-kubeconfig",
            namespace=OPERATOR_NAMESPACE,
            account="smart-resume-operator",
        )

    # -- phases ---------------------------------------------------------------------------------

    def cronjob_and_idle(self, count: int) -> dict[str, Any]:
        """CronJobs that fire at the next minute: how late their Jobs appear. The operator idles."""
        batch = client.BatchV1Api(self.api)
        cpu_before, wall_before = _cpu_seconds(self.operator.pid), time.monotonic()
        for i in range(count):
            batch.create_namespaced_cron_job(
                "baseline-cron",
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "metadata": {"name": f"cron-{i}"},
                    "spec": {
                        "schedule": "* * * * *",
                        "startingDeadlineSeconds": 30,
                        "jobTemplate": {"spec": _plain_job_spec()},
                    },
                },
            )
        keys = self.watches.jobs_seen.wait_count("baseline-cron", count, timeout=150)
        for i in range(count):
            batch.delete_namespaced_cron_job(f"cron-{i}", "baseline-cron")
        latencies = []
        for (_, job), seen in keys.items():
            scheduled_minute = int(job.rsplit("-", 1)[1])
            latencies.append(self.watches.wall_of(seen) - scheduled_minute * 60)
        seconds = time.monotonic() - wall_before
        return {
            "cronjob_job_latency_seconds": _summary(latencies),
            "operator_idle": {
                "rss_mib": _rss_mib(self.operator.pid),
                "cpu_percent": 100 * (_cpu_seconds(self.operator.pid) - cpu_before) / seconds,
                "seconds": seconds,
            },
        }

    def create_to_jobs(self, samples: int) -> dict[str, Any]:
        """One 10-stream run at a time: create -> its 10th Job seen; then 10 Jobs directly."""
        runs, direct = [], []
        names = []
        for _ in range(samples):
            namespace, streams = self._take(10)
            name = self._name("lat")
            started = time.monotonic()
            self._create_run(namespace, name, streams)
            seen = self.watches.jobs_seen.wait_label(namespace, name, 10, timeout=120)
            runs.append(max(seen) - started)
            names.append((namespace, name))
        batch = client.BatchV1Api(self.api)
        for _ in range(samples):
            prefix = self._name("direct")
            started = time.monotonic()
            for stream in range(10):
                batch.create_namespaced_job("baseline-jobs", _plain_job(f"{prefix}-s{stream}"))
            seen = self.watches.jobs_seen.wait_prefix("baseline-jobs", prefix, 10, timeout=60)
            direct.append(max(seen.values()) - started)
        self.watches.runs_settled.wait_keys(names, timeout=300)
        run_summary, direct_summary = _summary(runs), _summary(direct)
        return {
            "operator_run_seconds": run_summary,
            "direct_jobs_seconds": direct_summary,
            "p95_ratio": run_summary["p95"] / direct_summary["p95"],
        }

    def burst(self, count: int) -> dict[str, Any]:
        """``count`` one-stream runs at once, then ``count`` plain Jobs at once."""
        time.sleep(2)  # let the previous phase's last writes leave the audit window
        keys = [(ns, self._name("burst"), streams) for ns, streams in self._spread(count)]
        cpu_before = _cpu_seconds(self.operator.pid)
        window = AuditWindow(self.audit_log)
        started = time.monotonic()
        _parallel(lambda k: self._create_run(k[0], k[1], k[2]), keys)
        created = time.monotonic()
        job_seen = [
            max(self.watches.jobs_seen.wait_label(ns, name, 1, timeout=600)) for ns, name, _ in keys
        ]
        settled = self.watches.runs_settled.wait_keys([(ns, n) for ns, n, _ in keys], timeout=900)
        operator_requests = window.close()
        cpu_burst = _cpu_seconds(self.operator.pid) - cpu_before
        phases = self.watches.phases([(ns, n) for ns, n, _ in keys])
        time.sleep(2)
        prefix = self._name("plain")
        window = AuditWindow(self.audit_log)
        plain_started = time.monotonic()
        batch = client.BatchV1Api(self.api)
        _parallel(
            lambda i: batch.create_namespaced_job("baseline-jobs", _plain_job(f"{prefix}-{i}")),
            list(range(count)),
        )
        plain_seen = self.watches.jobs_seen.wait_prefix("baseline-jobs", prefix, count, 600)
        plain_done = self.watches.jobs_finished.wait_prefix("baseline-jobs", prefix, count, 900)
        plain_requests = window.close()
        operator_total = sum(
            n for who, n in operator_requests.by_client.items() if _is_operator(who)
        )
        manager_total = sum(
            n
            for who, n in plain_requests.by_client.items()
            if who.startswith("kube-controller-manager")
        )
        return {
            "runs": count,
            "create_calls_seconds": created - started,
            "operator_all_jobs_exist_seconds": max(job_seen) - started,
            "operator_all_settled_seconds": max(settled.values()) - started,
            "run_phases": phases,
            "plain_all_jobs_exist_seconds": max(plain_seen.values()) - plain_started,
            "plain_all_settled_seconds": max(plain_done.values()) - plain_started,
            "settled_ratio": (max(settled.values()) - started)
            / (max(plain_done.values()) - plain_started),
            "operator_requests_per_run": operator_total / count,
            "operator_requests_by_verb": operator_requests.operator_by_verb(),
            "requests_by_client_during_runs": dict(operator_requests.by_client.most_common()),
            "controller_manager_requests_per_plain_job": manager_total / count,
            "requests_by_client_during_plain_jobs": dict(plain_requests.by_client.most_common()),
            "operator_cpu_seconds_burst": cpu_burst,
            "operator_rss_mib_after": _rss_mib(self.operator.pid),
        }

    def steady(self, running: Sequence[int], window_seconds: float) -> dict[str, Any]:
        """Runs held Running (their pods never end): requests per second, per client."""
        self.runner.hold = True
        first, second = running
        held_first = self._start_held(first)
        steps = {f"running_{first}": self._steady_window(first, window_seconds)}
        held_more = self._start_held(second - first)
        steps[f"running_{second}"] = self._steady_window(second, window_seconds)
        # Let the later ones finish, then keep 500 finished runs in all: delete the oldest others.
        self.runner.hold = False
        self._release(held_more)
        self.watches.runs_settled.wait_keys([(ns, n) for ns, n, _ in held_more], timeout=900)
        finished = self.watches.finished_runs()
        extra = sorted(finished, key=lambda k: self.watches.runs_settled.seen(k))
        extra = extra[: max(0, len(finished) - 500)]
        custom = client.CustomObjectsApi(self.api)
        _parallel(
            lambda k: custom.delete_namespaced_custom_object(
                resource.GROUP, resource.VERSION, k[0], resource.PLURAL, k[1]
            ),
            extra,
        )
        self.watches.runs_gone.wait_keys(extra, timeout=600)
        time.sleep(5)
        cpu_before, wall = _cpu_seconds(self.operator.pid), time.monotonic()
        time.sleep(window_seconds)
        seconds = time.monotonic() - wall
        steps["finished_500_running_50"] = {
            "finished_runs": len(self.watches.finished_runs()),
            "running_runs": len(held_first),
            "operator_rss_mib": _rss_mib(self.operator.pid),
            "operator_cpu_percent": 100 * (_cpu_seconds(self.operator.pid) - cpu_before) / seconds,
        }
        return steps

    def _start_held(self, count: int) -> list[tuple[str, str, list[int]]]:
        keys = [(ns, self._name("held"), streams) for ns, streams in self._spread(count)]
        _parallel(lambda k: self._create_run(k[0], k[1], k[2]), keys)
        for namespace, name, _ in keys:
            self.watches.jobs_ready.wait_label(namespace, name, 1, timeout=900)
        self.watches.runs_running.wait_keys([(ns, n) for ns, n, _ in keys], timeout=900)
        return keys

    def _steady_window(self, running: int, seconds: float) -> dict[str, Any]:
        time.sleep(5)  # the starts' own writes settle
        cpu_before = _cpu_seconds(self.operator.pid)
        window = AuditWindow(self.audit_log)
        time.sleep(seconds)
        counted = window.close()
        elapsed = window.seconds
        per_client = {who: n / elapsed for who, n in counted.by_client.most_common()}
        operator_rate = sum(r for who, r in per_client.items() if _is_operator(who))
        return {
            "running_runs": running,
            "seconds": elapsed,
            "requests_per_second_by_client": per_client,
            "operator_requests_per_second": operator_rate,
            "operator_requests_per_second_per_running_run": operator_rate / running,
            "operator_requests_by_verb": counted.operator_by_verb(),
            "operator_cpu_percent": 100 * (_cpu_seconds(self.operator.pid) - cpu_before) / elapsed,
            "operator_rss_mib": _rss_mib(self.operator.pid),
        }

    def _release(self, held: Sequence[tuple[str, str, list[int]]]) -> None:
        jobs = {(ns, resource.job_name(run, s)) for ns, run, streams in held for s in streams}
        self.runner.release(lambda pod: (pod.namespace, pod.name.rsplit("-", 1)[0]) in jobs)

    # -- helpers --------------------------------------------------------------------------------

    def _create_run(self, namespace: str, name: str, streams: list[int]) -> None:
        client.CustomObjectsApi(self.api).create_namespaced_custom_object(
            resource.GROUP,
            resource.VERSION,
            namespace,
            resource.PLURAL,
            {
                "apiVersion": resource.API_VERSION,
                "kind": resource.KIND,
                "metadata": {"name": name},
                "spec": {"streams": streams},
            },
        )

    def _take(self, streams: int) -> tuple[str, list[int]]:
        namespace = max(self._free, key=lambda ns: len(self._free[ns]))
        taken, self._free[namespace] = (
            self._free[namespace][:streams],
            self._free[namespace][streams:],
        )
        if len(taken) < streams:
            raise RuntimeError("out of free streams: raise --namespaces")
        return namespace, taken

    def _spread(self, count: int) -> Iterator[tuple[str, list[int]]]:
        for _ in range(count):
            yield self._take(1)

    def _name(self, kind: str) -> str:
        self._serial += 1
        return f"{kind}-{self._serial}"


# -- watching -------------------------------------------------------------------------------------


class Sightings:
    """When each object was first seen in some state (monotonic seconds), waited on by keys."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._labels: dict[tuple[str, str], str] = {}
        self._changed = threading.Condition()

    def see(self, key: tuple[str, str], run: str = "") -> None:
        with self._changed:
            if key not in self._seen:
                self._seen[key] = time.monotonic()
                self._labels[key] = run
                self._changed.notify_all()

    def seen(self, key: tuple[str, str]) -> float:
        with self._changed:
            return self._seen[key]

    def wait_keys(
        self, keys: Sequence[tuple[str, str]], timeout: float
    ) -> dict[tuple[str, str], float]:
        wanted = set(keys)
        return self._wait(lambda k: k in wanted, len(wanted), timeout, f"{len(wanted)} objects")

    def wait_label(self, namespace: str, run: str, count: int, timeout: float) -> list[float]:
        found = self._wait(
            lambda k: k[0] == namespace and self._labels[k] == run, count, timeout, f"{run}'s Jobs"
        )
        return list(found.values())

    def wait_prefix(
        self, namespace: str, prefix: str, count: int, timeout: float
    ) -> dict[tuple[str, str], float]:
        return self._wait(
            lambda k: k[0] == namespace and k[1].startswith(prefix + "-"), count, timeout, prefix
        )

    def wait_count(
        self, namespace: str, count: int, timeout: float
    ) -> dict[tuple[str, str], float]:
        return self._wait(lambda k: k[0] == namespace, count, timeout, f"{count} in {namespace}")

    def _wait(
        self, match: Callable[[tuple[str, str]], bool], count: int, timeout: float, what: str
    ) -> dict[tuple[str, str], float]:
        def found() -> dict[tuple[str, str], float]:
            return {k: t for k, t in self._seen.items() if match(k)}

        with self._changed:
            if not self._changed.wait_for(lambda: len(found()) >= count, timeout):
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            return found()


class Watches:
    """Cluster-wide watches of Jobs and runs, feeding ``Sightings``."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._stopping = threading.Event()
        self._watchers: list[watch.Watch] = []
        self.jobs_seen = Sightings()
        self.jobs_ready = Sightings()
        self.jobs_finished = Sightings()
        self.runs_settled = Sightings()
        self.runs_gone = Sightings()
        self.runs_running = Sightings()
        self._phases: dict[tuple[str, str], str] = {}
        self._phases_lock = threading.Lock()
        self._offset = time.time() - time.monotonic()

    def wall_of(self, monotonic: float) -> float:
        return monotonic + self._offset

    def start(self) -> None:
        batch, custom = client.BatchV1Api(self._api), client.CustomObjectsApi(self._api)
        jobs = batch.list_job_for_all_namespaces
        runs = functools.partial(
            custom.list_cluster_custom_object, resource.GROUP, resource.VERSION, resource.PLURAL
        )
        for lister, handler in ((jobs, self._on_job), (runs, self._on_run)):
            threading.Thread(target=self._watch, args=(lister, handler), daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        for watcher in self._watchers:
            watcher.stop()

    def finished_runs(self) -> list[tuple[str, str]]:
        with self._phases_lock:
            return [k for k, phase in self._phases.items() if is_terminal(phase)]

    def phases(self, keys: Sequence[tuple[str, str]]) -> dict[str, int]:
        with self._phases_lock:
            return dict(collections.Counter(self._phases.get(k, "") for k in keys))

    def _watch(self, lister: Callable[..., Any], handler: Callable[[str, Any], None]) -> None:
        while not self._stopping.is_set():
            watcher = watch.Watch()
            self._watchers.append(watcher)
            try:
                for event in watcher.stream(lister, timeout_seconds=300):
                    handler(event["type"], event["object"])
            except Exception:  # a broken watch: start again (events are idempotent sightings)
                self._stopping.wait(0.5)

    def _on_job(self, kind: str, job: Any) -> None:
        meta = job.metadata
        key = (meta.namespace, meta.name)
        run = (meta.labels or {}).get(resource.LABEL_RUN, "")
        self.jobs_seen.see(key, run)
        status = job.status
        if status and (status.ready or 0) >= 1:
            self.jobs_ready.see(key, run)
        for condition in (status.conditions if status else None) or []:
            if condition.type in ("Complete", "Failed") and condition.status == "True":
                self.jobs_finished.see(key, run)

    def _on_run(self, kind: str, run: dict[str, Any]) -> None:
        key = (run["metadata"]["namespace"], run["metadata"]["name"])
        phase = (run.get("status") or {}).get("phase", Phase.PENDING)
        with self._phases_lock:
            if kind == "DELETED":
                self._phases.pop(key, None)
            else:
                self._phases[key] = phase
        if kind == "DELETED":
            self.runs_gone.see(key)
            return
        annotations = run["metadata"].get("annotations") or {}
        if phase == Phase.RUNNING and resource.HANDLED in annotations:  # kopf's start is done
            self.runs_running.see(key)
        if is_terminal(phase):
            self.runs_settled.see(key)


# -- counting requests ----------------------------------------------------------------------------


class Counted:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.by_client: collections.Counter[str] = collections.Counter(
            _client_of(e) for e in events
        )

    def operator_by_verb(self) -> dict[str, int]:
        counter = collections.Counter(
            audit.verb_of(e) for e in self.events if e["user"]["username"] == OPERATOR_USER
        )
        return dict(counter.most_common())


class AuditWindow(audit.AuditWindow):
    def close(self) -> Counted:
        self.end()
        time.sleep(1)  # requests received before the end are logged when they complete
        return Counted(self.events())


def _client_of(event: dict[str, Any]) -> str:
    agent = event.get("userAgent", "").split(" ")[0].split("/")[0]
    return f"{agent} ({event['user']['username']})"


def _is_operator(who: str) -> bool:
    return who.endswith(f"({OPERATOR_USER})")


# -- small helpers --------------------------------------------------------------------------------


def _api_client(kubeconfig: Path, agent: str = USER_AGENT) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = 32
    api = client.ApiClient(configuration)
    api.user_agent = agent
    return api


def _operator_env(kubeconfig: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "KUBECONFIG": str(kubeconfig),
        "PYTHONPATH": str(Path(smart_resume.__file__).parents[1]),  # the code measured here
        "SMART_RESUME_JOB_SCHEDULER_NAME": POD_RUNNER_SCHEDULER,
        "SMART_RESUME_JOB_BACKOFF_LIMIT": "0",
        "SMART_RESUME_JOB_HISTORY_LIMIT": "100000",
        "MALLOC_ARENA_MAX": "2",  # as the image sets it (Dockerfile)
    }


def _plain_job_spec() -> dict[str, Any]:
    return {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "schedulerName": POD_RUNNER_SCHEDULER,
                "containers": [{"name": "main", "image": "local", "command": ["true"]}],
            }
        },
    }


def _plain_job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": _plain_job_spec(),
    }


def _has_default_account(core: client.CoreV1Api, namespace: str) -> bool:
    return bool(
        core.list_namespaced_service_account(
            namespace, field_selector="metadata.name=default"
        ).items
    )


def _wait(probe: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _parallel(call: Callable[[Any], Any], items: Sequence[Any]) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        for future in [pool.submit(call, item) for item in items]:
            future.result()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _summary(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)

    def rank(q: float) -> float:  # nearest rank
        return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))]

    return {"n": len(ordered), "p50": rank(0.5), "p95": rank(0.95), "max": ordered[-1]}


def _wall_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _goals(results: dict[str, Any]) -> dict[str, dict[str, float | bool]]:
    steady = results["steady"]
    largest = max(
        (v for k, v in steady.items() if k.startswith("running_")), key=lambda v: v["running_runs"]
    )
    measured = {
        "create_to_jobs_p95_vs_direct": results["create_to_jobs"]["p95_ratio"],
        "burst_settled_vs_plain": results["burst"]["settled_ratio"],
        "requests_per_run": results["burst"]["operator_requests_per_run"],
        "steady_requests_per_second_per_running_run": largest[
            "operator_requests_per_second_per_running_run"
        ],
        "rss_mib_550_runs": steady["finished_500_running_50"]["operator_rss_mib"],
    }
    return {
        name: {"measured": value, "goal": GOALS[name], "met": value <= GOALS[name]}
        for name, value in measured.items()
    }


def _print(results: dict[str, Any]) -> None:
    def ms(summary: dict[str, float]) -> str:
        return f"p50 {summary['p50'] * 1000:.0f} ms / p95 {summary['p95'] * 1000:.0f} ms"

    print(f"load average before {results['loadavg_before']}, after {results['loadavg_after']}")
    idle = results["idle_and_cronjob"]
    print(f"CronJob -> Job: {ms(idle['cronjob_job_latency_seconds'])} after the scheduled minute")
    print(
        f"operator idle: RSS {idle['operator_idle']['rss_mib']:.0f} MiB, "
        f"CPU {idle['operator_idle']['cpu_percent']:.1f} %"
    )
    latency = results["create_to_jobs"]
    print(
        f"create -> 10 Jobs: operator {ms(latency['operator_run_seconds'])}; direct "
        f"{ms(latency['direct_jobs_seconds'])}; p95 ratio {latency['p95_ratio']:.2f}"
    )
    for key in ("burst", "burst_raised_qps"):
        burst = results[key]
        print(
            f"{key}: {burst['runs']} runs: all Jobs "
            f"{burst['operator_all_jobs_exist_seconds']:.1f} s"
            f" / all settled {burst['operator_all_settled_seconds']:.1f} s ({burst['run_phases']});"
            f" plain Jobs: all exist {burst['plain_all_jobs_exist_seconds']:.1f} s / all settled "
            f"{burst['plain_all_settled_seconds']:.1f} s; ratio {burst['settled_ratio']:.2f}"
        )
        print(
            f"  requests: {burst['operator_requests_per_run']:.1f} per run (operator), "
            f"{burst['controller_manager_requests_per_plain_job']:.1f} per plain Job "
            f"(controller-manager); operator CPU {burst['operator_cpu_seconds_burst']:.1f} s, "
            f"RSS after {burst['operator_rss_mib_after']:.0f} MiB"
        )
        print(f"  operator requests: {burst['operator_requests_by_verb']}")
    for key, step in results["steady"].items():
        if key.startswith("running_"):
            print(
                f"steady, {step['running_runs']} Running: operator "
                f"{step['operator_requests_per_second']:.2f} req/s "
                f"({step['operator_requests_per_second_per_running_run']:.3f} per run), "
                f"CPU {step['operator_cpu_percent']:.1f} %, RSS {step['operator_rss_mib']:.0f} MiB"
            )
            print(f"  by client (req/s): {_rounded(step['requests_per_second_by_client'])}")
    final = results["steady"]["finished_500_running_50"]
    print(
        f"{final['finished_runs']} finished + {final['running_runs']} running: RSS "
        f"{final['operator_rss_mib']:.0f} MiB, CPU {final['operator_cpu_percent']:.1f} %"
    )
    print("goals:")
    for name, goal in results["goals"].items():
        mark = "met" if goal["met"] else "MISSED"
        print(f"  {name}: {goal['measured']:.2f} (goal <= {goal['goal']}) {mark}")


def _rounded(rates: dict[str, float]) -> dict[str, float]:
    return {who: round(rate, 2) for who, rate in rates.items()}


if __name__ == "__main__":
    sys.exit(main())
