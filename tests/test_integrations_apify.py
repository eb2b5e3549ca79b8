"""ApifyClient against FakeApify over real HTTP on 127.0.0.1; collect_posts on raw actor items."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from urllib3.util.retry import Retry

from fakes.fake_apify import DEFAULT_ACTOR, DEFAULT_TOKEN, LOGIN_PAGE, FakeApify
from fakes.server import Response
from harness.waiting import wait_for
from smart_resume.config import ApifySettings, Secret
from smart_resume.core.errors import (
    ConfigurationError,
    IntegrationError,
    PermanentError,
    TransientError,
)
from smart_resume.integrations import apify
from smart_resume.integrations.apify import (
    START_RETRIED_STATUSES,
    ApifyClient,
    Harvest,
    Post,
    collect_posts,
)
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


def settings_for(
    fake: FakeApify,
    *,
    token: str = DEFAULT_TOKEN,
    actor_id: str = DEFAULT_ACTOR,
    timeout_seconds: float = 2.0,
) -> ApifySettings:
    return ApifySettings(
        token=Secret(token),
        base_url=fake.url,
        actor_id=actor_id,
        max_posts_per_lead=5,
        wait_seconds=1,
        timeout_seconds=timeout_seconds,
    )


def make_client(fake: FakeApify, **settings: Any) -> ApifyClient:
    return ApifyClient(
        settings_for(fake, **settings),
        session=build_session(FAST_RETRY),
        start_session=build_session(FAST_RETRY.new(status_forcelist=START_RETRIED_STATUSES)),
    )


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


def test_apify_client__starts_waits_and_pages_with_the_token_only_in_the_header(
    fake: FakeApify,
) -> None:
    """A run is started with {"urls", "maxPosts"}, maxItems and the run timeout, then waited
    for and its dataset read; every request carries the token as a bearer header, nowhere else."""
    fake.set_profile_seconds(JANE, 0.3)
    make_client(fake).harvest_posts([JANE, JOHN], max_posts=3)

    start, *rest = fake.requests
    assert start.path == f"/v2/acts/{DEFAULT_ACTOR}/runs"
    assert start.query == [("maxItems", "6"), ("timeout", "300")]
    assert start.json() == {"urls": [JANE, JOHN], "maxPosts": 3}
    assert [(r.method, r.path, r.param("waitForFinish")) for r in rest] == [
        ("GET", "/v2/actor-runs/FakeRun00001", "1"),
        ("GET", "/v2/datasets/FakeDataset00001/items", None),
    ]
    for request in fake.requests:
        assert request.headers["authorization"] == f"Bearer {DEFAULT_TOKEN}"
        assert DEFAULT_TOKEN not in request.path + json.dumps(request.query) + request.body.decode()


def test_apify_client__pages_the_dataset(fake: FakeApify, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataset longer than a page is read with offset/limit until a short page."""
    monkeypatch.setattr(apify, "DATASET_PAGE_ITEMS", 2)
    fake.set_posts(JANE, [post(JANE, n) for n in range(1, 6)])

    harvest = make_client(fake).harvest_posts([JANE])

    pages = [r for r in fake.requests if "/datasets/" in r.path]
    assert [(r.param("offset"), r.param("limit")) for r in pages] == [
        ("0", "2"),
        ("2", "2"),
        ("4", "2"),
    ]
    assert harvest.posts[JANE] == [post(JANE, n) for n in range(1, 6)]


def test_apify_client__default_max_posts_comes_from_settings(fake: FakeApify) -> None:
    """Without max_posts the settings' per-lead limit is asked for and applied."""
    fake.set_posts(JANE, [post(JANE, n) for n in range(1, 8)])

    harvest = make_client(fake).harvest_posts([JANE])

    assert fake.requests[0].json()["maxPosts"] == 5
    assert harvest is not None and len(harvest.posts[JANE]) == 5


def test_apify_client__slash_actor_id_is_sent_in_tilde_form(fake: FakeApify) -> None:
    """An actor configured as user/name is addressed as user~name, one path segment."""
    fake.set_posts(JANE, [post(JANE, 1)])

    harvest = make_client(fake, actor_id=DEFAULT_ACTOR.replace("~", "/")).harvest_posts([JANE])

    assert fake.requests[0].path == f"/v2/acts/{DEFAULT_ACTOR}/runs"
    assert harvest is not None and harvest.posts[JANE] == [post(JANE, 1)]


def test_apify_client__actor_id_is_url_quoted() -> None:
    """Characters that would change the path are percent-encoded in the actor segment."""
    fake = FakeApify(actor_id="odd user~posts?x=1")
    fake.start()
    try:
        make_client(fake, actor_id="odd user~posts?x=1").harvest_posts([JANE])
    finally:
        fake.stop()

    assert fake.requests[0].path == "/v2/acts/odd%20user~posts%3Fx%3D1/runs"


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

    assert harvest == Harvest(
        posts={JANE: [post(JANE, 1)]},
        skipped={"apify_item_no_url": 1, "apify_item_no_text": 1},
    )


def test_apify_client__html_login_page_is_permanent_with_status_and_snippet(
    fake: FakeApify,
) -> None:
    """An HTML page instead of a run is a PermanentError naming the status and quoting the page."""
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


def test_apify_client__timed_out_run_is_transient_408(fake: FakeApify) -> None:
    """A run that ended TIMED-OUT is a TransientError with status 408 (the caller halves it)."""
    fake.end_next_runs("TIMED-OUT")

    error = raised(lambda: make_client(fake).harvest_posts([JANE]))

    assert isinstance(error, TransientError)
    assert error.status == apify.STATUS_RUN_TIMEOUT
    assert "ended TIMED-OUT" in str(error)
    assert fake.started_runs == [[JANE]] and fake.aborted_runs == []


def test_apify_client__run_past_its_timeout_ends_timed_out(fake: FakeApify) -> None:
    """The run timeout is Apify's: a run that needs longer ends TIMED-OUT there."""
    fake.set_profile_seconds(JANE, 5)
    settings = dataclasses.replace(settings_for(fake), run_timeout_seconds=1)
    client = ApifyClient(settings, session=build_session(FAST_RETRY))

    error = raised(lambda: client.harvest_posts([JANE]))

    assert error.status == apify.STATUS_RUN_TIMEOUT


def test_apify_client__failed_run_is_permanent(fake: FakeApify) -> None:
    """A run that ended FAILED is a PermanentError naming the run."""
    fake.end_next_runs("FAILED")

    error = raised(lambda: make_client(fake).harvest_posts([JANE]))

    assert isinstance(error, PermanentError)
    assert "FakeRun00001 ended FAILED" in str(error)


def test_apify_client__5xx_to_a_poll_is_retried_then_succeeds(fake: FakeApify) -> None:
    """Two 503s to a poll (a GET) are retried by the session's policy; the run is started once."""
    fake.set_posts(JANE, [post(JANE, 1)])
    fake.set_profile_seconds(JANE, 0.3)
    server_error = Response.json({"error": {"type": "server-error"}}, 503)
    fake.fail_next(server_error, times=2, path_contains="/actor-runs/")

    harvest = make_client(fake).harvest_posts([JANE])

    assert harvest == Harvest(posts={JANE: [post(JANE, 1)]}, skipped={})
    assert len(fake.started_runs) == 1


def test_apify_client__5xx_to_a_run_start_is_never_resent(fake: FakeApify) -> None:
    """A 502 to a start may hide a run that started (and bills): one request, a TransientError."""
    fake.fail_next(Response.html("<html>502 Bad Gateway</html>", 502), times=100)

    error = raised(lambda: make_client(fake).harvest_posts([JANE]))

    assert isinstance(error, TransientError)
    assert error.status == 502
    assert "502 Bad Gateway" in str(error)
    assert fake.total_requests == 1


def test_apify_client__rate_limited_start_is_resent(fake: FakeApify) -> None:
    """A 429 to a start started nothing: it is resent."""
    fake.fail_next(Response.json({"error": {"type": "rate-limit-exceeded"}}, 429))

    make_client(fake).harvest_posts([JANE])

    assert len(fake.started_runs) == 1
    assert fake.request_counts[f"POST /v2/acts/{DEFAULT_ACTOR}/runs"] == 2


def test_apify_client__persistent_5xx_to_a_poll_aborts_the_run(fake: FakeApify) -> None:
    """A poll that fails after the retries is raised, and the run it no longer waits for is
    aborted."""
    fake.set_profile_seconds(JANE, 30)
    fake.fail_next(
        Response.html("<html>502</html>", 502), times=RETRIES + 1, path_contains="/actor-runs/"
    )

    error = raised(lambda: make_client(fake).harvest_posts([JANE]))

    assert isinstance(error, TransientError) and error.status == 502
    assert fake.aborted_runs == ["FakeRun00001"]


def test_apify_client__cancel_aborts_the_run_it_waits_for(fake: FakeApify) -> None:
    """Once the caller's cancel event is set, the run is aborted and None is returned."""
    fake.set_profile_seconds(JANE, 30)
    cancelled = threading.Event()
    results: list[Harvest | None] = []
    caller = threading.Thread(
        target=lambda: results.append(make_client(fake).harvest_posts([JANE], cancelled=cancelled))
    )
    caller.start()
    wait_for(lambda: fake.started_runs, timeout=5, what="the run to start")

    cancelled.set()
    caller.join(5)

    assert results == [None]
    assert fake.aborted_runs == ["FakeRun00001"]


def test_apify_client__answer_without_a_run_is_permanent(fake: FakeApify) -> None:
    """A JSON list where the run object belongs is a PermanentError, not a crash."""
    fake.fail_next(Response.json([], 201))

    error = raised(lambda: make_client(fake).harvest_posts([JANE]))

    assert isinstance(error, PermanentError)
    assert "JSON list, not a JSON dict" in str(error)


def test_apify_client__dataset_that_is_not_a_list_is_permanent(fake: FakeApify) -> None:
    """A JSON object where the item list belongs is a PermanentError, not a crash."""
    fake.fail_next(Response.json({"data": {"items": []}}), path_contains="/datasets/")

    error = raised(lambda: make_client(fake).harvest_posts([JANE]))

    assert isinstance(error, PermanentError)
    assert "JSON dict, not a JSON list" in str(error)


def test_apify_client__read_timeout_of_a_start_is_transient_and_not_resent(
    fake: FakeApify,
) -> None:
    """A start the server does not answer in time is a TransientError, sent only once."""
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


# -- properties: no actor output crashes the mapping --------------------------------------------

_URLISH = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            JANE,
            JOHN,
            "https://www.linkedin.com]/in/x",
            "http://[::1/in/x",
            "https://[bad/in/y",
            "linkedin.com/in/jane-doe/",
            "",
        ]
    ),
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _URLISH,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
_KEYS = st.sampled_from(
    [
        "url", "postUrl", "linkedinUrl", "urn", "text", "content", "inputUrl", "authorProfileUrl",
        "profileUrl", "posted_at", "postedAt", "timestamp", "date", "numLikes", "comments",
        "stats", "author",
    ]
)  # fmt: skip
_ITEM = st.one_of(_JSON, st.dictionaries(_KEYS, st.one_of(_URLISH, _JSON), max_size=8))


@given(
    items=st.lists(_ITEM, max_size=8),
    profile_urls=st.lists(_URLISH, max_size=4),
    max_posts=st.integers(min_value=1, max_value=5),
)
def test_collect_posts__never_raises_and_keeps_its_promises(
    items: list[object], profile_urls: list[str], max_posts: int
) -> None:
    """Whatever the items and requested URLs (malformed ones too): no exception, one entry per
    requested URL, at most max_posts each, and every item either a post or counted."""
    harvest = collect_posts(items, profile_urls, max_posts=max_posts)

    assert set(harvest.posts) == set(profile_urls)
    assert all(len(posts) <= max_posts for posts in harvest.posts.values())
    for found in harvest.posts.values():
        for one in found:
            assert one.url and one.text and isinstance(one.author_profile_url, str)
            assert one.reactions >= 0 and one.comments >= 0
    kept = sum(len(posts) for posts in harvest.posts.values())
    assert kept + sum(harvest.skipped.values()) <= len(items)


@given(url=_URLISH)
def test_profile_key__never_raises(url: str) -> None:
    """Any text gives a key or None (a URL that cannot be parsed), never an exception."""
    key = apify.profile_key(url)
    assert key is None or isinstance(key, str)
