"""The shared HTTP policy: what is resent, and that no credential reaches a message or a cause.

Against the AI fake over real HTTP where a wire is involved; ``redact`` and ``snippet`` directly.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import traceback
from collections.abc import Iterator

import pytest
import requests

from fakes.fake_ai import FakeAI
from fakes.server import Response
from smart_resume.config import AISettings, Secret, Settings
from smart_resume.core.errors import IntegrationError, TransientError
from smart_resume.integrations import http
from smart_resume.integrations.ai import ChatClient, lead_scoring_prompt
from smart_resume.logs import JsonFormatter

pytestmark = pytest.mark.timeout(10)

KEY = "sk-proj-Abc123Def456Ghi789Jkl012Mno345"
FAST = http.retry_policy(total=3, backoff_factor=0, statuses=(429, 500, 502, 503, 504))


@pytest.fixture
def fake() -> Iterator[FakeAI]:
    service = FakeAI(api_key=KEY)
    service.start()
    yield service
    service.stop()


def chat(base_url: str, api_key: str = KEY) -> ChatClient:
    settings = AISettings(api_key=Secret(api_key), base_url=base_url, model="m")
    return ChatClient(settings, session=http.build_session(FAST))


def judge_error(client: ChatClient) -> IntegrationError:
    prompt = lead_scoring_prompt("criteria", {"Name": "Lead"})
    with pytest.raises(IntegrationError) as caught:
        client.judge(prompt)
    return caught.value


def logged(error: BaseException) -> str:
    """What ``log.exception`` writes for ``error`` with the worker's formatter: message and the
    whole chain."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.leak")
    logger.addHandler(handler)
    try:
        try:
            raise error
        except IntegrationError:
            logger.exception("task failed")
    finally:
        logger.removeHandler(handler)
    return stream.getvalue() + "".join(traceback.format_exception(error))


def leaks(text: str, secret: str = KEY) -> list[str]:
    """The spellings of ``secret`` (and its 12-character pieces) that ``text`` contains."""
    forms = {secret, secret.strip(), repr(secret)[1:-1], json.dumps(secret)[1:-1]}
    pieces = {form[i : i + 12] for form in forms for i in range(len(form) - 11)}
    return sorted(piece for piece in forms | pieces if piece and piece in text)


# -- case 5: what is resent -------------------------------------------------------------------


def test_retry_policy__5xx_to_a_post_is_not_resent(fake: FakeAI) -> None:
    """A 503 to the billable completion POST is answered once: the work may have started."""
    fake.fail_next(Response.json({"error": {"message": "overloaded"}}, 503), times=5)

    error = judge_error(chat(f"{fake.url}/v1"))

    assert isinstance(error, TransientError)
    assert error.status == 503
    assert fake.total_requests == 1


def test_retry_policy__429_to_a_post_is_resent(fake: FakeAI) -> None:
    """A 429 means the request was not processed: the POST is sent again and succeeds."""
    fake.fail_next(Response.json({"error": {"message": "slow down"}}, 429), times=2)

    chat(f"{fake.url}/v1").judge(lead_scoring_prompt("criteria", {"Name": "Lead"}))

    assert fake.total_requests == 3


@pytest.mark.parametrize(
    ("method", "status", "idempotent", "resent"),
    [
        pytest.param("POST", 503, False, False, id="post-503"),
        pytest.param("POST", 500, False, False, id="post-500"),
        pytest.param("PATCH", 502, False, False, id="patch-502"),
        pytest.param("POST", 429, False, True, id="post-429"),
        pytest.param("GET", 503, False, True, id="get-503"),
        pytest.param("PUT", 504, False, True, id="put-504"),
        pytest.param("POST", 503, True, True, id="idempotent-post-503"),
        pytest.param("PATCH", 500, True, True, id="idempotent-patch-500"),
        pytest.param("POST", 400, True, False, id="post-400"),
    ],
)
def test_retry_policy__resends_only_what_cannot_double_work(
    method: str, status: int, idempotent: bool, resent: bool
) -> None:
    """Decision table of the one policy: a 5xx is resent only for idempotent requests, a 429
    always."""
    policy = http.retry_policy(idempotent=idempotent, statuses=(429, 500, 502, 503, 504))
    assert policy.is_retry(method, status) is resent


def test_retry_policy__read_timeout_and_connect_errors() -> None:
    """Read errors are never retried; connection errors (nothing was sent) are, three times."""
    policy = http.retry_policy()
    assert (policy.read, policy.connect) == (0, 3)


def test_retry_policy__429_not_listed_is_not_resent() -> None:
    """Airtable leaves 429 out (its gateway pauses the base instead): the policy leaves it too."""
    policy = http.retry_policy(idempotent=True, statuses=(500, 502, 503, 504))
    assert policy.is_retry("GET", 429) is False


# -- case 1: no credential in a message or a cause --------------------------------------------


def test_settings__secret_read_with_a_trailing_newline_is_stripped() -> None:
    """A Secret made with --from-file ends with a newline; the loaded key does not."""
    settings = Settings.from_env({"SMART_RESUME_AI_API_KEY": f"{KEY}\n"})
    assert settings.ai.api_key.reveal() == KEY


def test_request__key_with_trailing_newline_leaks_nowhere(fake: FakeAI) -> None:
    """requests refuses the header and quotes its repr; neither the message nor the chain that
    log.exception prints carries the key, in any spelling."""
    error = judge_error(chat(f"{fake.url}/v1", api_key=f"{KEY}\n"))

    assert isinstance(error, TransientError)
    assert "request failed" in str(error)
    assert leaks(logged(error)) == []
    assert fake.total_requests == 0


def test_request__token_in_the_url_leaks_nowhere() -> None:
    """A refused connection quotes the URL; a token in its query string is redacted there and
    in the chain."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session = http.build_session(FAST)

    with pytest.raises(TransientError) as caught:
        http.request_json(
            session,
            "GET",
            f"http://127.0.0.1:{port}/v2/datasets?token={KEY}",
            service="apify",
            expect=list,
            secret=KEY,
            timeout=2,
        )

    assert "request failed" in str(caught.value)
    assert leaks(logged(caught.value)) == []


@pytest.mark.parametrize("offset", [150, 180, 190, 199, 205])
def test_request__echoed_key_straddling_the_snippet_cut_leaks_nowhere(
    fake: FakeAI, offset: int
) -> None:
    """An error page that echoes the key where the 200-character snippet is cut shows none of
    it: the body is redacted before it is cut."""
    fake.fail_next(Response.html("x" * offset + f" Bearer {KEY} was refused", 502))

    error = judge_error(chat(f"{fake.url}/v1"))

    assert error.status == 502
    assert leaks(logged(error)) == []


def test_request__401_quoting_the_key_is_redacted_with_the_cause_kept_clean(fake: FakeAI) -> None:
    """The fake's 401 quotes the wrong key in full; the error says *** and its chain is clean."""
    wrong = "sk-wrong-0123456789abcdefghij"

    error = judge_error(chat(f"{fake.url}/v1", api_key=wrong))

    assert "Incorrect API key provided: ***" in str(error)
    assert leaks(logged(error), wrong) == []


@pytest.mark.parametrize(
    "shown",
    [
        pytest.param(KEY, id="raw"),
        pytest.param(f"{KEY}\\n", id="repr-escaped-newline"),
        pytest.param(json.dumps(KEY + '"')[1:-1], id="json-escaped"),
        pytest.param(requests.utils.quote(KEY + "/+", safe=""), id="url-encoded"),
        pytest.param(KEY[:14], id="leading-piece"),
        pytest.param(KEY[-10:], id="trailing-piece"),
        pytest.param(KEY[9:30], id="middle-piece"),
    ],
)
def test_redact__covers_escaped_and_partial_forms(shown: str) -> None:
    """Whatever spelling or piece of the key a message holds, none of it survives."""
    secret = KEY + '"' if "json" in shown else KEY
    text = f"header value: 'Bearer {shown}' rejected"

    redacted = http.redact(text, secret + "\n", secret + "/+", secret)

    assert "***" in redacted
    assert redacted.startswith("header value: 'Bearer ")
    assert leaks(redacted, secret) == []


def test_redact__leaves_other_text_alone() -> None:
    """Text that shares fewer than PIECE_CHARS characters with the key is unchanged."""
    text = "Incorrect API key provided; sk-proj is the prefix of project keys."
    assert http.redact(text, KEY) == text


def test_snippet__redacts_before_cutting() -> None:
    """The 200-character cut falls inside the key: the snippet holds *** and no piece of it."""
    body = "y" * 195 + KEY + " trailer"
    cut = http.snippet(body, secrets=[KEY])
    assert len(cut) <= http.SNIPPET_CHARS
    assert leaks(cut) == []
