"""Post scoring: its pure decisions, and the task against the fakes over real HTTP."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from fakes.fake_ai import Answer, default_score
from fakes.fake_airtable import parse_formula
from fakes.server import Response
from smart_resume.core.errors import ConfigurationError, PermanentError
from smart_resume.integrations.airtable_fields import ClientsTable, LeadsTable, ScoringStatus
from smart_resume.integrations.apify import Post
from smart_resume.integrations.verdicts import Reason, Rejection, Verdict
from smart_resume.tasks import post_harvesting, post_scoring
from smart_resume.tasks.base import TaskOutcome
from smart_resume.tasks.leads import Failure
from support.task_env import (
    AI_ANSWERS,
    TOPICS,
    TaskEnv,
    lead,
    post,
    profile_url,
    task_env,
)

pytestmark = pytest.mark.timeout(20)

S = LeadsTable
TODAY = dt.date(2025, 3, 14)
POSTS = [
    {"url": "https://li/p/1", "text": "About hiring"},
    {"url": "https://li/p/2", "text": "Golf"},
]


@pytest.fixture
def env() -> Iterator[TaskEnv]:
    with task_env() as env:
        yield env


def harvested(n: int, posts: list[Post], **fields: Any) -> dict[str, Any]:
    """Lead ``n`` as post harvesting leaves it, with these fields changed."""
    now = dt.datetime.now(dt.UTC)
    done = post_harvesting.harvested_fields(posts, previous_posts_json=None, now=now)
    return lead(n, **{S.SCORING_STATUS: "Scored", **done, **fields})


def three_posts(n: int) -> list[Post]:
    return [post(n, k) for k in (1, 2, 3)]


# -- pure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "selected"),
    [
        ({S.POSTS_HARVEST_STATUS: "Done", S.POSTS_HARVESTED_COUNT: 3}, True),
        ({S.POSTS_HARVEST_STATUS: "Done", S.POSTS_HARVESTED_COUNT: 0}, False),
        ({S.POSTS_HARVEST_STATUS: "Failed", S.POSTS_HARVESTED_COUNT: 3}, False),
        ({S.POSTS_HARVESTED_COUNT: 3}, False),
        (
            {
                S.POSTS_HARVEST_STATUS: "Done",
                S.POSTS_HARVESTED_COUNT: 3,
                S.POSTS_RELEVANCE_STATUS: "Scored",
            },
            False,
        ),
        (
            {
                S.POSTS_HARVEST_STATUS: "Done",
                S.POSTS_HARVESTED_COUNT: 3,
                S.POSTS_RELEVANCE_STATUS: "Skipped",
            },
            False,
        ),
    ],
)
def test_needs_post_scoring__harvested_posts_not_yet_judged(
    fields: dict[str, Any], selected: bool
) -> None:
    """Leads with harvested posts and a blank Posts Relevance Status are selected."""
    assert parse_formula(str(post_scoring.needs_post_scoring())).matches(fields) is selected


@pytest.mark.parametrize(
    ("value", "posts"),
    [
        (json.dumps(POSTS), POSTS),
        (json.dumps([{"url": "u"}, *POSTS, "junk", {"text": "  "}]), POSTS),
        ("[]", None),
        ("{not json", None),
        ('{"url": "u", "text": "t"}', None),
        (None, None),
    ],
)
def test_readable_posts__keeps_posts_with_text(value: object, posts: object) -> None:
    """Only posts with a text count; unreadable JSON or no such post gives None."""
    assert post_scoring.readable_posts(value) == posts


def test_post_scoring_fields__verdict_names_the_best_post() -> None:
    """A verdict writes Scored, the score, the chosen post (URL and text) and the date."""
    verdict = Verdict(score=81, assessment="On topic.", extras={"best_post_index": 1})

    fields = post_scoring.post_scoring_fields(verdict, POSTS, today=TODAY)

    assert fields == {
        S.POSTS_RELEVANCE_STATUS: "Scored",
        S.POSTS_RELEVANCE_SCORE: 81,
        S.TOP_SCORING_POST: "https://li/p/1\n\nAbout hiring",
        S.DATE_POSTS_SCORED: "2025-03-14",
    }


def test_post_scoring_fields__rejection_and_failure() -> None:
    """An unusable answer is Skipped, no answer (or unreadable posts) is Failed."""
    skipped = post_scoring.post_scoring_fields(Rejection(Reason.AI_REFUSAL, ""), POSTS, today=TODAY)
    failed = post_scoring.post_scoring_fields(Failure("ai_no_answer", ""), POSTS, today=TODAY)
    assert skipped == {S.POSTS_RELEVANCE_STATUS: "Skipped"}
    assert failed == {S.POSTS_RELEVANCE_STATUS: "Failed"}


# -- against the fakes --------------------------------------------------------------------------


def test_post_scoring__scores_harvested_posts_only(env: TaskEnv) -> None:
    """Leads with posts get score, best post and date; no posts, failed or scored ones are kept."""
    env.add_leads(
        [
            harvested(1, three_posts(1)),
            harvested(2, [post(2, 1), post(2, 2)]),
            harvested(3, []),
            lead(4, **{S.POSTS_HARVEST_STATUS: "Failed"}),
            harvested(5, three_posts(5), **{S.POSTS_RELEVANCE_STATUS: "Scored"}),
        ]
    )
    before = env.leads()

    outcome = post_scoring.run(env.context())

    assert outcome == TaskOutcome(examined=2, succeeded=2)
    after = env.leads()
    for n, posts in ((1, three_posts(1)), (2, [post(2, 1), post(2, 2)])):
        score = default_score(profile_url(n))
        best = posts[score % len(posts)]  # FakeAI's choice: index score % N + 1
        fields = after[profile_url(n)]
        assert fields[S.POSTS_RELEVANCE_STATUS] == "Scored"
        assert fields[S.POSTS_RELEVANCE_SCORE] == score
        assert fields[S.TOP_SCORING_POST] == f"{best.url}\n\n{best.text}"
        assert fields[S.DATE_POSTS_SCORED] == dt.datetime.now(dt.UTC).date().isoformat()
    assert all(after[profile_url(n)] == before[profile_url(n)] for n in (3, 4, 5))
    assert env.ai.total_requests == 2


def test_post_scoring__prompt_holds_topics_and_numbered_posts(env: TaskEnv) -> None:
    """The AI gets the client's topics, the lead's URL and its posts' texts, numbered from 1."""
    env.add_leads([harvested(1, three_posts(1))])

    post_scoring.run(env.context())

    [request] = env.ai.requests
    user = json.loads(request.json()["messages"][1]["content"])
    assert user["topics"] == TOPICS
    assert user["lead_profile_url"] == profile_url(1)
    assert user["posts"] == [{"index": k, "text": post(1, k).text} for k in (1, 2, 3)]


@pytest.mark.parametrize(("answer", "status", "reason"), AI_ANSWERS, ids=lambda v: str(v))
def test_post_scoring__each_kind_of_ai_answer(
    env: TaskEnv, answer: Answer, status: ScoringStatus, reason: str
) -> None:
    """One lead gets this answer: it ends in `status`; the other leads are scored."""
    env.add_leads([harvested(n, three_posts(n)) for n in range(1, 5)])
    env.ai.script(profile_url(2), answer)

    outcome = post_scoring.run(env.context())

    after = env.leads()
    assert after[profile_url(2)][S.POSTS_RELEVANCE_STATUS] == status
    assert [after[profile_url(n)][S.POSTS_RELEVANCE_STATUS] for n in (1, 3, 4)] == ["Scored"] * 3
    expected = TaskOutcome(examined=4, succeeded=3 + (status == "Scored"))
    if status == "Skipped":
        expected.skip(reason)
    expected.failed = int(status == "Failed")
    assert outcome == expected


def test_post_scoring__ai_outage_leaves_the_posts_to_be_judged(env: TaskEnv) -> None:
    """No answer (a 500, never resent: the completion is billable) is not a verdict: the lead's
    posts stay to be judged, and the next attempt judges them."""
    env.add_leads([harvested(n, three_posts(n)) for n in (1, 2)])
    before = env.leads()[profile_url(1)]
    down = Response.json({"error": {"message": "The server had an error"}}, 500)
    env.ai.fail_next(down)  # the first lead's one request

    outcome = post_scoring.run(env.context(concurrency=1))

    assert outcome == TaskOutcome(examined=2, succeeded=1, failed=1)
    assert env.leads()[profile_url(1)] == before
    assert post_scoring.run(env.context()) == TaskOutcome(examined=1, succeeded=1)
    assert env.leads()[profile_url(1)][S.POSTS_RELEVANCE_STATUS] == "Scored"


def test_post_scoring__out_of_range_post_index_is_skipped(env: TaskEnv) -> None:
    """A best_post_index beyond the posts sent is a rejection, never an IndexError."""
    env.add_leads([harvested(1, three_posts(1))])
    answer = {"best_post_index": 4, "score": 50, "assessment": "?"}
    completion = {
        "choices": [{"finish_reason": "stop", "message": {"content": json.dumps(answer)}}]
    }
    env.ai.fail_next(Response.json(completion))

    outcome = post_scoring.run(env.context())

    assert outcome.skipped == {Reason.AI_BAD_SHAPE: 1}
    assert env.leads()[profile_url(1)][S.POSTS_RELEVANCE_STATUS] == "Skipped"


def test_post_scoring__unreadable_posts_fail_without_an_ai_call(env: TaskEnv) -> None:
    """A lead whose Posts JSON cannot be read is Failed; the AI is asked about the others only."""
    env.add_leads(
        [
            harvested(1, three_posts(1), **{S.POSTS_JSON: "{broken"}),
            harvested(2, three_posts(2)),
        ]
    )

    outcome = post_scoring.run(env.context())

    assert outcome == TaskOutcome(examined=2, succeeded=1, failed=1)
    assert env.leads()[profile_url(1)][S.POSTS_RELEVANCE_STATUS] == "Failed"
    assert env.ai.total_requests == 1


def test_post_scoring__html_page_fails_the_task(env: TaskEnv) -> None:
    """An HTML page from the AI endpoint fails the task with the status and a snippet."""
    env.add_leads([harvested(1, three_posts(1))])
    env.ai.script("", Answer.HTML)

    with pytest.raises(PermanentError, match=r"HTTP 200 with text/html.*Please sign in"):
        post_scoring.run(env.context())


def test_post_scoring__rerun_does_no_work_twice(env: TaskEnv) -> None:
    """A second run asks the AI nothing and writes nothing."""
    env.add_leads([harvested(n, three_posts(n)) for n in range(1, 13)])
    env.ai.script(profile_url(5), Answer.TRUNCATED)
    post_scoring.run(env.context())
    ai_calls, writes = env.ai.total_requests, len(env.lead_writes())

    assert post_scoring.run(env.context()) == TaskOutcome()
    assert (env.ai.total_requests, len(env.lead_writes())) == (ai_calls, writes) == (12, 2)


def test_post_scoring__new_harvest_is_judged_again(env: TaskEnv) -> None:
    """When harvesting finds new posts for a judged lead, post scoring judges it again."""
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=post_harvesting.RECHECK_AFTER_DAYS + 1)
    env.add_leads([harvested(1, [post(1, 1)], **{S.LAST_POST_CHECK_AT: old.isoformat()})])
    post_scoring.run(env.context())
    env.apify.set_posts(profile_url(1), [post(1, 1), post(1, 2)])

    post_harvesting.run(env.context())
    assert S.POSTS_RELEVANCE_STATUS not in env.leads()[profile_url(1)]
    assert post_scoring.run(env.context()).succeeded == 1
    assert env.ai.total_requests == 2


def test_post_scoring__dry_run_writes_nothing(env: TaskEnv) -> None:
    """A dry run judges and counts, and sends no write to the client's base."""
    env.add_leads([harvested(n, three_posts(n)) for n in range(1, 4)])

    assert post_scoring.run(env.context(dry_run=True)).succeeded == 3
    assert env.lead_writes() == []


def test_post_scoring__concurrency_is_bounded(env: TaskEnv) -> None:
    """AI calls overlap, but never more than `settings.ai.concurrency` at once."""
    env.add_leads([harvested(n, three_posts(n)) for n in range(1, 11)])
    env.ai.latency_seconds = 0.05

    post_scoring.run(env.context(concurrency=2))

    assert env.ai.max_in_flight == 2


def test_post_scoring__missing_topics_fails_the_task(env: TaskEnv) -> None:
    """No Post Topics with posts to judge is a configuration error; nothing is asked."""
    env.add_leads([harvested(1, three_posts(1))])

    with pytest.raises(ConfigurationError, match="Post Topics"):
        post_scoring.run(env.context(client_fields={ClientsTable.POST_TOPICS: " "}))
    assert env.ai.total_requests == 0


def test_post_scoring__posts_keep_their_text_exactly(env: TaskEnv) -> None:
    """Quotes, apostrophes and non-ASCII text survive the round trip into Top Scoring Post."""
    tricky = dataclasses.replace(post(1, 1), text='O\'Brien said "hire" — naïve \\ 🚀')
    env.add_leads([harvested(1, [tricky])])

    post_scoring.run(env.context())

    assert env.leads()[profile_url(1)][S.TOP_SCORING_POST].endswith(tricky.text)
