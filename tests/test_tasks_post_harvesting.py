"""Post harvesting: its pure decisions, and the task against the fakes over real HTTP."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from fakes.fake_airtable import parse_formula
from fakes.fake_apify import LOGIN_PAGE, RUN_FAILED, RUN_TIMEOUT
from fakes.server import Response
from smart_resume.core.errors import PermanentError, TransientError
from smart_resume.integrations.airtable_fields import LeadsTable
from smart_resume.tasks import post_harvesting
from smart_resume.tasks.base import TaskOutcome
from support.task_env import TaskEnv, lead, post, profile_url, task_env

pytestmark = pytest.mark.timeout(20)

S = LeadsTable
NOW = dt.datetime(2025, 3, 14, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def env() -> Iterator[TaskEnv]:
    with task_env() as env:
        yield env


def ago(days: float) -> str:
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def apify_runs(env: TaskEnv) -> list[list[str]]:
    """The profile URLs of each actor run, in order."""
    return [request.json()["urls"] for request in env.apify.requests]


# -- pure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "due"),
    [
        ({S.LINKEDIN_PROFILE_URL: "u"}, True),
        ({S.LINKEDIN_PROFILE_URL: "u", S.LAST_POST_CHECK_AT: "2025-03-01T00:00:00Z"}, True),
        ({S.LINKEDIN_PROFILE_URL: "u", S.LAST_POST_CHECK_AT: "2025-03-10T00:00:00Z"}, False),
        ({S.LAST_POST_CHECK_AT: "2025-03-01T00:00:00Z"}, False),
        ({}, False),
    ],
)
def test_posts_due__never_checked_or_older_than_the_recheck_period(
    fields: dict[str, Any], due: bool
) -> None:
    """A lead with a profile URL is due when never checked or checked over 7 days ago."""
    assert parse_formula(str(post_harvesting.posts_due(NOW))).matches(fields) is due


def test_harvested_fields__posts_count_and_check_time() -> None:
    """The posts are stored as a JSON list with their count, Done and the check time."""
    posts = [post(1, 1), post(1, 2)]

    fields = post_harvesting.harvested_fields(posts, previous_posts_json=None, now=NOW)

    assert fields[S.POSTS_HARVEST_STATUS] == "Done"
    assert fields[S.POSTS_HARVESTED_COUNT] == 2
    assert fields[S.LAST_POST_CHECK_AT] == "2025-03-14T12:00:00Z"
    assert json.loads(fields[S.POSTS_JSON]) == [dataclasses.asdict(p) for p in posts]


def test_harvested_fields__no_posts_is_still_a_check() -> None:
    """A lead without posts is Done with 0 posts and an empty list, so it is not asked again."""
    fields = post_harvesting.harvested_fields([], previous_posts_json=None, now=NOW)
    assert fields == {
        S.POSTS_HARVEST_STATUS: "Done",
        S.POSTS_HARVESTED_COUNT: 0,
        S.POSTS_JSON: "[]",
        S.LAST_POST_CHECK_AT: "2025-03-14T12:00:00Z",
    }


def test_harvested_fields__new_posts_clear_post_scoring() -> None:
    """When the post URLs change, the post-scoring fields are cleared; when not, kept."""
    before = post_harvesting.harvested_fields([post(1, 1)], previous_posts_json=None, now=NOW)
    same = post_harvesting.harvested_fields(
        [post(1, 1)], previous_posts_json=before[S.POSTS_JSON], now=NOW
    )
    changed = post_harvesting.harvested_fields(
        [post(1, 1), post(1, 2)], previous_posts_json=before[S.POSTS_JSON], now=NOW
    )
    scoring = (S.POSTS_RELEVANCE_STATUS, S.POSTS_RELEVANCE_SCORE, S.TOP_SCORING_POST)
    assert not any(name in same for name in scoring)
    assert all(changed[name] is None for name in (*scoring, S.DATE_POSTS_SCORED))


def test_harvested_fields__keeps_posts_json_within_airtable_limit() -> None:
    """Posts that would push Posts JSON over Airtable's long-text limit are left out."""
    long_posts = [dataclasses.replace(post(1, k), text="x" * 30_000) for k in range(1, 6)]

    fields = post_harvesting.harvested_fields(long_posts, previous_posts_json=None, now=NOW)

    assert len(fields[S.POSTS_JSON]) <= post_harvesting.POSTS_JSON_MAX_CHARS
    assert fields[S.POSTS_HARVESTED_COUNT] == 3
    assert [p["url"] for p in json.loads(fields[S.POSTS_JSON])] == [p.url for p in long_posts[:3]]


def test_harvest_failed_fields__failed_and_checked() -> None:
    """A lead whose posts could not be fetched is Failed and checked, so due again in 7 days."""
    assert post_harvesting.harvest_failed_fields(now=NOW) == {
        S.POSTS_HARVEST_STATUS: "Failed",
        S.LAST_POST_CHECK_AT: "2025-03-14T12:00:00Z",
    }


# -- against the fakes --------------------------------------------------------------------------


def test_post_harvesting__harvests_due_leads_only(env: TaskEnv) -> None:
    """Never-checked and stale leads are harvested (also without posts); fresh ones are kept."""
    env.add_leads(
        [
            lead(1),
            lead(2, **{S.LAST_POST_CHECK_AT: ago(10)}),
            lead(3),  # has no posts
            lead(4, **{S.LAST_POST_CHECK_AT: ago(1), S.POSTS_HARVEST_STATUS: "Done"}),
            {S.FIRST_NAME: "No URL"},
        ]
    )
    for n in (1, 2, 4):
        env.apify.set_posts(profile_url(n), [post(n, 1), post(n, 2), post(n, 3)])
    before = env.leads()

    outcome = post_harvesting.run(env.context())

    assert outcome == TaskOutcome(examined=3, succeeded=3)
    after = env.leads()
    for n, count in ((1, 3), (2, 3), (3, 0)):
        fields = after[profile_url(n)]
        assert fields[S.POSTS_HARVEST_STATUS] == "Done"
        assert fields[S.POSTS_HARVESTED_COUNT] == count
        assert fields[S.LAST_POST_CHECK_AT] > ago(0.01)
        stored = json.loads(fields[S.POSTS_JSON])
        assert [p["url"] for p in stored] == [post(n, k).url for k in range(1, count + 1)]
    assert after[profile_url(4)] == before[profile_url(4)]
    assert apify_runs(env) == [[profile_url(n) for n in (1, 2, 3)]]
    assert "token" not in dict(env.apify.requests[0].query)


def test_post_harvesting__runs_the_actor_in_batches(env: TaskEnv) -> None:
    """23 due leads take three actor runs (10, 10, 3 profiles) and three writes."""
    env.add_leads([lead(n) for n in range(1, 24)])

    outcome = post_harvesting.run(env.context())

    assert outcome.succeeded == 23
    assert [len(urls) for urls in apify_runs(env)] == [10, 10, 3]
    assert [len(w.json()["records"]) for w in env.lead_writes()] == [10, 10, 3]


def test_post_harvesting__run_timeout_halves_the_batch(env: TaskEnv) -> None:
    """A 408 (the run outlived Apify's wait) is retried as two smaller runs."""
    env.add_leads([lead(n) for n in range(1, 5)])
    env.apify.set_posts(profile_url(4), [post(4, 1)])
    env.apify.fail_next(RUN_TIMEOUT)

    outcome = post_harvesting.run(env.context())

    assert outcome == TaskOutcome(examined=4, succeeded=4)
    assert [len(urls) for urls in apify_runs(env)] == [4, 2, 2]
    assert env.leads()[profile_url(4)][S.POSTS_HARVESTED_COUNT] == 1


def test_post_harvesting__single_profile_timeout_fails_that_lead(env: TaskEnv) -> None:
    """A profile that times out even alone is Failed and checked; the other lead is harvested."""
    env.add_leads([lead(1), lead(2)])
    env.apify.fail_next(RUN_TIMEOUT, times=2)  # both together, then lead 1 alone

    outcome = post_harvesting.run(env.context())

    assert outcome == TaskOutcome(examined=2, succeeded=1, failed=1)
    failed, done = env.leads()[profile_url(1)], env.leads()[profile_url(2)]
    assert failed[S.POSTS_HARVEST_STATUS] == "Failed" and failed[S.LAST_POST_CHECK_AT]
    assert done[S.POSTS_HARVEST_STATUS] == "Done"


def test_post_harvesting__html_page_fails_the_task(env: TaskEnv) -> None:
    """An HTML page instead of items fails the task naming status and a snippet; nothing written."""
    env.add_leads([lead(1)])
    env.apify.fail_next(LOGIN_PAGE)

    with pytest.raises(PermanentError, match=r"HTTP 200 with text/html.*Log in to Apify"):
        post_harvesting.run(env.context())

    assert env.lead_writes() == []


@pytest.mark.parametrize("status", [401, 403])
def test_post_harvesting__auth_error_is_not_retried(env: TaskEnv, status: int) -> None:
    """401/403 fail the task after one request."""
    env.add_leads([lead(1)])
    body = {"error": {"type": "token-not-valid", "message": "Authentication token is not valid."}}
    env.apify.fail_next(Response.json(body, status), times=5)

    with pytest.raises(PermanentError, match=f"HTTP {status}.*token-not-valid"):
        post_harvesting.run(env.context())

    assert env.apify.total_requests == 1
    assert env.lead_writes() == []


def test_post_harvesting__failed_actor_run_fails_the_task(env: TaskEnv) -> None:
    """A run that did not succeed (400 run-failed) fails the task with Apify's message."""
    env.add_leads([lead(1)])
    env.apify.fail_next(RUN_FAILED)

    with pytest.raises(PermanentError, match="HTTP 400.*run-failed"):
        post_harvesting.run(env.context())


def test_post_harvesting__5xx_to_the_actor_run_is_not_resent(env: TaskEnv) -> None:
    """A 503 to the run-sync POST is not resent (the actor run may have started and been
    billed): the task fails after one request and the lead stays due."""
    env.add_leads([lead(1)])
    env.apify.fail_next(Response.json({"error": {"type": "server-error"}}, 503), times=2)

    with pytest.raises(TransientError, match="HTTP 503"):
        post_harvesting.run(env.context())
    assert env.apify.total_requests == 1


def test_post_harvesting__rate_limit_is_retried(env: TaskEnv) -> None:
    """A 429 from Apify is resent and the harvest succeeds."""
    env.add_leads([lead(1)])
    env.apify.fail_next(Response.json({"error": {"type": "rate-limit-exceeded"}}, 429))

    assert post_harvesting.run(env.context()).succeeded == 1
    assert env.apify.total_requests == 2


def test_post_harvesting__persistent_5xx_fails_the_task(env: TaskEnv) -> None:
    """A 5xx fails the task after one request; the lead stays due."""
    env.add_leads([lead(1)])
    env.apify.fail_next(Response.json({"error": {"type": "server-error"}}, 502), times=10)

    with pytest.raises(TransientError, match="HTTP 502"):
        post_harvesting.run(env.context())

    assert env.apify.total_requests == 1
    assert S.LAST_POST_CHECK_AT not in env.leads()[profile_url(1)]


def test_post_harvesting__rerun_does_no_work_twice(env: TaskEnv) -> None:
    """A second run calls Apify for nothing and writes nothing."""
    env.add_leads([lead(n) for n in range(1, 13)])
    env.apify.set_posts(profile_url(1), [post(1, 1)])
    post_harvesting.run(env.context())
    runs, writes = env.apify.total_requests, len(env.lead_writes())

    assert post_harvesting.run(env.context()) == TaskOutcome()
    assert (env.apify.total_requests, len(env.lead_writes())) == (runs, writes) == (2, 2)


def test_post_harvesting__dry_run_writes_nothing(env: TaskEnv) -> None:
    """A dry run runs the actor and counts, and writes nothing to the client's base."""
    env.add_leads([lead(1), lead(2)])
    env.apify.set_posts(profile_url(1), [post(1, 1)])

    assert post_harvesting.run(env.context(dry_run=True)).succeeded == 2
    assert env.apify.total_requests == 1
    assert env.lead_writes() == []


def test_post_harvesting__cancelled_task_runs_nothing(env: TaskEnv) -> None:
    """A task whose client was already cancelled starts no actor run."""
    env.add_leads([lead(1)])
    ctx = env.context()
    ctx.cancelled.set()

    assert post_harvesting.run(ctx) == TaskOutcome()
    assert env.apify.total_requests == 0
