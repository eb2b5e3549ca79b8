"""Post scoring: the AI picks the lead's post most relevant to the client's topics, and scores it.

Selected: leads whose Posts Harvest Status is Done with a Posts Harvested Count above 0 and a
blank Posts Relevance Status (post harvesting clears it when a lead's posts change). Every judged
lead leaves that set, so a rerun or resumed run never asks twice:

- a verdict -> Posts Relevance Status Scored, Posts Relevance Score, Top Scoring Post (the best
  post's URL and text) and Date Posts Scored;
- an unusable answer (refusal, truncation, no JSON, missing or out-of-range score or index)
  -> Skipped;
- a request the endpoint rejects for this lead (400/413/422) or a Posts JSON that cannot be read
  -> Failed.

No answer at all (5xx or 429 after the retries, a timeout) is not a verdict: the lead is left as
it was and judged on the next attempt. Leads are read a page at a time and judged with the same
bounded AI concurrency and batched writes as lead scoring (``leads.judge_leads``).

Posts Relevance Status takes the ``ScoringStatus`` values. The reason codes are counted in the
task's outcome and logged. To judge a lead again, clear its Posts Relevance Status.

This module deliberately does not fetch posts (post harvesting does) and sends only the posts'
texts (cut by the prompt builder), not their reactions or dates.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

from pyairtable.formulas import AND, EQ, GT, Field, Formula

from smart_resume.integrations.ai import Prompt, post_scoring_prompt
from smart_resume.integrations.airtable_fields import (
    ClientsTable,
    HarvestStatus,
    LeadsTable,
    ScoringStatus,
)
from smart_resume.integrations.verdicts import Rejection, Verdict
from smart_resume.tasks.base import TaskContext, TaskOutcome
from smart_resume.tasks.leads import (
    Failure,
    Fields,
    Judgement,
    Lead,
    LeadWriter,
    client_text,
    count,
    is_blank,
    judge_leads,
    lead_pages,
    nonempty,
)

__all__ = [
    "UNREADABLE_POSTS",
    "needs_post_scoring",
    "post_scoring_fields",
    "readable_posts",
    "run",
]

UNREADABLE_POSTS: Final = "posts_json_invalid"
"""Failure code of a lead whose Posts JSON holds no post with a text."""

Posts = list[Mapping[str, Any]]


def needs_post_scoring() -> Formula:
    """The leads whose harvested posts still need judging (see the module docstring)."""
    return AND(
        EQ(Field(LeadsTable.POSTS_HARVEST_STATUS), HarvestStatus.DONE),
        GT(Field(LeadsTable.POSTS_HARVESTED_COUNT), 0),
        is_blank(LeadsTable.POSTS_RELEVANCE_STATUS),
    )


def readable_posts(posts_json: object) -> Posts | None:
    """The posts with a text in a Posts JSON value, or None when there are none to judge."""
    try:
        posts = json.loads(posts_json) if isinstance(posts_json, str) else None
    except ValueError:
        return None
    if not isinstance(posts, list):
        return None
    usable: Posts = [post for post in posts if isinstance(post, dict) and _text(post)]
    return usable or None


def post_scoring_fields(
    judgement: Judgement, posts: Sequence[Mapping[str, Any]], *, today: dt.date
) -> Fields:
    """The Leads fields to write for one lead's judgement of ``posts`` (as sent to the AI)."""
    if isinstance(judgement, Verdict):
        best = posts[judgement.extras["best_post_index"] - 1]
        return {
            LeadsTable.POSTS_RELEVANCE_STATUS: ScoringStatus.SCORED,
            LeadsTable.POSTS_RELEVANCE_SCORE: judgement.score,
            LeadsTable.TOP_SCORING_POST: _render(best),
            LeadsTable.DATE_POSTS_SCORED: today.isoformat(),
        }
    status = ScoringStatus.SKIPPED if isinstance(judgement, Rejection) else ScoringStatus.FAILED
    return {LeadsTable.POSTS_RELEVANCE_STATUS: status}


def run(ctx: TaskContext) -> TaskOutcome:
    """Judge the harvested posts of the client's leads that need it; see the module docstring."""
    outcome = TaskOutcome()
    pages = lead_pages(
        ctx, needs_post_scoring(), (LeadsTable.LINKEDIN_PROFILE_URL, LeadsTable.POSTS_JSON)
    )
    leads = nonempty(itertools.chain.from_iterable(pages))
    if leads is None:
        return outcome
    topics = client_text(ctx.client, ClientsTable.POST_TOPICS)
    today = dt.datetime.now(dt.UTC).date()

    def fields_for(lead: Lead, judgement: Judgement) -> Fields:
        posts = readable_posts(lead["fields"].get(LeadsTable.POSTS_JSON)) or []
        return post_scoring_fields(judgement, posts, today=today)

    with LeadWriter(ctx) as writer:
        prompts = _prompts(leads, topics, writer, outcome, today=today)
        judge_leads(ctx, prompts, writer, outcome, fields_for=fields_for)
    return outcome


def _prompts(
    leads: Iterable[Lead], topics: str, writer: LeadWriter, outcome: TaskOutcome, *, today: dt.date
) -> Iterator[tuple[Lead, Prompt]]:
    """Each lead's prompt; a lead with no readable post is counted and marked Failed instead."""
    for lead in leads:
        posts = readable_posts(lead["fields"].get(LeadsTable.POSTS_JSON))
        if posts is None:
            unreadable = Failure(UNREADABLE_POSTS, "no post with a text in Posts JSON")
            count(outcome, unreadable)
            writer.add(lead["id"], post_scoring_fields(unreadable, [], today=today))
            continue
        profile_url = str(lead["fields"].get(LeadsTable.LINKEDIN_PROFILE_URL, ""))
        texts = [_text(post) for post in posts]
        yield lead, post_scoring_prompt(topics, profile_url=profile_url, posts=texts)


def _text(post: Mapping[str, Any]) -> str:
    text = post.get("text")
    return text.strip() if isinstance(text, str) else ""


def _render(post: Mapping[str, Any]) -> str:
    url = post.get("url")
    return f"{url}\n\n{_text(post)}" if isinstance(url, str) and url else _text(post)
