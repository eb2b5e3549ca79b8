"""Post harvesting: fetch the recent LinkedIn posts of each lead whose posts are due, via Apify.

A lead's posts are due when it has a LinkedIn Profile URL and Last Post Check At is blank (never
checked) or more than ``RECHECK_AFTER_DAYS`` old. Every examined lead gets Last Post Check At, so
a rerun or resumed run does not ask again:

- harvested (also with no posts at all) -> Posts Harvest Status Done, Posts Harvested Count and
  Posts JSON (a JSON list of posts); when the set of post URLs changed, the post-scoring fields
  are cleared so that post scoring judges the new posts;
- a single profile whose actor run still outlives Apify's 300 s wait -> Failed (due again later).

Actor items that cannot be used (no URL, no text, not attributable to a requested profile) are
counted in the outcome's ``skipped`` under their ``apify_item_*`` reason: those counts are posts,
not leads, and show at once when an actor changes its output format.

Profiles go to Apify ``BATCH_SIZE`` at a time, which keeps one synchronous run well inside the
300 s wait; a 408 (the run took longer) halves the batch and tries again. Other errors are the
task's: 401/403, an HTML page or another non-JSON answer (``PermanentError``) and 5xx after the
shared retry policy (``TransientError``) fail the task; leads written so far stay written.

This module deliberately does not score posts (post scoring does) and does not fall back to
Apify's asynchronous run API.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from pyairtable.formulas import AND, IS_BEFORE, NOT, OR, Field, Formula

from smart_resume.core.errors import TransientError
from smart_resume.integrations.airtable_fields import HarvestStatus, LeadsTable
from smart_resume.integrations.apify import Post
from smart_resume.tasks.base import TaskContext, TaskOutcome
from smart_resume.tasks.leads import Fields, Lead, LeadWriter, is_blank, select_leads

if TYPE_CHECKING:
    from smart_resume.integrations.apify import ApifyClient

__all__ = [
    "BATCH_SIZE",
    "POSTS_JSON_MAX_CHARS",
    "RECHECK_AFTER_DAYS",
    "harvest_failed_fields",
    "harvested_fields",
    "posts_due",
    "run",
]

RECHECK_AFTER_DAYS: Final = 7
"""A lead's posts are fetched again after this many days: most leads post weekly or less, so a
shorter period mostly pays Apify for posts already stored."""
BATCH_SIZE: Final = 10
"""Profiles per actor run: LinkedIn post actors take roughly 5-20 s per profile."""
POSTS_JSON_MAX_CHARS: Final = 100_000
"""Airtable's limit for a long text field; posts that do not fit are left out (the last first)."""
STATUS_RUN_TIMEOUT: Final = 408


def posts_due(now: dt.datetime) -> Formula:
    """The leads whose posts are due at ``now`` (see the module docstring)."""
    cutoff = now - dt.timedelta(days=RECHECK_AFTER_DAYS)
    last_check = LeadsTable.LAST_POST_CHECK_AT
    return AND(
        NOT(is_blank(LeadsTable.LINKEDIN_PROFILE_URL)),
        OR(is_blank(last_check), IS_BEFORE(Field(last_check), cutoff)),
    )


def harvested_fields(
    posts: Sequence[Post], *, previous_posts_json: str | None, now: dt.datetime
) -> Fields:
    """The Leads fields to write once a lead's posts are fetched (``posts`` may be empty)."""
    kept = _fitting(posts)
    fields: Fields = {
        LeadsTable.POSTS_HARVEST_STATUS: HarvestStatus.DONE,
        LeadsTable.POSTS_HARVESTED_COUNT: len(kept),
        LeadsTable.POSTS_JSON: _posts_json(kept),
        LeadsTable.LAST_POST_CHECK_AT: _timestamp(now),
    }
    if {post.url for post in kept} != _post_urls(previous_posts_json):
        fields |= {
            LeadsTable.POSTS_RELEVANCE_STATUS: None,
            LeadsTable.POSTS_RELEVANCE_SCORE: None,
            LeadsTable.TOP_SCORING_POST: None,
            LeadsTable.DATE_POSTS_SCORED: None,
        }
    return fields


def harvest_failed_fields(*, now: dt.datetime) -> Fields:
    """The Leads fields for a lead whose posts could not be fetched this time."""
    return {
        LeadsTable.POSTS_HARVEST_STATUS: HarvestStatus.FAILED,
        LeadsTable.LAST_POST_CHECK_AT: _timestamp(now),
    }


def run(ctx: TaskContext) -> TaskOutcome:
    """Harvest the posts of the client's leads whose posts are due; see the module docstring."""
    outcome = TaskOutcome()
    now = dt.datetime.now(dt.UTC)
    leads = select_leads(
        ctx, posts_due(now), (LeadsTable.LINKEDIN_PROFILE_URL, LeadsTable.POSTS_JSON)
    )
    if not leads:
        return outcome
    with LeadWriter(ctx) as writer:
        for start in range(0, len(leads), BATCH_SIZE):
            if ctx.cancelled.is_set():
                break
            _harvest_batch(ctx, leads[start : start + BATCH_SIZE], writer, outcome, now=now)
    return outcome


def _harvest_batch(
    ctx: TaskContext,
    leads: Sequence[Lead],
    writer: LeadWriter,
    outcome: TaskOutcome,
    *,
    now: dt.datetime,
) -> None:
    urls = [str(lead["fields"][LeadsTable.LINKEDIN_PROFILE_URL]) for lead in leads]
    result = _harvest(ctx.services.apify, urls)
    for reason, items in result.skipped_items.items():
        outcome.skip(reason, items)
    for lead, url in zip(leads, urls, strict=True):
        outcome.examined += 1
        posts = result.posts.get(url)
        if posts is None:
            ctx.logger.warning("Apify run timed out even for the single profile %s", url)
            outcome.failed += 1
            writer.add(lead["id"], harvest_failed_fields(now=now))
            continue
        outcome.succeeded += 1
        previous = lead["fields"].get(LeadsTable.POSTS_JSON)
        writer.add(lead["id"], harvested_fields(posts, previous_posts_json=previous, now=now))


@dataclasses.dataclass
class _Harvested:
    posts: dict[str, list[Post]] = dataclasses.field(default_factory=dict)
    """Per profile URL; a profile whose run timed out even alone has no entry."""
    skipped_items: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """Actor items that could not be used, by reason (``apify_item_*``)."""


def _harvest(apify: ApifyClient, urls: Sequence[str], into: _Harvested | None = None) -> _Harvested:
    """One actor run for ``urls``; after a 408, one run per half, down to single profiles.

    A single profile whose run still times out gets no entry in ``posts``.
    """
    into = _Harvested() if into is None else into
    try:
        harvest = apify.harvest_posts(urls)
    except TransientError as exc:
        if exc.status != STATUS_RUN_TIMEOUT:
            raise
        if len(urls) > 1:
            middle = len(urls) // 2
            _harvest(apify, urls[:middle], into)
            _harvest(apify, urls[middle:], into)
        return into
    into.posts |= harvest.posts
    into.skipped_items.update(harvest.skipped)
    return into


def _fitting(posts: Sequence[Post]) -> list[Post]:
    kept = list(posts)
    while kept and len(_posts_json(kept)) > POSTS_JSON_MAX_CHARS:
        kept.pop()
    return kept


def _posts_json(posts: Sequence[Post]) -> str:
    return json.dumps([dataclasses.asdict(post) for post in posts], ensure_ascii=False)


def _post_urls(posts_json: str | None) -> set[str]:
    """The post URLs in a Posts JSON value; an unreadable value counts as no posts."""
    try:
        posts = json.loads(posts_json or "[]")
    except ValueError:
        return set()
    if not isinstance(posts, list):
        return set()
    return {str(post["url"]) for post in posts if isinstance(post, dict) and "url" in post}


def _timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
