"""A local OpenAI-compatible ``/v1/chat/completions`` endpoint for tests and the demo.

By default it answers the prompts of ``smart_resume.integrations.ai`` with a valid verdict whose
score is derived from a stable hash of the lead's LinkedIn profile URL found in the prompt, so
leads get varied but repeatable scores. ``script(match, kind)`` makes every request whose
messages contain ``match`` (e.g. a profile URL) answer with a chosen kind of bad answer instead.
It checks the bearer key (otherwise a 401 that quotes the wrong key), counts requests and
records the most requests ever in flight at once, so a test can prove that concurrency is bounded.

It deliberately does not model tokens, other endpoints or streaming.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, assert_never

from fakes.server import FakeService, Request, Response

__all__ = ["DEFAULT_API_KEY", "LOGIN_PAGE", "Answer", "FakeAI", "default_score"]

DEFAULT_API_KEY = "sk-fake-ai-key-0123456789"
_PATH = "/v1/chat/completions"
_PROFILE_URL = re.compile(r"https?://[^\s\"]*linkedin\.com/in/[^\s\"/?]+", re.IGNORECASE)

LOGIN_PAGE = """<!DOCTYPE html>
<html><head><title>Sign in</title></head>
<body><h1>Please sign in</h1><form action="/login" method="post"></form></body></html>"""


class Answer(enum.StrEnum):
    """Scriptable bad answers; an ``int`` given to ``script`` means "valid, with this score"."""

    REFUSAL = "refusal"  # content null, message.refusal set
    TRUNCATED = "truncated"  # finish_reason "length", JSON cut in half
    BLOCKED = "blocked"  # finish_reason "content_filter", content null
    PROSE = "prose"  # valid JSON with chatter before and after it
    FENCED = "fenced"  # valid JSON inside a ```json fence
    MISSING_SCORE = "missing_score"  # {"assessment": ...} only
    OUT_OF_RANGE = "out_of_range"  # score 150
    GARBAGE = "garbage"  # prose, no JSON at all
    HTTP_500 = "http_500"  # an OpenAI-style 500 error body, every time
    HTML = "html"  # HTTP 200 with an HTML sign-in page


def default_score(key: str) -> int:
    """The unscripted score for a prompt whose lead is ``key`` (its profile URL): 0..100, stable."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % 101


class FakeAI(FakeService):
    """Args: api_key: the only bearer key accepted; latency_seconds: added to every request."""

    name = "fake-ai"

    def __init__(self, *, api_key: str = DEFAULT_API_KEY, latency_seconds: float = 0.0) -> None:
        super().__init__(latency_seconds=latency_seconds)
        self.api_key = api_key
        self.max_in_flight = 0
        self._in_flight = 0
        self._scripts: list[tuple[str, Answer | int]] = []
        self._slow: list[tuple[str, float]] = []
        self._state_lock = threading.Lock()

    def script(self, match: str, kind: Answer | int) -> None:
        """Answer every request whose messages contain ``match`` with ``kind``; first match wins."""
        with self._state_lock:
            self._scripts.append((match, kind))

    def slow_down(self, match: str, seconds: float) -> None:
        """Answer every request whose messages contain ``match`` only after ``seconds``."""
        with self._state_lock:
            self._slow.append((match, seconds))

    @property
    def in_flight(self) -> int:
        with self._state_lock:
            return self._in_flight

    def handle(self, request: Request) -> Response:
        if request.method != "POST" or request.path != _PATH:
            return _error(404, "not_found", f"no route {request.method} {request.path}")
        presented = request.headers.get("authorization", "").removeprefix("Bearer ")
        if presented != self.api_key:
            # Quoted in full, as a careless proxy would, so tests prove the client redacts it.
            return _error(401, "invalid_api_key", f"Incorrect API key provided: {presented}.")
        messages = request.json().get("messages") or []
        conversation = "\n".join(str(message.get("content")) for message in messages)
        user = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
        verdict = _default_verdict(user)
        with self._state_lock:
            delay = sum(seconds for match, seconds in self._slow if match in conversation)
        time.sleep(delay)
        return _answer(self._kind_for(conversation), verdict)

    def _kind_for(self, conversation: str) -> Answer | int | None:
        with self._state_lock:
            return next((kind for match, kind in self._scripts if match in conversation), None)

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        # Wraps the base's whole request cycle: its latency and stalls run before handle(), and a
        # request is in flight for all of that time.
        with self._state_lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            super()._dispatch(handler)
        finally:
            with self._state_lock:
                self._in_flight -= 1


def _default_verdict(user: str) -> dict[str, Any]:
    found = _PROFILE_URL.search(user)
    key = found.group(0) if found else user
    score = default_score(key)
    verdict: dict[str, Any] = {"score": score, "assessment": f"Fake verdict for {key[:80]}."}
    try:
        posts = json.loads(user).get("posts")
    except (ValueError, AttributeError):
        posts = None
    if isinstance(posts, list) and posts:
        verdict = {"best_post_index": score % len(posts) + 1, **verdict}
    return verdict


def _answer(kind: Answer | int | None, verdict: dict[str, Any]) -> Response:
    if isinstance(kind, int):
        return _completion(json.dumps({**verdict, "score": kind}))
    text = json.dumps(verdict)
    match kind:
        case None:
            return _completion(text)
        case Answer.REFUSAL:
            return _completion(None, refusal="I'm sorry, I can't help with evaluating this person.")
        case Answer.TRUNCATED:
            return _completion(text[: len(text) // 2], finish_reason="length")
        case Answer.BLOCKED:
            return _completion(None, finish_reason="content_filter")
        case Answer.PROSE:
            return _completion(f"Sure! Here is my evaluation:\n{text}\nAnything else?")
        case Answer.FENCED:
            return _completion(f"```json\n{text}\n```")
        case Answer.MISSING_SCORE:
            return _completion(json.dumps({"assessment": verdict["assessment"]}))
        case Answer.OUT_OF_RANGE:
            return _completion(json.dumps({**verdict, "score": 150}))
        case Answer.GARBAGE:
            return _completion("This lead looks promising, I would say roughly seven out of ten.")
        case Answer.HTTP_500:
            return _error(500, "server_error", "The server had an error processing your request.")
        case Answer.HTML:
            return Response.html(LOGIN_PAGE, 200)
    assert_never(kind)


def _completion(
    content: str | None, *, finish_reason: str = "stop", refusal: str | None = None
) -> Response:
    return Response.json(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": "fake-model",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish_reason,
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }
    )


def _error(status: int, code: str, message: str) -> Response:
    error = {"message": message, "type": code, "param": None, "code": code}
    return Response.json({"error": error}, status)
