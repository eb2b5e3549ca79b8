"""The three real tasks end to end: real operator and control plane, fakes for Airtable, AI, Apify.

Unlike the lifecycle tests, no task plugin is configured, so the workers run the built-in lead
scoring, post harvesting and post scoring against the fakes over real HTTP. The AI key and the
Apify token reach the workers only through the namespace's credentials Secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from cluster.conftest import MASTER_BASE, Airtable
from fakes import fake_ai, fake_apify
from fakes.fake_ai import Answer, FakeAI
from fakes.fake_apify import FakeApify
from fakes.records import client_record
from harness.operator import OperatorProcess
from smart_resume import resource
from smart_resume.integrations.airtable_fields import ClientsTable, LeadsTable
from support import fake_tasks
from support.runs import create_run, cycle_clients, wait_phase
from support.task_env import CRITERIA, TOPICS, TRICKY_NAME, lead, post, profile_url

pytestmark = pytest.mark.cluster

S = LeadsTable
CLIENTS = {  # client id -> (stream, name, numbers of its leads)
    "acme-recruiting": (1, TRICKY_NAME, range(101, 106)),
    "blue-harbor": (1, "Blue Harbor", range(201, 204)),
    "cedar-talent": (2, 'Cedar\'s "Talent"', range(301, 305)),
}
WITHOUT_POSTS = 102
REFUSED = 302
"""The AI refuses every prompt about this lead: its lead and post scores are Skipped."""
TASKS = ("lead_scoring", "post_harvesting", "post_scoring")


def base_id(client_id: str) -> str:
    return f"app{client_id.replace('-', '')[:14]:0<14}"


@pytest.fixture()
def ai_service() -> Iterator[FakeAI]:
    service = FakeAI()
    with service:
        yield service


@pytest.fixture()
def apify_service() -> Iterator[FakeApify]:
    service = FakeApify()
    with service:
        yield service


@pytest.fixture()
def airtable(airtable: Airtable) -> Airtable:
    """The fake Airtable with every Clients field (criteria, topics), instead of the test ones."""
    airtable.fake.add_table(MASTER_BASE, ClientsTable.TABLE, fields=ClientsTable.field_names())
    return airtable


@pytest.fixture()
def run_namespace(run_namespace: str, api_client: client.ApiClient) -> str:
    """The runs namespace, with the AI key and Apify token added to the credentials Secret."""
    client.CoreV1Api(api_client).patch_namespaced_secret(
        "smart-resume-credentials",
        run_namespace,
        {
            "stringData": {
                "SMART_RESUME_AI_API_KEY": fake_ai.DEFAULT_API_KEY,
                "SMART_RESUME_APIFY_TOKEN": fake_apify.DEFAULT_TOKEN,
            }
        },
    )
    return run_namespace


@pytest.fixture()
def operator_env(
    operator_env: dict[str, str], ai_service: FakeAI, apify_service: FakeApify
) -> dict[str, str]:
    """The lifecycle tests' environment without the test tasks, pointing at the AI and Apify."""
    env = {
        key: value
        for key, value in operator_env.items()
        if key not in ("SMART_RESUME_JOB_TASK_PLUGINS", fake_tasks.LOG_ENV)
    }
    return env | {
        "SMART_RESUME_AI_BASE_URL": f"{ai_service.url}/v1",
        "SMART_RESUME_AI_MODEL": "fake-model",
        "SMART_RESUME_AI_CONCURRENCY": "4",
        "SMART_RESUME_AI_TIMEOUT_SECONDS": "5",
        "SMART_RESUME_APIFY_BASE_URL": apify_service.url,
        "SMART_RESUME_APIFY_ACTOR_ID": fake_apify.DEFAULT_ACTOR,
        "SMART_RESUME_APIFY_MAX_POSTS_PER_LEAD": "3",
        "SMART_RESUME_APIFY_TIMEOUT_SECONDS": "10",
    }


def add_clients(airtable: Airtable, ai: FakeAI, apify: FakeApify) -> None:
    for client_id, (stream, name, numbers) in CLIENTS.items():
        record = client_record(
            client_id,
            name=name,
            stream=stream,
            base_id=base_id(client_id),
            **{ClientsTable.SCORING_CRITERIA: CRITERIA, ClientsTable.POST_TOPICS: TOPICS},
        )
        airtable.fake.add_records(MASTER_BASE, ClientsTable.TABLE, [record])
        airtable.fake.add_table(base_id(client_id), S.TABLE, fields=S.field_names())
        airtable.fake.add_records(base_id(client_id), S.TABLE, [lead(n) for n in numbers])
        for n in numbers:
            if n != WITHOUT_POSTS:
                apify.set_posts(profile_url(n), [post(n, k) for k in (1, 2, 3, 4)])
    ai.script(profile_url(REFUSED), Answer.REFUSAL)


def leads_of(airtable: Airtable, client_id: str) -> dict[int, dict[str, Any]]:
    records = airtable.fake.records(base_id(client_id), S.TABLE)
    return {int(r["fields"][S.LINKEDIN_PROFILE_URL][-3:]): r["fields"] for r in records}


def test_real_tasks__two_streams_score_harvest_and_score_posts(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    ai_service: FakeAI,
    apify_service: FakeApify,
    operator: OperatorProcess,
) -> None:
    """Every client's leads end scored, harvested and post-scored; a refused lead is Skipped."""
    add_clients(airtable, ai_service, apify_service)

    create_run(api_client, run_namespace, "real", streams=[1, 2])
    wait_phase(api_client, run_namespace, "real", {"Succeeded"}, timeout=120)

    cycles = {stream: cycle_clients(api_client, run_namespace, stream) for stream in (1, 2)}
    for client_id, (stream, _, numbers) in CLIENTS.items():
        entry = cycles[stream][client_id]
        assert entry["state"] == "Completed", entry
        tasks = entry["tasks"]
        refused = int(REFUSED in numbers)
        assert tasks["lead_scoring"]["examined"] == len(numbers)
        assert tasks["lead_scoring"]["succeeded"] == len(numbers) - refused
        assert tasks["post_harvesting"]["succeeded"] == len(numbers)
        with_posts = len(numbers) - int(WITHOUT_POSTS in numbers)
        assert tasks["post_scoring"]["succeeded"] == with_posts - refused
        for n, fields in leads_of(airtable, client_id).items():
            scored, posts = n != REFUSED, 0 if n == WITHOUT_POSTS else 3
            assert fields[S.SCORING_STATUS] == ("Scored" if scored else "Skipped"), (n, fields)
            assert (S.AI_SCORE in fields) is scored
            assert fields[S.POSTS_HARVEST_STATUS] == "Done"
            assert fields.get(S.POSTS_HARVESTED_COUNT, 0) == posts
            relevance = fields.get(S.POSTS_RELEVANCE_STATUS)
            assert relevance == (None if not posts else "Scored" if scored else "Skipped")
            assert (S.TOP_SCORING_POST in fields) is bool(posts and scored)
    assert cycles[2]["cedar-talent"]["tasks"]["lead_scoring"]["skipped"] == 1  # the refusal
    job = client.BatchV1Api(api_client).read_namespaced_job(
        resource.job_name("real", 1), run_namespace
    )
    pod = api_client.sanitize_for_serialization(job)["spec"]["template"]["spec"]
    env = {variable["name"]: variable for variable in pod["containers"][0]["env"]}
    for name in ("SMART_RESUME_AI_API_KEY", "SMART_RESUME_APIFY_TOKEN"):
        reference = {"name": "smart-resume-credentials", "key": name, "optional": True}
        assert env[name] == {"name": name, "valueFrom": {"secretKeyRef": reference}}
