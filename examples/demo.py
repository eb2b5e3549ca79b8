"""`make demo`: one SmartResumeRun end to end, on this machine, with nothing to install by hand.

It starts a local Kubernetes control plane (the same one the tests use), the local fakes of
Airtable, the AI endpoint and Apify (real HTTP on 127.0.0.1, seeded with four fictional clients and
their leads), the operator with its own least-privilege identity, and a pod runner standing in for
the kubelet. Then it creates a two-stream SmartResumeRun, prints its progress the way
`kubectl get srr` shows it, and finally what the run did: per-client task counts from the streams'
checkpoints (SmartResumeStreams), the Events of `kubectl describe`, and the leads as they now
stand in the client bases.
Everything is stopped and removed at the end.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from fakes import fake_ai, fake_airtable, fake_apify
from fakes.fake_ai import Answer, FakeAI
from fakes.fake_airtable import FakeAirtable
from fakes.fake_apify import FakeApify
from fakes.records import client_record
from harness import manifests
from harness.cluster import Cluster, install_crds
from harness.controlplane import ControlPlane
from harness.operator import OperatorProcess
from harness.podrunner import POD_RUNNER_SCHEDULER, PodRunner
from smart_resume import resource
from smart_resume.core.checkpoint import decode_clients
from smart_resume.core.status import is_terminal
from smart_resume.integrations.airtable_fields import ClientsTable, LeadsTable, ScoringStatus
from smart_resume.integrations.apify import Post

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "smart-resume-demo"
OPERATOR_NAMESPACE = "smart-resume-system"
MASTER_BASE = "appDemoMaster0001"
RUN = "demo-nightly"
CLIENTS = [  # client id, name, stream
    ("acme-recruiting", "Acme Recruiting", 1),
    ("blue-harbor", "Blue Harbor Talent", 1),
    ("cedar-talent", "Cedar Talent Partners", 2),
    ("obrien-partners", 'O\'Brien & "Partners" Search', 2),
]
LEADS_PER_CLIENT = 8
TIMEOUT_SECONDS = 240


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="smart-resume-demo-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        say("starting a local control plane (etcd, kube-apiserver, kube-controller-manager)")
        plane = ControlPlane(workdir / "cluster")
        stack.callback(plane.down)
        plane.up()
        cluster = Cluster(plane.kubeconfig)
        api = cluster.api_client()
        install_crds(api, REPO / "crds")
        operator_kubeconfig = _prepare_namespaces(api, cluster, workdir)

        say("starting the local fakes of Airtable, the AI endpoint and Apify")
        airtable = stack.enter_context(FakeAirtable())
        ai = stack.enter_context(FakeAI(latency_seconds=0.05))
        apify = stack.enter_context(FakeApify())
        _seed(airtable, ai, apify)

        runner = PodRunner(
            api,
            cluster,
            workdir=workdir / "pods",
            base_env={
                "PATH": os.pathsep.join(
                    [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
                ),
                "HOME": str(workdir),
                "LANG": "C.UTF-8",
                "PYTHONUNBUFFERED": "1",
            },
        )
        (workdir / "pods").mkdir()
        runner.start()
        stack.callback(runner.stop)
        operator = OperatorProcess(
            _operator_env(operator_kubeconfig, airtable, ai, apify),
            NAMESPACE,
            workdir / "operator.log",
        )
        stack.callback(operator.stop)
        operator.start()
        say(f"operator running; creating SmartResumeRun {RUN} for streams 1 and 2\n")

        client.CustomObjectsApi(api).create_namespaced_custom_object(
            resource.GROUP,
            resource.VERSION,
            NAMESPACE,
            resource.PLURAL,
            {
                "apiVersion": resource.API_VERSION,
                "kind": resource.KIND,
                "metadata": {"name": RUN},
                "spec": {"streams": [1, 2], "clientTimeoutSeconds": 120},
            },
        )
        run = _watch(api)
        _report(api, run, airtable)
        return 0 if run["status"]["phase"] == "Succeeded" else 1


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _prepare_namespaces(api: client.ApiClient, cluster: Cluster, workdir: Path) -> Path:
    core = client.CoreV1Api(api)
    for name in (OPERATOR_NAMESPACE, NAMESPACE):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    manifests.apply(api, manifests.load("rbac-operator.yaml"))
    manifests.apply(api, manifests.load("rbac-worker.yaml", namespace=NAMESPACE))
    core.create_namespaced_secret(
        NAMESPACE,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="smart-resume-credentials"),
            string_data={
                "SMART_RESUME_AIRTABLE_API_KEY": fake_airtable.DEFAULT_API_KEY,
                "SMART_RESUME_AI_API_KEY": fake_ai.DEFAULT_API_KEY,
                "SMART_RESUME_APIFY_TOKEN": fake_apify.DEFAULT_TOKEN,
            },
        ),
    )
    for account in ("default", "smart-resume-operator"):
        _wait_for_account(core, OPERATOR_NAMESPACE, account)
    return cluster.kubeconfig_for(
        api,
        workdir / "operator.kubeconfig",
        namespace=OPERATOR_NAMESPACE,
        account="smart-resume-operator",
    )


def _wait_for_account(core: client.CoreV1Api, namespace: str, name: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            core.read_namespaced_service_account(name, namespace)
            return
        except client.ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def _seed(airtable: FakeAirtable, ai: FakeAI, apify: FakeApify) -> None:
    airtable.add_table(MASTER_BASE, ClientsTable.TABLE, fields=ClientsTable.field_names())
    for number, (client_id, name, stream) in enumerate(CLIENTS, start=1):
        base = f"appDemoClient{number:04d}"
        criteria = "Heads of talent and recruiting leaders at B2B SaaS companies."
        record = client_record(
            client_id,
            name=name,
            stream=stream,
            base_id=base,
            **{
                ClientsTable.SCORING_CRITERIA: criteria,
                ClientsTable.POST_TOPICS: "Hiring, recruiting operations, employer branding.",
            },
        )
        airtable.add_records(MASTER_BASE, ClientsTable.TABLE, [record])
        airtable.add_table(base, LeadsTable.TABLE, fields=LeadsTable.field_names())
        leads = []
        for lead in range(1, LEADS_PER_CLIENT + 1):
            url = f"https://www.linkedin.com/in/{client_id}-lead-{lead:02d}"
            leads.append(
                {
                    LeadsTable.LINKEDIN_PROFILE_URL: url,
                    LeadsTable.FIRST_NAME: "Lead",
                    LeadsTable.LAST_NAME: f"{lead:02d}",
                    LeadsTable.HEADLINE: "Head of Talent",
                    LeadsTable.COMPANY_NAME: f"{name} prospect {lead}",
                    LeadsTable.SCORING_STATUS: ScoringStatus.TO_BE_SCORED,
                }
            )
            if lead % 3:  # some leads have posts, some have none
                apify.set_posts(
                    url,
                    [
                        Post(
                            url=f"{url}/posts/{k}",
                            text=f"Post {k}: how we hire recruiters",
                            posted_at=f"2026-10-0{k}T09:00:00+00:00",
                            author_profile_url=url,
                            reactions=10 * k,
                            comments=k,
                        )
                        for k in (1, 2)
                    ],
                )
        airtable.add_records(base, LeadsTable.TABLE, leads)
    # Real-world AI trouble, handled per lead: a refusal and an answer wrapped in prose.
    ai.script(f"{CLIENTS[0][0]}-lead-02", Answer.REFUSAL)
    ai.script(f"{CLIENTS[2][0]}-lead-05", Answer.PROSE)


def _operator_env(
    kubeconfig: Path, airtable: FakeAirtable, ai: FakeAI, apify: FakeApify
) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "KUBECONFIG": str(kubeconfig),
        "SMART_RESUME_AIRTABLE_ENDPOINT_URL": airtable.url,
        "SMART_RESUME_AIRTABLE_MASTER_BASE_ID": MASTER_BASE,
        "SMART_RESUME_AI_BASE_URL": f"{ai.url}/v1",
        "SMART_RESUME_APIFY_BASE_URL": apify.url,
        "SMART_RESUME_APIFY_ACTOR_ID": fake_apify.DEFAULT_ACTOR,
        "SMART_RESUME_JOB_SCHEDULER_NAME": POD_RUNNER_SCHEDULER,
        "SMART_RESUME_JOB_TERMINATION_GRACE_PERIOD_SECONDS": "5",
        "SMART_RESUME_LEASE_RENEW_INTERVAL_SECONDS": "5",
    }


def _watch(api: client.ApiClient) -> dict[str, Any]:
    objects = client.CustomObjectsApi(api)
    print(f"{'NAME':<14}{'PHASE':<20}{'STREAMS':<9}{'PROGRESS':<10}CURRENT")
    shown = None
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        run = objects.get_namespaced_custom_object(
            resource.GROUP, resource.VERSION, NAMESPACE, resource.PLURAL, RUN
        )
        status = run.get("status") or {}
        row = (
            status.get("phase", ""),
            status.get("streamsSummary", ""),
            status.get("progress", ""),
            status.get("current", ""),
        )
        if row != shown and row[0]:
            print(f"{RUN:<14}{row[0]:<20}{row[1]:<9}{row[2]:<10}{row[3]}", flush=True)
            shown = row
        if is_terminal(status.get("phase", "")):
            return run
        time.sleep(0.5)
    raise SystemExit(f"the run did not finish within {TIMEOUT_SECONDS}s")


def _report(api: client.ApiClient, run: dict[str, Any], airtable: FakeAirtable) -> None:
    status = run["status"]
    print(
        f"\nrun {status['runId']}: {status['phase']}, {status['progress']} clients, "
        f"from {status['startTime']} to {status['completionTime']}\n"
    )
    print(
        f"{'STREAM':<8}{'CLIENT':<18}{'STATE':<11}{'TASK':<17}{'EXAMINED':>9}{'OK':>5}{'SKIPPED':>9}"
    )
    for stream, entry in sorted(status["streams"].items()):
        checkpoint = client.CustomObjectsApi(api).get_namespaced_custom_object(
            resource.GROUP, resource.VERSION, NAMESPACE, resource.STREAM_PLURAL, entry["checkpoint"]
        )
        for client_id, progress in sorted(decode_clients(checkpoint["status"]).items()):
            for task, counts in progress["tasks"].items():
                print(
                    f"{stream:<8}{client_id:<18}{progress['state']:<11}{task:<17}"
                    f"{counts['examined']:>9}{counts['succeeded']:>5}{counts['skipped']:>9}"
                )
    print("\nEvents (kubectl describe srr):")
    events = (
        client.CoreV1Api(api)
        .list_namespaced_event(NAMESPACE, field_selector=f"involvedObject.name={RUN}")
        .items
    )
    for event in sorted(
        events, key=lambda e: (e.metadata.creation_timestamp, int(e.metadata.resource_version))
    ):
        print(f"  {event.type:<8}{event.reason:<22}{event.message}")
    print("\nLeads in the client bases:")
    for number, (_client_id, name, _) in enumerate(CLIENTS, start=1):
        records = airtable.records(f"appDemoClient{number:04d}", LeadsTable.TABLE)
        states = collections.Counter(
            r["fields"].get(LeadsTable.SCORING_STATUS, "") for r in records
        )
        scores = [
            r["fields"][LeadsTable.AI_SCORE] for r in records if LeadsTable.AI_SCORE in r["fields"]
        ]
        posts = sum(r["fields"].get(LeadsTable.POSTS_HARVESTED_COUNT, 0) for r in records)
        best = max(
            (r["fields"].get(LeadsTable.POSTS_RELEVANCE_SCORE, -1) for r in records), default=-1
        )
        print(
            f"  {name:<32} scoring {dict(states)}; mean score "
            f"{sum(scores) / max(len(scores), 1):.0f}; posts harvested {posts}; "
            f"best post score {best}"
        )


if __name__ == "__main__":
    sys.exit(main())
