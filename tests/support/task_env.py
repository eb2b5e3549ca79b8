"""One client's base in the local fakes (Airtable, AI, Apify) and contexts to run the real tasks.

``task_env()`` starts the three fakes over real HTTP on 127.0.0.1, creates the client's Leads
table in a base of its own (so the process-wide Airtable pacer never carries one test's requests
into the next) and builds ``TaskContext``s whose settings point at the fakes, with short timeouts
and retries without backoff. The client's name has quotes, an apostrophe and a backslash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from fakes import fake_ai, fake_airtable, fake_apify
from fakes.fake_ai import Answer, FakeAI
from fakes.fake_airtable import FakeAirtable
from fakes.fake_apify import FakeApify
from fakes.server import Request
from smart_resume.config import AirtableSettings, AISettings, ApifySettings, Secret, Settings
from smart_resume.core.clients import Client
from smart_resume.integrations.airtable_fields import ClientsTable, LeadsTable, ScoringStatus
from smart_resume.integrations.apify import Post
from smart_resume.integrations.http import retry_policy
from smart_resume.integrations.verdicts import Reason
from smart_resume.tasks.base import TaskContext
from smart_resume.tasks.services import RETRIED_STATUSES, Services

MASTER_BASE = "appMasterBase0001"
TRICKY_NAME = 'O\'Brien & "Sons" \\ Recruiting'
CRITERIA = "Heads of talent at B2B SaaS companies with 50-500 staff."
TOPICS = "Hiring, recruiting operations, employer branding."
RETRIES = 2
FAST_RETRY = retry_policy(total=RETRIES, backoff_factor=0, statuses=RETRIED_STATUSES)
"""The production retry policy of the AI and Apify sessions, without the backoff."""
AI_TIMEOUT_SECONDS = 0.5

AI_ANSWERS: list[tuple[Answer, ScoringStatus, str]] = [
    (Answer.PROSE, ScoringStatus.SCORED, ""),
    (Answer.FENCED, ScoringStatus.SCORED, ""),
    (Answer.REFUSAL, ScoringStatus.SKIPPED, Reason.AI_REFUSAL),
    (Answer.TRUNCATED, ScoringStatus.SKIPPED, Reason.AI_TRUNCATED),
    (Answer.BLOCKED, ScoringStatus.SKIPPED, Reason.AI_BLOCKED),
    (Answer.GARBAGE, ScoringStatus.SKIPPED, Reason.AI_NO_JSON),
    (Answer.MISSING_SCORE, ScoringStatus.SKIPPED, Reason.AI_MISSING_SCORE),
    (Answer.OUT_OF_RANGE, ScoringStatus.SKIPPED, Reason.AI_SCORE_OUT_OF_RANGE),
]
"""Each kind of AI answer for one lead: the status it leaves and the reason code it counts. (No
answer at all, e.g. ``Answer.HTTP_500``, leaves the lead as it was: see the outage tests.)"""


def profile_url(n: int) -> str:
    """Zero-padded, so that no lead's URL is a prefix of another's (FakeAI scripts match text)."""
    return f"https://www.linkedin.com/in/lead-{n:03d}"


def lead(n: int, **fields: Any) -> dict[str, Any]:
    """A lead to be scored, with these Leads fields changed (keys are field names)."""
    return {
        LeadsTable.LINKEDIN_PROFILE_URL: profile_url(n),
        LeadsTable.FIRST_NAME: "Lead",
        LeadsTable.LAST_NAME: f"Number {n}",
        LeadsTable.HEADLINE: "Head of Talent",
        LeadsTable.COMPANY_NAME: "Acme SaaS",
        LeadsTable.SCORING_STATUS: ScoringStatus.TO_BE_SCORED,
        **fields,
    }


def post(n: int, k: int) -> Post:
    """Post ``k`` of lead ``n``."""
    return Post(
        url=f"https://www.linkedin.com/posts/lead-{n:03d}_activity-{k}",
        text=f"Post {k} of lead {n}: what we learned hiring recruiters this quarter.",
        posted_at=f"2025-01-0{k}T09:30:00+00:00",
        author_profile_url=profile_url(n),
        reactions=10 * k,
        comments=k,
    )


@dataclasses.dataclass
class TaskEnv:
    airtable: FakeAirtable
    ai: FakeAI
    apify: FakeApify
    base_id: str

    def add_leads(self, leads: Iterable[Mapping[str, Any]]) -> list[str]:
        """Create these leads (field mappings); returns their record ids."""
        created = self.airtable.add_records(self.base_id, LeadsTable.TABLE, leads)
        return [record["id"] for record in created]

    def leads(self) -> dict[str, dict[str, Any]]:
        """Every lead's fields, by LinkedIn profile URL ("" for a lead without one)."""
        records = self.airtable.records(self.base_id, LeadsTable.TABLE)
        return {r["fields"].get(LeadsTable.LINKEDIN_PROFILE_URL, ""): r["fields"] for r in records}

    def lead_writes(self) -> list[Request]:
        """The write requests the client's Leads table received."""
        return [
            r
            for r in self.airtable.requests
            if r.method in ("PATCH", "PUT", "POST") and r.path.startswith(f"/v0/{self.base_id}/")
        ]

    def client(self, **fields: Any) -> Client:
        master = {ClientsTable.SCORING_CRITERIA: CRITERIA, ClientsTable.POST_TOPICS: TOPICS}
        return Client(
            client_id="obrien-sons",
            name=TRICKY_NAME,
            base_id=self.base_id,
            stream=1,
            record_id="recClient00000001",
            fields={**master, **fields},
        )

    def context(
        self,
        *,
        concurrency: int = 4,
        run_concurrency: int = 4,
        ai_timeout_seconds: float = AI_TIMEOUT_SECONDS,
        lead_scoring_limit: int | None = None,
        dry_run: bool = False,
        cancelled: threading.Event | None = None,
        client_fields: Mapping[str, Any] | None = None,
    ) -> TaskContext:
        """A context for the env's client, with fresh adapters (and so fresh connections)."""
        settings = Settings(
            airtable=AirtableSettings(
                api_key=Secret(fake_airtable.DEFAULT_API_KEY),
                endpoint_url=self.airtable.url,
                master_base_id=MASTER_BASE,
                timeout_seconds=2.0,
            ),
            ai=AISettings(
                api_key=Secret(fake_ai.DEFAULT_API_KEY),
                base_url=f"{self.ai.url}/v1",
                model="fake-model",
                concurrency=concurrency,
                timeout_seconds=ai_timeout_seconds,
            ),
            apify=ApifySettings(
                token=Secret(fake_apify.DEFAULT_TOKEN),
                base_url=self.apify.url,
                actor_id=fake_apify.DEFAULT_ACTOR,
                max_posts_per_lead=5,
                run_concurrency=run_concurrency,
                wait_seconds=1,
                timeout_seconds=2.0,
            ),
        )
        return TaskContext(
            client=self.client(**(client_fields or {})),
            run_id="SR-250101-001",
            settings=settings,
            services=Services(settings, retry=FAST_RETRY),
            lead_scoring_limit=lead_scoring_limit,
            dry_run=dry_run,
            cancelled=cancelled or threading.Event(),
        )


@contextlib.contextmanager
def task_env() -> Iterator[TaskEnv]:
    airtable, ai, apify = FakeAirtable(), FakeAI(), FakeApify()
    with airtable, ai, apify:
        base_id = "app" + secrets.token_hex(7)
        airtable.add_table(base_id, LeadsTable.TABLE, fields=LeadsTable.field_names())
        yield TaskEnv(airtable, ai, apify, base_id)
