"""ChatClient and the prompt builders against FakeAI over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from urllib3.util.retry import Retry

from fakes.fake_ai import DEFAULT_API_KEY, Answer, FakeAI, default_score
from fakes.server import Response
from smart_resume.config import AISettings, Secret
from smart_resume.core.errors import (
    ConfigurationError,
    IntegrationError,
    PermanentError,
    TransientError,
)
from smart_resume.integrations.ai import (
    LEAD_SCHEMA,
    POST_TEXT_CHARS,
    ChatClient,
    Prompt,
    lead_scoring_prompt,
    post_scoring_prompt,
)
from smart_resume.integrations.http import build_session, retry_policy
from smart_resume.integrations.verdicts import IntField, Reason, Rejection, Verdict

pytestmark = pytest.mark.timeout(10)

JANE = "https://www.linkedin.com/in/jane-doe"
CRITERIA = "Heads of talent at B2B SaaS companies with 50-500 staff."
RETRIES = 3
FAST_RETRY: Retry = retry_policy(total=RETRIES, backoff_factor=0)


@pytest.fixture
def fake() -> Iterator[FakeAI]:
    service = FakeAI()
    service.start()
    yield service
    service.stop()


def make_client(
    fake: FakeAI,
    *,
    api_key: str = DEFAULT_API_KEY,
    timeout_seconds: float = 2.0,
    base_url: str | None = None,
) -> ChatClient:
    settings = AISettings(
        api_key=Secret(api_key),
        base_url=base_url or f"{fake.url}/v1",
        model="fake-model",
        timeout_seconds=timeout_seconds,
    )
    return ChatClient(settings, session=build_session(FAST_RETRY))


def lead_prompt(url: str = JANE) -> Prompt:
    profile = {"Name": "Jane Doe", "Headline": "Head of Talent", "Profile URL": url}
    return lead_scoring_prompt(CRITERIA, profile)


def raised(call: Callable[[], object]) -> IntegrationError:
    with pytest.raises(IntegrationError) as caught:
        call()
    return caught.value


def test_chat_client__posts_model_json_mode_and_bearer_key(fake: FakeAI) -> None:
    """One POST to /v1/chat/completions with model, both messages, temperature 0 and JSON mode."""
    prompt = lead_prompt()

    make_client(fake).complete(prompt.system, prompt.user)

    [request] = fake.requests
    assert (request.method, request.path, request.query) == ("POST", "/v1/chat/completions", [])
    assert request.headers["authorization"] == f"Bearer {DEFAULT_API_KEY}"
    assert request.json() == {
        "model": "fake-model",
        "messages": [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user},
        ],
        "temperature": 0,
        "response_format": {"type": "json_object"},
    }


def test_chat_client__judges_a_lead_with_the_fakes_deterministic_score(fake: FakeAI) -> None:
    """An unscripted lead gets the score derived from its profile URL, the same on every call."""
    client = make_client(fake)

    first, second = client.judge(lead_prompt()), client.judge(lead_prompt())

    assert isinstance(first, Verdict)
    assert first == second
    assert first.score == default_score(JANE)
    assert first.assessment


def test_fake_ai__default_scores_vary_between_leads(fake: FakeAI) -> None:
    """Different profile URLs get different default scores, so demos and tests see a spread."""
    client = make_client(fake)
    urls = [f"https://www.linkedin.com/in/lead-{n}" for n in range(8)]

    verdicts = [client.judge(lead_prompt(url)) for url in urls]

    assert len({v.score for v in verdicts if isinstance(v, Verdict)}) > 4


def test_chat_client__scripted_score_applies_only_to_the_matching_lead(fake: FakeAI) -> None:
    """script(url, 42) changes that lead's score and no other's."""
    other = "https://www.linkedin.com/in/john-roe"
    fake.script(JANE, 42)
    client = make_client(fake)

    scripted, unscripted = client.judge(lead_prompt()), client.judge(lead_prompt(other))

    assert scripted == Verdict(score=42, assessment=f"Fake verdict for {JANE}.")
    assert isinstance(unscripted, Verdict)
    assert unscripted.score == default_score(other)


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        pytest.param(Answer.REFUSAL, Reason.AI_REFUSAL, id="refusal"),
        pytest.param(Answer.TRUNCATED, Reason.AI_TRUNCATED, id="truncated"),
        pytest.param(Answer.BLOCKED, Reason.AI_BLOCKED, id="blocked"),
        pytest.param(Answer.MISSING_SCORE, Reason.AI_MISSING_SCORE, id="missing_score"),
        pytest.param(Answer.OUT_OF_RANGE, Reason.AI_SCORE_OUT_OF_RANGE, id="out_of_range"),
        pytest.param(Answer.GARBAGE, Reason.AI_NO_JSON, id="garbage"),
    ],
)
def test_chat_client__bad_model_answers_become_rejections(
    fake: FakeAI, kind: Answer, code: Reason
) -> None:
    """A scripted bad answer reaches the caller as a Rejection with its reason code."""
    fake.script(JANE, kind)

    result = make_client(fake).judge(lead_prompt())

    assert isinstance(result, Rejection)
    assert result.code is code
    assert fake.total_requests == 1


@pytest.mark.parametrize("kind", [Answer.PROSE, Answer.FENCED])
def test_chat_client__wrapped_json_is_still_a_verdict(fake: FakeAI, kind: Answer) -> None:
    """Prose around the JSON or a code fence does not cost the lead its score."""
    fake.script(JANE, kind)

    result = make_client(fake).judge(lead_prompt())

    assert isinstance(result, Verdict)
    assert result.score == default_score(JANE)


def test_chat_client__judges_posts_with_a_best_index_in_range(fake: FakeAI) -> None:
    """Post scoring returns a verdict whose best_post_index points into the posts given."""
    posts = ["Hiring 3 recruiters!", "Our SaaS raised a Series B", "Weekend hike photos"]
    prompt = post_scoring_prompt("Talent acquisition in SaaS", profile_url=JANE, posts=posts)

    result = make_client(fake).judge(prompt)

    assert isinstance(result, Verdict)
    assert result.score == default_score(JANE)
    assert 1 <= result.extras["best_post_index"] <= len(posts)


def test_chat_client__5xx_is_not_resent(fake: FakeAI) -> None:
    """A 503 to the completion POST is a TransientError after one request: the completion may
    have been computed and billed, so the lead is marked and retried on a later run instead."""
    fake.fail_next(Response.json({"error": {"message": "overloaded"}}, 503), times=2)

    error = raised(lambda: make_client(fake).judge(lead_prompt()))

    assert isinstance(error, TransientError)
    assert fake.total_requests == 1


def test_chat_client__5xx_is_transient_naming_the_status(fake: FakeAI) -> None:
    """A 500 ends as a TransientError naming the status and quoting the body, after one request."""
    fake.script(JANE, Answer.HTTP_500)
    client = make_client(fake)

    error = raised(lambda: client.judge(lead_prompt()))

    assert isinstance(error, TransientError)
    assert (error.service, error.status) == ("ai", 500)
    assert "HTTP 500" in str(error)
    assert "server had an error" in str(error)
    assert fake.total_requests == 1


def test_chat_client__wrong_key_is_permanent_and_not_retried(fake: FakeAI) -> None:
    """A 401 is a PermanentError after one request; the key it quotes is redacted from the error."""
    wrong_key = "sk-wrong-key-abcdef123456"
    client = make_client(fake, api_key=wrong_key)

    error = raised(lambda: client.judge(lead_prompt()))

    assert isinstance(error, PermanentError)
    assert error.status == 401
    assert fake.total_requests == 1
    assert "Incorrect API key provided: ***" in str(error)
    assert wrong_key not in "".join(traceback.format_exception(error))


def test_chat_client__403_is_permanent_and_not_retried(fake: FakeAI) -> None:
    """A 403 (e.g. no access to the model) is a PermanentError after one request."""
    fake.fail_next(Response.json({"error": {"message": "model access denied"}}, 403))

    error = raised(lambda: make_client(fake).judge(lead_prompt()))

    assert isinstance(error, PermanentError)
    assert error.status == 403
    assert fake.total_requests == 1


def test_chat_client__429_is_transient(fake: FakeAI) -> None:
    """A 429 rate limit is a TransientError, left for the caller to retry later."""
    fake.fail_next(Response.json({"error": {"message": "Rate limit reached"}}, 429))

    error = raised(lambda: make_client(fake).judge(lead_prompt()))

    assert isinstance(error, TransientError)
    assert error.status == 429


def test_chat_client__html_page_is_permanent_with_status_and_snippet(fake: FakeAI) -> None:
    """An HTML page with HTTP 200 is a PermanentError naming the status and quoting the page."""
    fake.script(JANE, Answer.HTML)

    error = raised(lambda: make_client(fake).judge(lead_prompt()))

    assert isinstance(error, PermanentError)
    assert error.status == 200
    assert "HTTP 200" in str(error)
    assert "text/html" in str(error)
    assert "Please sign in" in str(error)
    assert "Expecting value" not in str(error)


def test_chat_client__html_error_page_on_502_is_transient_with_snippet(fake: FakeAI) -> None:
    """A proxy's HTML 502 page is a TransientError quoting the page."""
    fake.fail_next(Response.html("<html><body>502 Bad Gateway</body></html>", 502), times=10)

    error = raised(lambda: make_client(fake).judge(lead_prompt()))

    assert isinstance(error, TransientError)
    assert error.status == 502
    assert "502 Bad Gateway" in str(error)


def test_chat_client__json_body_that_is_not_an_object_is_permanent(fake: FakeAI) -> None:
    """A JSON list instead of a completion object is a PermanentError, not a crash."""
    fake.fail_next(Response.json(["not", "a", "completion"]))

    error = raised(lambda: make_client(fake).judge(lead_prompt()))

    assert isinstance(error, PermanentError)
    assert "JSON list" in str(error)


def test_chat_client__read_timeout_is_transient_and_not_resent(fake: FakeAI) -> None:
    """A request the server does not answer in time is a TransientError and is sent only once."""
    fake.stall_next(1.5)
    client = make_client(fake, timeout_seconds=0.2)

    error = raised(lambda: client.judge(lead_prompt()))

    assert isinstance(error, TransientError)
    assert "timed out" in str(error)
    assert fake.total_requests == 1


def test_chat_client__unreachable_endpoint_is_transient(fake: FakeAI) -> None:
    """A refused connection is a TransientError naming the service."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(fake, base_url=f"http://127.0.0.1:{port}/v1")

    error = raised(lambda: client.judge(lead_prompt()))

    assert isinstance(error, TransientError)
    assert error.service == "ai"


def test_chat_client__key_never_in_urls_or_error_messages(fake: FakeAI) -> None:
    """Across success and failures the key travels only in the Authorization header."""
    client = make_client(fake)
    client.judge(lead_prompt())
    fake.fail_next(Response.json({"error": {"message": "denied"}}, 403))
    fake.script(JANE, Answer.HTML)
    messages = [str(raised(lambda: client.judge(lead_prompt()))) for _ in range(2)]

    assert all(DEFAULT_API_KEY not in message for message in messages)
    for request in fake.requests:
        assert DEFAULT_API_KEY not in request.path + json.dumps(request.query)
        assert DEFAULT_API_KEY not in request.body.decode()
    assert DEFAULT_API_KEY not in repr(client.__dict__)


def test_fake_ai__records_max_in_flight_requests() -> None:
    """Three requests sent at once against a slow fake are seen in flight together."""
    fake = FakeAI(latency_seconds=0.4)
    fake.start()
    try:
        client = make_client(fake)
        with ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(lambda n: client.judge(lead_prompt(f"{JANE}-{n}")), range(3)))
    finally:
        fake.stop()

    assert all(isinstance(result, Verdict) for result in results)
    assert fake.max_in_flight == 3


def test_fake_ai__other_routes_are_404(fake: FakeAI) -> None:
    """Only POST /v1/chat/completions exists."""
    response = requests.get(f"{fake.url}/v1/models", timeout=2)

    assert response.status_code == 404


def test_lead_scoring_prompt__user_message_is_json_of_criteria_and_filled_fields() -> None:
    """The lead's non-empty fields and the criteria are sent as one JSON document."""
    profile = {"Name": "Jane", "About": "", "Skills": [], "Profile URL": JANE, "Connections": 0}

    prompt = lead_scoring_prompt(CRITERIA, profile)

    assert json.loads(prompt.user) == {
        "criteria": CRITERIA,
        "lead": {"Name": "Jane", "Profile URL": JANE, "Connections": 0},
    }
    assert prompt.schema == LEAD_SCHEMA


def test_lead_scoring_prompt__asks_for_the_json_contract() -> None:
    """The system message asks for JSON: an integer score in the schema's range, an assessment."""
    system = lead_scoring_prompt(CRITERIA, {}).system

    assert "JSON" in system
    assert '"score": <integer 0-100' in system
    assert '"assessment"' in system


def test_post_scoring_prompt__numbers_posts_and_bounds_the_best_index() -> None:
    """Posts are numbered from 1, cut to POST_TEXT_CHARS, and the schema bounds best_post_index."""
    posts = ["short", "x" * (POST_TEXT_CHARS + 50)]

    prompt = post_scoring_prompt("Hiring", profile_url=JANE, posts=posts)

    document = json.loads(prompt.user)
    assert document["lead_profile_url"] == JANE
    assert [post["index"] for post in document["posts"]] == [1, 2]
    assert len(document["posts"][1]["text"]) == POST_TEXT_CHARS
    assert prompt.schema.extras == (IntField("best_post_index", 1, 2),)
    assert '"best_post_index": <the index of the most relevant post, 1-2>' in prompt.system


def test_post_scoring_prompt__without_posts_is_a_value_error() -> None:
    """Asking about zero posts is a programming error, caught before any request."""
    with pytest.raises(ValueError, match="at least one post"):
        post_scoring_prompt("Hiring", profile_url=JANE, posts=[])


def test_chat_client__missing_key_is_a_configuration_error_naming_the_variable() -> None:
    """Without an API key the client refuses to be built, naming the variable to set, instead
    of sending "Bearer " and failing every lead with a 401."""
    with pytest.raises(ConfigurationError, match="SMART_RESUME_AI_API_KEY is not set"):
        ChatClient(AISettings())
