"""ApifyClient against FakeApify over real HTTP on 127.0.0.1; collect_posts on raw actor items."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from urllib3.util.retry import Retry

from fakes.fake_apify import (
    DEFAULT_ACTOR,
    DEFAULT_TOKEN,
    LOGIN_PAGE,
    RUN_FAILED,
    RUN_TIMEOUT,
    FakeApify,
)
from fakes.server import Response
from smart_resume.config import ApifySettings, Secret
from smart_resume.core.errors import (
    ConfigurationError,
    IntegrationError,
    PermanentError,
    TransientError,
)
from smart_resume.integrations.apify import ApifyClient, Harvest, Post, collect_posts
from smart_resume.integrations.http import build_session, retry_policy

pytestmark = pytest.mark.timeout(10)

JANE = "https://www.linkedin.com/in/jane-doe"
JOHN = "https://www.linkedin.com/in/john-roe"
RETRIES = 3
FAST_RETRY: Retry = retry_policy(total=RETRIES, backoff_factor=0)


def post(author: str, n: int, **changes: Any) -> Post:
    slug = author.rsplit("/", 1)[-1]
    made = Post(
        url=f"https://www.linkedin.com/posts/{slug}_activity-{n}",
        text=f"Post {n} about hiring",
        posted_at=f"2025-01-0{n}T09:30:00+00:00",
        author_profile_url=author,
        reactions=10 * n,
        comments=n,
    )
    return dataclasses.replace(made, **changes)


@pytest.fixture
def fake() -> Iterator[FakeApify]:
    service = FakeApify()
    service.start()
    yield service
    service.stop()


def make_client(
    fake: FakeApify,
    *,
    token: str = DEFAULT_TOKEN,
    actor_id: str = DEFAULT_ACTOR,
    timeout_seconds: float = 2.0,
) -> ApifyClient:
    settings = ApifySettings(
        token=Secret(token),
        base_url=fake.url,
        actor_id=actor_id,
        max_posts_per_lead=5,
        timeout_seconds=timeout_seconds,
    )
    return ApifyClient(settings, session=build_session(FAST_RETRY))


def raised(call: Callable[[], object]) -> IntegrationError:
    with pytest.raises(IntegrationError) as caught:
        call()
    return caught.value


# -- the client over HTTP -----------------------------------------------------------------------


def test_apify_client__maps_every_item_shape_back_to_the_posts_set(fake: FakeApify) -> None:
    """Posts rendered in all three key shapes come back as the same Post values, per profile."""
    jane_posts = [post(JANE, n) for n in (1, 2, 3)]
    john_posts = [post(JOHN, n) for n in (4, 5)]
    fake.set_posts(JANE, jane_posts)
    fake.set_posts(JOHN, john_posts)

    harvest = make_client(fake).harvest_posts([JANE, JOHN], max_posts=5)

    assert harvest == Harvest(posts={JANE: jane_posts, JOHN: john_posts}, skipped={})


def test_apify_client__sends_the_run_input_with_the_token_only_in_the_header(
    fake: FakeApify,
) -> None:
    """The input is {"urls", "maxPosts"}, maxItems caps the run, the token is a bearer header."""
    make_client(fake).harvest_posts([JANE, JOHN], max_posts=3)

    [request] = fake.requests
    assert request.path == f"/v2/acts/{DEFAULT_ACTOR}/run-sync-get-dataset-items"
    assert request.query == [("maxItems", "6")]
    assert request.json() == {"urls": [JANE, JOHN], "maxPosts": 3}
    assert request.headers["authorization"] == f"Bearer {DEFAULT_TOKEN}"
    assert DEFAULT_TOKEN not in request.path + json.dumps(request.query) + request.body.decode()


def test_apify_client__default_max_posts_comes_from_settings(fake: FakeApify) -> None:
    """Without max_posts the settings' per-lead limit is asked for and applied."""
    fake.set_posts(JANE, [post(JANE, n) for n in range(1, 8)])

    harvest = make_client(fake).harvest_posts([JANE])

    assert fake.requests[0].json()["maxPosts"] == 5
    assert len(harvest.posts[JANE]) == 5


def test_apify_client__slash_actor_id_is_sent_in_tilde_form(fake: FakeApify) -> None:
    """An actor configured as user/name is addressed as user~name, one path segment."""
    fake.set_posts(JANE, [post(JANE, 1)])

    harvest = make_client(fake, actor_id=DEFAULT_ACTOR.replace("~", "/")).harvest_posts([JANE])

    assert fake.requests[0].path == f"/v2/acts/{DEFAULT_ACTOR}/run-sync-get-dataset-items"
    assert harvest.posts[JANE] == [post(JANE, 1)]


def test_apify_client__actor_id_is_url_quoted() -> None:
    """Characters that would change the path are percent-encoded in the actor segment."""
    fake = FakeApify(actor_id="odd user~posts?x=1")
    fake.start()
    try:
        make_client(fake, actor_id="odd user~posts?x=1").harvest_posts([JANE])
    finally:
        fake.stop()

    assert fake.requests[0].path == "/v2/acts/odd%20user~posts%3Fx%3D1/run-sync-get-dataset-items"


def test_apify_client__no_profiles_makes_no_request(fake: FakeApify) -> None:
    """An empty profile list returns an empty harvest without starting an actor run."""
    assert make_client(fake).harvest_posts([]) == Harvest(posts={}, skipped={})
    assert fake.total_requests == 0


def test_apify_client__max_posts_below_one_is_a_value_error(fake: FakeApify) -> None:
    """Asking for zero posts is a programming error, caught before an actor run is started."""
    with pytest.raises(ValueError, match="at least 1"):
        make_client(fake).harvest_posts([JANE], max_posts=0)

    assert fake.total_requests == 0


def test_apify_client__dedupes_and_counts_unusable_items(fake: FakeApify) -> None:
    """A repeated post is kept once; items without URL or text are dropped and counted."""
    no_url, no_text = post(JANE, 2, url=""), post(JANE, 3, text="  ")
    fake.set_posts(JANE, [post(JANE, 1), post(JANE, 1), no_url, no_text])

    harvest = make_client(fake).harvest_posts([JANE])

    assert harvest.posts == {JANE: [post(JANE, 1)]}
    assert harvest.skipped == {"apify_item_no_url": 1, "apify_item_no_text": 1}


def test_apify_client__html_login_page_is_permanent_with_status_and_snippet(
    fake: FakeApify,
) -> None:
    """An HTML page instead of items is a PermanentError naming the status and quoting the page."""
    fake.fail_next(LOGIN_PAGE)

    error = raised(lambda: make_client(fake).harvest_posts([JANE]))

    assert isinstance(error, PermanentError)
    assert (error.service, error.status) == ("apify", 200)
    assert "HTTP 200" in str(error)
    assert "text/html" in str(error)
    assert "Log in to Apify" in str(error)
    assert "Expecting value" not in str(error)


def test_apify_client__wrong_token_is_permanent_and_not_retried(fake: FakeApify) -> None:
    """A 401 is a PermanentError after exactly one request, and the token is not in the message."""
    wrong = "apify_api_WRONG987654321"

    error = raised(lambda: make_client(fake, token=wrong).harvest_posts([JANE]))

    assert isinstance(error, PermanentError)
    assert error.status == 401
    assert "token-not-valid" in str(error)
    assert fake.total_requests == 1
    assert wrong not in str(error)
    assert DEFAULT_TOKEN not in str(error)


def test_apify_client__403_is_permanent_and_not_retried(fake: FakeApify) -> None:
    """A 403 is a PermanentError after one request."""
    forbidden = {"error": {"type": "insufficient-permissions", "message": "no"}}
    fake.fail_next(Response.json(forbidden, 403))

    error = raised(lambda: make_client(fake).harvest_posts([JANE]))

    assert isinstance(error, PermanentError)
    assert error.status == 403
    assert fake.total_requests == 1


def test_apify_client__run_timeout_408_is_transient_and_not_resent(fake: FakeApify) -> None:
    """Apify's 408 run-timeout is a TransientError; the run goes on at Apify, so no resend."""
    fake.fail_next(RUN_TIMEOUT)

    error = raised(lambda: make_client(fake).harvest_posts([JANE]))

    assert isinstance(error, TransientError)
    assert error.status == 408
    assert "run-timeout-exceeded" in str(error)
    assert fake.total_requests == 1


def test_apify_client__failed_run_is_permanent(fake: FakeApify) -> None:
    """A 400 run-failed is a PermanentError quoting Apify's message."""
    fake.fail_next(RUN_FAILED)

    error = raised(lambda: make_client(fake).harvest_posts([JANE]))

    assert isinstance(error, PermanentError)
    assert error.status == 400
    assert "run-failed" in str(error)


def test_apify_client__5xx_to_the_run_is_not_resent(fake: FakeApify) -> None:
    """A 503 to the run-sync POST is not resent by the shared policy: the run may have started
    and been billed."""
    fake.set_posts(JANE, [post(JANE, 1)])
    fake.fail_next(Response.json({"error": {"type": "server-error"}}, 503), times=2)

    error = raised(lambda: make_client(fake).harvest_posts([JANE]))

    assert isinstance(error, TransientError)
    assert fake.total_requests == 1


def test_apify_client__5xx_is_transient_with_status_and_snippet(fake: FakeApify) -> None:
    """A 502 ends as a TransientError quoting the page, after one request."""
    fake.fail_next(Response.html("<html>502 Bad Gateway</html>", 502), times=100)

    error = raised(lambda: make_client(fake).harvest_posts([JANE]))

    assert isinstance(error, TransientError)
    assert error.status == 502
    assert "502 Bad Gateway" in str(error)
    assert fake.total_requests == 1


def test_apify_client__json_that_is_not_a_list_is_permanent(fake: FakeApify) -> None:
    """A JSON object where the item list belongs is a PermanentError, not a crash."""
    fake.fail_next(Response.json({"data": {"items": []}}, 201))

    error = raised(lambda: make_client(fake).harvest_posts([JANE]))

    assert isinstance(error, PermanentError)
    assert "JSON dict, not a JSON list" in str(error)


def test_apify_client__read_timeout_is_transient_and_not_resent(fake: FakeApify) -> None:
    """A run the server does not answer in time is a TransientError, sent only once."""
    fake.stall_next(1.5)

    error = raised(lambda: make_client(fake, timeout_seconds=0.2).harvest_posts([JANE]))

    assert isinstance(error, TransientError)
    assert "timed out" in str(error)
    assert fake.total_requests == 1


@pytest.mark.parametrize(
    ("settings", "variable"),
    [
        pytest.param(ApifySettings(token=Secret("t")), "SMART_RESUME_APIFY_ACTOR_ID", id="actor"),
        pytest.param(ApifySettings(actor_id="a~b"), "SMART_RESUME_APIFY_TOKEN", id="token"),
    ],
)
def test_apify_client__missing_actor_or_token_is_a_configuration_error(
    settings: ApifySettings, variable: str
) -> None:
    """A client without actor or token fails at construction, naming the variable to set."""
    with pytest.raises(ConfigurationError, match=variable):
        ApifyClient(settings)


# -- collect_posts on raw items -----------------------------------------------------------------


def test_collect_posts__reads_nested_and_alternative_keys() -> None:
    """Nested stats, a seconds epoch, comment lists and counts as text are all understood."""
    items = [
        {
            "post_url": "https://li/p/1",
            "postText": " Hello ",
            "posted_at": {"timestamp": 1735810200},
            "profileUrl": JANE,
            "totalReactionCount": "1,204",
            "comments": [{}, {}],
        },
        {
            "url": "https://li/p/2",
            "content": "World",
            "postedAt": {"date": "2025-01-02 10:00"},
            "author": {"profile_url": JANE},
            "stats": {"total_reactions": 3, "comments": 1},
        },
    ]

    harvest = collect_posts(items, [JANE], max_posts=10)

    assert harvest.posts[JANE] == [
        Post("https://li/p/1", "Hello", "2025-01-02T09:30:00+00:00", JANE, 1204, 2),
        Post("https://li/p/2", "World", "2025-01-02 10:00", JANE, reactions=3, comments=1),
    ]


def test_collect_posts__attributes_by_input_url_before_author() -> None:
    """A repost is filed under the profile it was harvested from, and keeps its real author."""
    stranger = "https://www.linkedin.com/in/someone-else"
    repost = {
        "url": "https://li/p/1",
        "text": "Reshared",
        "inputUrl": JOHN,
        "author": {"profile_url": JANE},
    }
    stranger_post = {"url": "https://li/p/2", "text": "t", "authorProfileUrl": stranger}

    harvest = collect_posts([repost, stranger_post], [JANE, JOHN], max_posts=10)

    assert harvest.posts == {JANE: [], JOHN: [Post("https://li/p/1", "Reshared", "", JANE)]}
    assert harvest.skipped == {"apify_item_unattributed": 1}


def test_collect_posts__matches_profile_urls_loosely_and_keeps_the_requested_spelling() -> None:
    """www, country subdomains, case, trailing slashes and queries do not break attribution."""
    items = [
        {
            "url": "https://li/p/1",
            "text": "a",
            "authorProfileUrl": "https://uk.linkedin.com/in/Jane-Doe/?trk=x",
        },
        {"url": "https://li/p/2", "text": "b", "authorProfileUrl": "linkedin.com/in/john-roe"},
    ]

    harvest = collect_posts(items, [JANE, JOHN + "/"], max_posts=10)

    assert [p.url for p in harvest.posts[JANE]] == ["https://li/p/1"]
    assert [p.url for p in harvest.posts[JOHN + "/"]] == ["https://li/p/2"]


def test_collect_posts__single_profile_owns_items_without_author() -> None:
    """When one profile was asked for, items that name no author are that profile's."""
    harvest = collect_posts([{"url": "https://li/p/1", "text": "a"}], [JANE], max_posts=10)

    assert harvest.posts == {JANE: [Post("https://li/p/1", "a", "", JANE)]}


def test_collect_posts__dedupes_by_urn_across_url_spellings() -> None:
    """Two items with different URLs but the same URN are one post."""
    items = [
        {"url": "https://www.linkedin.com/posts/a-1", "urn": "urn:li:activity:1", "text": "a"},
        {
            "url": "https://www.linkedin.com/feed/update/urn:li:activity:1",
            "urn": "urn:li:activity:1",
            "text": "a",
        },
        {"url": "https://www.linkedin.com/posts/a-1/?utm_source=share", "text": "a"},
    ]

    harvest = collect_posts(items, [JANE], max_posts=10)

    assert [p.url for p in harvest.posts[JANE]] == ["https://www.linkedin.com/posts/a-1"]
    assert harvest.skipped == {}


def test_collect_posts__counts_items_that_are_not_objects() -> None:
    """Strings or nulls among the items are counted, not fatal."""
    harvest = collect_posts(["<html>", None, {"url": "u", "text": "t"}], [JANE], max_posts=10)

    assert len(harvest.posts[JANE]) == 1
    assert harvest.skipped == {"apify_item_not_object": 2}


def test_collect_posts__caps_posts_per_profile() -> None:
    """An actor that returns more than asked for is cut to max_posts per profile."""
    items = [{"url": f"https://li/p/{n}", "text": "t"} for n in range(5)]

    harvest = collect_posts(items, [JANE], max_posts=2)

    assert [p.url for p in harvest.posts[JANE]] == ["https://li/p/0", "https://li/p/1"]
