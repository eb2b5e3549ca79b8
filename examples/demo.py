"""`make demo`: the product's promise, told as a story on this machine, with nothing to install.

1. The stage: a local Kubernetes control plane (the one the tests use), the local fakes of
   Airtable, the AI endpoint and Apify (real HTTP on 127.0.0.1, seeded with fictional clients and
   their leads), the operator with its own least-privilege identity, and a pod runner standing in
   for the kubelet.
2. Night one: the nightly SmartResumeRun is cut short by its deadline, part-way through.
3. Night two: the next run resumes each stream's cycle exactly where the first one stopped; its
   status names the run it resumed from, and no lead is sent to the AI twice.
4. What everyone else sees: the printer columns while the runs work, the run report
   (`smart-resume report`), the Events, the run records in Airtable, the alert and report e-mails
   as a local SMTP server received them, the Prometheus metrics, and the leads in the client bases.
Everything is stopped and removed at the end.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
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
from fakes.mail import SMTP_PASSWORD, SMTP_USER, SmtpServer, text_of
from fakes.records import add_master_base, client_record
from harness import manifests
from harness.cluster import RESTRICTED_POD_SECURITY, Cluster, install_crds
from harness.controlplane import ControlPlane
from harness.operator import OperatorProcess
from harness.podrunner import POD_RUNNER_SCHEDULER, PodRunner
from harness.tables import get_table
from harness.waiting import wait_for
from smart_resume import resource
from smart_resume.core.status import is_terminal
from smart_resume.integrations.airtable_fields import (
    ClientRunResultsTable,
    ClientsTable,
    JobTrackingTable,
    LeadsTable,
    ScoringStatus,
)
from smart_resume.integrations.apify import Post
from smart_resume.reporting import print_report
from support.runs import events

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "smart-resume-demo"
OPERATOR_NAMESPACE = "smart-resume-system"
MASTER_BASE = "appDemoMaster0001"
CLIENTS = [  # client id, name, stream
    ("acme-recruiting", "Acme Recruiting", 1),
    ("blue-harbor", "Blue Harbor Talent", 1),
    ("fjord-staffing", "Fjord Staffing", 1),
    ("cedar-talent", "Cedar Talent Partners", 2),
    ("obrien-partners", 'O\'Brien & "Partners" Search', 2),
    ("dune-search", "Dune Executive Search", 2),
]
LEADS_PER_CLIENT = 8
AI_LATENCY_SECONDS = 1.5
"""A real model's answer time; a client then takes about 4 s, so the first night's deadline
(which stops taking clients once less than a client timeout is left) leaves some for the second."""
FIRST_NIGHT = {"deadlineSeconds": 14, "clientTimeoutSeconds": 6}
TIMEOUT_SECONDS = 150


def main() -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="smart-resume-demo-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        chapter("The stage")
        say("a local control plane: etcd, kube-apiserver, kube-controller-manager")
        plane = ControlPlane(workdir / "cluster")
        stack.callback(plane.down)
        plane.up()
        cluster = Cluster(plane.kubeconfig)
        api = cluster.api_client()
        install_crds(api, REPO / "crds")
        operator_kubeconfig = _prepare_namespaces(api, cluster, workdir)

        say(f"local fakes of Airtable, the AI endpoint and Apify; {len(CLIENTS)} clients")
        airtable = stack.enter_context(FakeAirtable())
        ai = stack.enter_context(FakeAI(latency_seconds=AI_LATENCY_SECONDS))
        apify = stack.enter_context(FakeApify())
        mail = stack.enter_context(SmtpServer())
        _seed(airtable, ai, apify)

        (workdir / "pods").mkdir()
        runner = PodRunner(api, cluster, workdir=workdir / "pods", base_env=_pod_env(workdir))
        runner.start()
        stack.callback(runner.stop)
        operator = OperatorProcess(
            _operator_env(operator_kubeconfig, airtable, ai, apify, mail),
            NAMESPACE,
            workdir / "operator.log",
        )
        stack.callback(operator.stop)
        operator.start()
        say("the operator runs with its own ServiceAccount; a pod runner plays the kubelet")

        chapter("Night one: the nightly run meets its deadline part-way")
        say(f"kubectl apply: SmartResumeRun nightly-1, streams 1 and 2, {_spec_text(FIRST_NIGHT)}")
        first = _run(api, "nightly-1", FIRST_NIGHT)
        print()
        _report(api, "nightly-1")

        chapter("Night two: the next run resumes where the first stopped")
        say("kubectl apply: SmartResumeRun nightly-2, streams 1 and 2, default deadline")
        second = _run(api, "nightly-2", {})
        for key, entry in sorted(second["status"]["streams"].items()):
            say(
                f"stream {key}: cycle {entry.get('cycle')} resumed from "
                f"{entry.get('resumedFrom') or 'nothing (a new cycle)'}"
            )
        print()
        _report(api, "nightly-2")
        repeats = _ai_requests_per_lead(ai)

        chapter("What kubectl describe shows: the Events")
        for name in ("nightly-1", "nightly-2"):
            _events(api, name)

        chapter("The run records in Airtable (master base)")
        _records(airtable, [first["status"]["runId"], second["status"]["runId"]])

        chapter("The e-mails, as the local SMTP server received them")
        _emails(mail, second["status"]["runId"])

        chapter("What Prometheus scrapes from the operator")
        _metrics(operator)

        chapter("The leads in the client bases")
        _leads(airtable)

        chapter("The end")
        ok = second["status"]["phase"] == "Succeeded" and first["status"]["phase"] == "TimedOut"
        say(
            f"night one {first['status']['phase']}, night two {second['status']['phase']}; "
            f"leads sent to the AI twice: {repeats}; demo took {time.monotonic() - started:.0f} s"
        )
        say("stopping the operator, the pod runner, the fakes and the control plane")
        return 0 if ok and repeats == 0 else 1


def chapter(title: str) -> None:
    print(f"\n{'=' * 100}\n{title}\n{'=' * 100}", flush=True)


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _spec_text(spec: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in spec.items())


def _run(api: client.ApiClient, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Create the run, print its printer columns whenever they change, return it once it ended."""
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        resource.GROUP,
        resource.VERSION,
        NAMESPACE,
        resource.PLURAL,
        {
            "apiVersion": resource.API_VERSION,
            "kind": resource.KIND,
            "metadata": {"name": name},
            "spec": {"streams": [1, 2], **spec},
        },
    )
    say(f"kubectl get srr {name} --watch")
    path = f"/apis/{resource.GROUP}/{resource.VERSION}/namespaces/{NAMESPACE}/{resource.PLURAL}"
    shown: list[object] = []
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        columns, rows = get_table(api, path)
        row = next(([c or "" for c in r] for r in rows if r[0] == name), None)
        if row is not None and row[1] and row[:-1] != shown:  # Age changes by itself
            if not shown:
                print("    " + "".join(f"{c.upper():<14}" for c in columns[:4]) + "CURRENT")
            print("    " + "".join(f"{str(c):<14}" for c in row[:4]) + str(row[4]), flush=True)
            shown = row[:-1]
        run = client.CustomObjectsApi(api).get_namespaced_custom_object(
            resource.GROUP, resource.VERSION, NAMESPACE, resource.PLURAL, name
        )
        if is_terminal((run.get("status") or {}).get("phase", "")):
            return run
        time.sleep(0.5)
    raise SystemExit(f"run {name} did not finish within {TIMEOUT_SECONDS}s")


def _report(api: client.ApiClient, name: str) -> None:
    say(f"smart-resume report {name}   (also: kubectl smart-resume report {name})")
    buffer = io.StringIO()
    print_report(api, NAMESPACE, name, out=buffer)
    print("\n".join(f"    {line}" if line else "" for line in buffer.getvalue().splitlines()))


def _ai_requests_per_lead(ai: FakeAI) -> int:
    """Print the AI requests each lead cost, per task; return how many leads were asked twice."""
    per_lead: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for request in list(ai.requests):
        messages = request.json().get("messages") or []
        system = next((m["content"] for m in messages if m.get("role") == "system"), "")
        user = json.loads(next((m["content"] for m in messages if m.get("role") == "user"), "{}"))
        task = "lead scoring" if system.startswith("You score sales leads") else "post scoring"
        lead = user.get("lead_profile_url") or _profile_url(user.get("lead") or {})
        per_lead[task][lead] += 1
    say("AI requests per lead, over both nights:")
    repeats = 0
    for task, counts in sorted(per_lead.items()):
        histogram = collections.Counter(counts.values())
        repeats += sum(n for times, n in histogram.items() if times > 1)
        spread = ", ".join(f"{n} lead(s) asked {times}x" for times, n in sorted(histogram.items()))
        total = sum(counts.values())
        print(f"    {task:<14} {total:>4} requests for {len(counts):>3} leads: {spread}")
    return repeats


def _profile_url(lead: dict[str, Any]) -> str:
    return next(
        (str(v) for v in lead.values() if str(v).startswith("https://www.linkedin.com/in/")), "?"
    )


def _events(api: client.ApiClient, name: str) -> None:
    say(f"kubectl describe srr {name}")
    for event in sorted(
        events(api, NAMESPACE, name),
        key=lambda e: (e.metadata.creation_timestamp, int(e.metadata.resource_version)),
    ):
        print(f"    {event.type:<8}{event.reason:<22}{event.message}"[:104])


def _records(airtable: FakeAirtable, run_ids: list[str]) -> None:
    say("the operator upserts one Job Tracking record per run, one Client Run Result per client")
    jobs = JobTrackingTable

    def synced() -> list[dict[str, Any]] | None:
        rows = [r["fields"] for r in airtable.records(MASTER_BASE, jobs.TABLE)]
        final = {r.get(jobs.RUN_ID): r.get(jobs.STATUS) for r in rows}
        done = all(final.get(run_id) in ("TimedOut", "Succeeded") for run_id in run_ids)
        return rows if done and len(rows) == len(run_ids) else None

    rows = wait_for(synced, timeout=60, what="the run records in Airtable")
    print(
        f"    {'RUN ID':<16}{'STATUS':<11}{'CLIENTS':>8}{'DONE':>6}{'SCORED':>8}  SUCCESS  DURATION"
    )
    for row in sorted(rows, key=lambda r: str(r.get(jobs.RUN_ID))):
        print(
            f"    {row.get(jobs.RUN_ID, ''):<16}{row.get(jobs.STATUS, ''):<11}"
            f"{row.get(jobs.CLIENTS_PROCESSED, 0):>8}{row.get(jobs.CLIENTS_COMPLETED, 0):>6}"
            f"{row.get(jobs.LEADS_SCORED, 0):>8}  {row.get(jobs.SUCCESS_RATE, 0):>6} %  "
            f"{row.get(jobs.DURATION, '')}"
        )
    results = ClientRunResultsTable
    clients = [r["fields"] for r in airtable.records(MASTER_BASE, results.TABLE)]
    print(f"\n    {len(clients)} Client Run Results, e.g.:")
    for row in sorted(clients, key=lambda r: str(r.get(results.RUN_CLIENT_KEY)))[:4]:
        print(
            f"    {row.get(results.RUN_CLIENT_KEY, ''):<40}{row.get(results.STATE, ''):<11}"
            f"{row.get(results.TASK_STATES, '')}"[:100]
        )


def _emails(mail: SmtpServer, last_run_id: str) -> None:
    wait_for(
        lambda: any(last_run_id in subject for subject in mail.subjects()),
        timeout=60,
        what=f"the report e-mail of {last_run_id}",
    )
    say(f"{len(mail.messages)} e-mails to ops@agency.example:")
    for subject in mail.subjects():
        print(f"    {subject}"[:100])
    report = next((m for m in reversed(mail.messages) if last_run_id in str(m["Subject"])), None)
    if report is not None:
        say(f"the report of {last_run_id} (plain-text part; an HTML part comes with it):")
        for line in text_of(report).splitlines()[:16]:
            print(f"    {line}"[:100])


def _metrics(operator: OperatorProcess) -> None:
    say("curl http://<operator>:9090/metrics | grep smart_resume_   (non-zero samples)")
    for line in operator.scrape().splitlines():
        if not line.startswith("smart_resume_") or "_created" in line or "_bucket" in line:
            continue
        if float(line.rsplit(" ", 1)[1]) != 0:
            print(f"    {line}")


def _leads(airtable: FakeAirtable) -> None:
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
            f"    {name:<30} scoring {dict(states)}; mean score "
            f"{sum(scores) / max(len(scores), 1):.0f}; posts {posts}; best post score {best}"
        )


def _prepare_namespaces(api: client.ApiClient, cluster: Cluster, workdir: Path) -> Path:
    core = client.CoreV1Api(api)
    for name in (OPERATOR_NAMESPACE, NAMESPACE):
        labels = RESTRICTED_POD_SECURITY if name == NAMESPACE else None
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
        )
    manifests.apply(api, manifests.load("operator/rbac.yaml"))
    manifests.apply(api, manifests.load("runs/rbac.yaml", namespace=NAMESPACE))
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
    add_master_base(airtable, MASTER_BASE)
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
    ai.script(f"{CLIENTS[3][0]}-lead-05", Answer.PROSE)


def _pod_env(workdir: Path) -> dict[str, str]:
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }


def _operator_env(
    kubeconfig: Path, airtable: FakeAirtable, ai: FakeAI, apify: FakeApify, mail: SmtpServer
) -> dict[str, str]:
    return {
        # The operator's own secrets (in a cluster: the smart-resume-operator-credentials Secret).
        "SMART_RESUME_AIRTABLE_API_KEY": fake_airtable.DEFAULT_API_KEY,
        "SMART_RESUME_EMAIL_SMTP_PASSWORD": SMTP_PASSWORD,
        "SMART_RESUME_EMAIL_SMTP_HOST": "127.0.0.1",
        "SMART_RESUME_EMAIL_SMTP_PORT": str(mail.port),
        "SMART_RESUME_EMAIL_SMTP_USERNAME": SMTP_USER,
        "SMART_RESUME_EMAIL_SENDER": "smart-resume@agency.example",
        "SMART_RESUME_EMAIL_RECIPIENTS": "ops@agency.example",
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


if __name__ == "__main__":
    sys.exit(main())
