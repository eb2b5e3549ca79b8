"""Status size at scale: 10 streams x 1,000 clients through the real checkpoint code.

Starts a local control plane, opens one cycle per stream the way the operator does
(``core.checkpoint.claim_cycle`` written by ``kube.streams.Checkpoints``), and runs the real
``StreamWorker`` with the worker's real ``ConditionalCheckpoint`` writer for every stream at once,
in threads of this process. Only the client's tasks are faked, in-process: each of the three
reports a start and an end with small counts, as ``support.fake_tasks`` would from a child
process (spawning 10,000 children would measure process start-up, not status size).

Prints, per object (the run and each SmartResumeStream): bytes as stored (JSON, managedFields
included), of which managedFields, bytes per client, and checkpoint writes per client. Asserts
nothing. Goals (issue 7): every object < 1 MiB incl. managedFields, <= 3 status writes per client.

Run: ``make bench-status`` or ``python benchmarks/status_size.py [--streams N] [--clients M]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client

from harness.cluster import Cluster, install_crds
from harness.controlplane import ControlPlane
from smart_resume import resource
from smart_resume.config import Settings
from smart_resume.core.checkpoint import claim_cycle
from smart_resume.core.clients import Client
from smart_resume.core.spec import TASK_ORDER, RunSpec
from smart_resume.kube.runs import Runs
from smart_resume.kube.streams import FIELD_MANAGER_OPERATOR, FIELD_MANAGER_WORKER, Checkpoints
from smart_resume.worker.isolation import ClientJob, Ending, TaskReport
from smart_resume.worker.main import ConditionalCheckpoint
from smart_resume.worker.stream import StopSignals, StreamWorker

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "bench-status"
RUN = "bench-nightly"
MIB = 1024 * 1024


def in_process_client(
    job: ClientJob,
    *,
    on_report: Callable[[TaskReport], None],
    **_: Any,
) -> tuple[Ending, str]:
    """The three tasks, faked: a start and an end with counts each, in this process."""
    for task in job.tasks:
        on_report(TaskReport(task, started=True))
        outcome = {"examined": 12, "succeeded": 10, "failed": 1, "skipped": {"already_done": 1}}
        on_report(TaskReport(task, started=False, outcome=outcome, duration_seconds=0.01))
    return Ending.COMPLETED, ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--clients", type=int, default=1000, help="clients per stream")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="smart-resume-bench-"))
    plane = ControlPlane(workdir / "cluster")
    try:
        plane.up()
        api = Cluster(plane.kubeconfig).api_client()
        api.configuration.connection_pool_maxsize = args.streams * 2
        install_crds(api, REPO / "crds")
        client.CoreV1Api(api).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE))
        )
        measure(api, args.streams, args.clients)
    finally:
        plane.down()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def measure(api: client.ApiClient, streams: int, clients_per_stream: int) -> None:
    spec = {"streams": list(range(1, streams + 1)), "tasks": list(TASK_ORDER)}
    run = client.CustomObjectsApi(api).create_namespaced_custom_object(
        resource.GROUP,
        resource.VERSION,
        NAMESPACE,
        resource.PLURAL,
        {
            "apiVersion": resource.API_VERSION,
            "kind": resource.KIND,
            "metadata": {"name": RUN},
            "spec": spec,
        },
    )
    runs = Runs(api, field_manager=FIELD_MANAGER_OPERATOR)
    checkpoints = Checkpoints(api, field_manager=FIELD_MANAGER_OPERATOR)
    run_id = "SR-261201-001"
    runs.patch_status(NAMESPACE, RUN, {"runId": run_id})
    for stream in spec["streams"]:
        name = resource.checkpoint_name(stream)
        found = checkpoints.create(NAMESPACE, name, stream=stream)
        claim = claim_cycle(
            found.get("status") or {},
            run_name=RUN,
            run_uid=run["metadata"]["uid"],
            run_id=run_id,
            continue_unfinished=True,
        )
        checkpoints.replace_status(found, claim.status)
        runs.patch_stream(NAMESPACE, RUN, stream, {"checkpoint": name, "cycle": run_id})

    writes = dict.fromkeys(spec["streams"], 0)
    errors: list[BaseException] = []

    def work(stream: int) -> None:
        writer = ConditionalCheckpoint(
            Checkpoints(api, field_manager=FIELD_MANAGER_WORKER),
            namespace=NAMESPACE,
            name=resource.checkpoint_name(stream),
            run_uid=run["metadata"]["uid"],
            cycle=run_id,
        )

        def counted(patch: dict[str, Any]) -> None:
            writes[stream] += 1
            writer(patch)

        clients = [
            Client(
                client_id=f"client-{stream:02d}-{n:04d}",
                name=f"Client {n}",
                base_id="appBench",
                stream=stream,
            )
            for n in range(clients_per_stream)
        ]
        try:
            StreamWorker(
                run_id=run_id,
                spec=RunSpec.from_body({"spec": spec}),
                stream=stream,
                settings=Settings(),
                clients=clients,
                carried={},
                checkpoint=counted,
                signals=StopSignals(),
                deadline=time.monotonic() + 24 * 3600,
                client_runner=in_process_client,
            ).run()
        except BaseException as exc:  # reported below; the other streams go on
            errors.append(exc)

    began = time.monotonic()
    threads = [threading.Thread(target=work, args=(s,)) for s in spec["streams"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - began
    if errors:
        print(f"errors: {errors[:3]}", file=sys.stderr)

    total_clients = streams * clients_per_stream
    print(f"{streams} streams x {clients_per_stream} clients, three tasks each ({seconds:.0f} s)")
    print(f"{'object':<28}{'bytes':>10}{'managedFields':>15}{'B/client':>10}{'writes/client':>15}")
    objects = [(f"SmartResumeRun/{RUN}", _get(api, resource.PLURAL, RUN), total_clients, None)] + [
        (
            f"SmartResumeStream/{resource.checkpoint_name(s)}",
            _get(api, resource.STREAM_PLURAL, resource.checkpoint_name(s)),
            clients_per_stream,
            writes[s] / clients_per_stream,
        )
        for s in spec["streams"]
    ]
    for label, body, clients, per_client in objects:
        size = len(json.dumps(body, separators=(",", ":")))
        managed = len(json.dumps(body["metadata"].get("managedFields", []), separators=(",", ":")))
        shown = f"{per_client:.2f}" if per_client is not None else "-"
        print(f"{label:<28}{size:>10}{managed:>15}{size / clients:>10.1f}{shown:>15}")
    largest = max(len(json.dumps(b, separators=(",", ":"))) for _, b, _, _ in objects)
    print(f"largest object: {largest / MIB:.3f} MiB (goal < 1 MiB)")
    print(
        f"checkpoint writes per client: {sum(writes.values()) / total_clients:.2f} (goal <= 3); "
        f"{sum(writes.values()) / seconds:.0f} writes/s"
    )


def _get(api: client.ApiClient, plural: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(api).get_namespaced_custom_object(  # type: ignore[no-any-return]
        resource.GROUP, resource.VERSION, NAMESPACE, plural, name
    )


if __name__ == "__main__":
    sys.exit(main())
