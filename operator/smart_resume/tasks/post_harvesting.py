"""Post harvesting: fetch the recent LinkedIn posts of each lead whose posts are due, via Apify.

A lead's posts are due when it has a LinkedIn Profile URL and Last Post Check At is blank (never
checked) or more than ``RECHECK_AFTER_DAYS`` old. Every examined lead gets Last Post Check At, so
a rerun or resumed run does not ask again:

- harvested (also with no posts at all) -> Posts Harvest Status Done, Posts Harvested Count and
  Posts JSON (a JSON list of posts); when the set of post URLs changed, the post-scoring fields
  are cleared so that post scoring judges the new posts;
- a single profile whose actor run still times out (``run_timeout_seconds``) -> Failed (due again
  later).

A lead whose LinkedIn Profile URL cannot be parsed (e.g. ``https://www.linkedin.com]/in/x``) is
not sent to Apify: it is Failed and checked, counted under ``linkedin_url_invalid``. Actor items
that cannot be used (no URL, no text, not attributable to a requested profile) are counted in the
outcome's ``skipped`` under their ``apify_item_*`` reason: those counts are posts, not leads, and
show at once when an actor changes its output format.

Leads are read a page at a time; each page is split evenly into actor runs of at most
``BATCH_SIZE`` profiles, in a multiple of ``settings.apify.run_concurrency`` runs, and that many
runs are in flight at once (Apify's asynchronous API, see ``integrations.apify``). A run that
timed out is tried again as two runs of half its profiles. When the task is asked to stop, runs
still going are aborted and their leads left as they were; finished runs are written first. Other
errors are the task's: 401/403, an HTML page or another non-JSON answer (``PermanentError``), and
5xx after the shared retry policy (``TransientError``; a run start is never resent) fail the
task once the runs in flight have been written; their leads stay due.

This module deliberately does not score posts (post scoring does).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import math
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Final

from pyairtable.formulas import AND, IS_BEFORE, NOT, OR, Field, Formula

from smart_resume.core.errors import TransientError
from smart_resume.integrations.airtable_fields import HarvestStatus, LeadsTable
from smart_resume.integrations.apify import STATUS_RUN_TIMEOUT, Post, profile_key
from smart_resume.tasks.base import TaskContext, TaskOutcome
from smart_resume.tasks.leads import (
    Fields,
    Lead,
    LeadWriter,
    is_blank,
    lead_pages,
    map_bounded,
    nonempty,
)

if TYPE_CHECKING:
    from smart_resume.integrations.apify import ApifyClient

__all__ = [
    "BATCH_SIZE",
    "INVALID_PROFILE_URL",
    "POSTS_JSON_MAX_CHARS",
    "RECHECK_AFTER_DAYS",
    "harvest_failed_fields",
    "harvested_fields",
    "posts_due",
    "run",
    "run_sizes",
]

RECHECK_AFTER_DAYS: Final = 7
"""A lead's posts are fetched again after this many days: most leads post weekly or less, so a
shorter period mostly pays Apify for posts already stored."""
BATCH_SIZE: Final = 10
"""Most profiles per actor run: LinkedIn post actors take roughly 5-20 s per profile."""
POSTS_JSON_MAX_CHARS: Final = 100_000
"""Airtable's limit for a long text field; posts that do not fit are left out (the last first)."""
INVALID_PROFILE_URL: Final = "linkedin_url_invalid"


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


def run_sizes(leads: int, *, runs_at_once: int) -> list[int]:
    """How to split ``leads`` profiles into actor runs: at most ``BATCH_SIZE`` each, sizes within
    one of each other, and a multiple of ``runs_at_once`` runs where there are enough profiles,
    so that the last round of runs is as full as the first."""
    if leads < 1:
        return []
    runs = min(leads, math.ceil(math.ceil(leads / BATCH_SIZE) / runs_at_once) * runs_at_once)
    size, larger = divmod(leads, runs)
    return [size + 1] * larger + [size] * (runs - larger)


def run(ctx: TaskContext) -> TaskOutcome:
    """Harvest the posts of the client's leads whose posts are due; see the module docstring."""
    outcome = TaskOutcome()
    now = dt.datetime.now(dt.UTC)
    pages = lead_pages(
        ctx, posts_due(now), (LeadsTable.LINKEDIN_PROFILE_URL, LeadsTable.POSTS_JSON)
    )
    with LeadWriter(ctx) as writer:
        batches = nonempty(_batches(ctx, pages, writer, outcome, now=now))
        if batches is None:
            return outcome
        apify: ApifyClient = ctx.services.apify  # built here, not lazily on a pool thread

        def harvest(batch: Sequence[Lead]) -> _Harvested:
            return _harvest(apify, [_url(lead) for lead in batch], ctx.cancelled)

        results = map_bounded(
            harvest,
            batches,
            concurrency=ctx.settings.apify.run_concurrency,
            cancelled=ctx.cancelled,
        )
        with contextlib.closing(results):
            for batch, harvested in results:
                _write_batch(ctx, batch, harvested, writer, outcome, now=now)
    return outcome


def _batches(
    ctx: TaskContext,
    pages: Iterable[Sequence[Lead]],
    writer: LeadWriter,
    outcome: TaskOutcome,
    *,
    now: dt.datetime,
) -> Iterator[list[Lead]]:
    """The leads of each page in runs (``run_sizes``); a lead with an unusable profile URL is
    marked Failed under ``INVALID_PROFILE_URL`` instead."""
    for page in pages:
        usable = []
        for lead in page:
            if profile_key(_url(lead)) is None:
                ctx.logger.warning("lead %s has an invalid LinkedIn Profile URL", lead["id"])
                outcome.examined += 1
                outcome.skip(INVALID_PROFILE_URL)
                writer.add(lead["id"], harvest_failed_fields(now=now))
            else:
                usable.append(lead)
        sizes = run_sizes(len(usable), runs_at_once=ctx.settings.apify.run_concurrency)
        ends = list(itertools.accumulate(sizes))
        yield from (usable[end - size : end] for end, size in zip(ends, sizes, strict=True))


def _write_batch(
    ctx: TaskContext,
    leads: Sequence[Lead],
    result: _Harvested,
    writer: LeadWriter,
    outcome: TaskOutcome,
    *,
    now: dt.datetime,
) -> None:
    for reason, items in result.skipped_items.items():
        outcome.skip(reason, items)
    for lead in leads:
        url = _url(lead)
        if url in result.abandoned:
            continue
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
    abandoned: set[str] = dataclasses.field(default_factory=set)
    """Profiles whose run was aborted (or never started) because the task was asked to stop."""


def _harvest(
    apify: ApifyClient,
    urls: Sequence[str],
    cancelled: threading.Event,
    into: _Harvested | None = None,
) -> _Harvested:
    """One actor run for ``urls``; after a timeout, one run per half, down to single profiles.

    A single profile whose run still times out gets no entry in ``posts``.
    """
    into = _Harvested() if into is None else into
    try:
        harvest = apify.harvest_posts(urls, cancelled=cancelled)
    except TransientError as exc:
        if exc.status != STATUS_RUN_TIMEOUT:
            raise
        if len(urls) > 1:
            middle = len(urls) // 2
            _harvest(apify, urls[:middle], cancelled, into)
            _harvest(apify, urls[middle:], cancelled, into)
        return into
    if harvest is None:
        into.abandoned.update(urls)
        return into
    into.posts |= harvest.posts
    into.skipped_items.update(harvest.skipped)
    return into


def _url(lead: Lead) -> str:
    return str(lead["fields"][LeadsTable.LINKEDIN_PROFILE_URL])


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
