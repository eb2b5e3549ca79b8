"""A local Apify ``run-sync-get-dataset-items`` endpoint for one LinkedIn-posts actor.

``set_posts(profile_url, posts)`` stores a profile's posts; a run with ``{"urls": [...],
"maxPosts": n}`` returns the stored posts of the requested URLs (exact spelling), at most ``n``
each and ``maxItems`` in all, with status 201 like the real API. Items are rendered in three key
shapes taken in turn across the response (Apify-store sample, camelCase, and one with
``inputUrl``, an epoch-millisecond timestamp and comments as a list), so that the client's
tolerant mapping is exercised on every run.

It accepts the token only in the Authorization header: a token in the URL gets the same 401 JSON
error as a wrong one, so a leak shows up as a failure. ``RUN_TIMEOUT``, ``RUN_FAILED`` and
``LOGIN_PAGE`` are ready-made answers for ``fail_next``. It deliberately models no asynchronous
runs, datasets or pagination.
"""

from __future__ import annotations

import itertools
import re
import threading
import zlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from fakes.server import FakeService, Request, Response
from smart_resume.integrations.apify import Post

__all__ = ["DEFAULT_ACTOR", "DEFAULT_TOKEN", "LOGIN_PAGE", "RUN_FAILED", "RUN_TIMEOUT", "FakeApify"]

DEFAULT_TOKEN = "apify_api_FAKE0123456789abcdef"
DEFAULT_ACTOR = "fake-user~linkedin-posts"
_PATH = re.compile(r"/v2/acts/([^/]+)/run-sync-get-dataset-items")

RUN_TIMEOUT = Response.json(
    {
        "error": {
            "type": "run-timeout-exceeded",
            "message": "Actor run exceeded timeout of 300 seconds for this API endpoint",
        }
    },
    408,
)
RUN_FAILED = Response.json(
    {
        "error": {
            "type": "run-failed",
            "message": "Actor run did not succeed (run ID: FakeRun01, status: FAILED)",
        }
    },
    400,
)
LOGIN_PAGE = Response.html(
    "<!DOCTYPE html>\n<html><head><title>Log in | Apify</title></head>\n"
    '<body><h1>Log in to Apify</h1><form action="/sign-in"></form></body></html>',
    200,
)


class FakeApify(FakeService):
    """Args: token: the only token accepted; actor_id: the only actor that exists."""

    name = "fake-apify"

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        actor_id: str = DEFAULT_ACTOR,
        latency_seconds: float = 0.0,
    ) -> None:
        super().__init__(latency_seconds=latency_seconds)
        self.token = token
        self.actor_id = actor_id
        self._posts: dict[str, list[Post]] = {}
        self._posts_lock = threading.Lock()

    def set_posts(self, profile_url: str, posts: Sequence[Post]) -> None:
        """Store the posts returned for ``profile_url`` (replacing earlier ones)."""
        with self._posts_lock:
            self._posts[profile_url] = list(posts)

    def handle(self, request: Request) -> Response:
        route = _PATH.fullmatch(request.path)
        if request.method != "POST" or route is None:
            return _error(404, "page-not-found", f"no route {request.method} {request.path}")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "token-not-valid", "Authentication token is not valid.")
        if unquote(route.group(1)) != self.actor_id:
            return _error(404, "record-not-found", "Actor was not found")
        run_input = request.json()
        urls = run_input.get("urls") if isinstance(run_input, dict) else None
        max_posts = run_input.get("maxPosts") if isinstance(run_input, dict) else None
        if not isinstance(urls, list) or not isinstance(max_posts, int):
            return _error(400, "invalid-input", "Input needs urls (array) and maxPosts (integer)")
        with self._posts_lock:
            found = [(url, post) for url in urls for post in self._posts.get(url, [])[:max_posts]]
        shapes = itertools.cycle(_SHAPES)
        items = [next(shapes)(post, url) for url, post in found]
        max_items = request.param("maxItems")
        return Response.json(items[: int(max_items)] if max_items else items, status=201)


def _store_sample(post: Post, requested_url: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "url": post.url,
        "urn": f"urn:li:activity:{zlib.crc32(post.url.encode())}",
        "text": post.text,
        "author": {"first_name": "Fake", "profile_url": post.author_profile_url},
        "stats": {"total_reactions": post.reactions, "comments": post.comments, "reposts": 0},
    }
    if post.posted_at:
        item["posted_at"] = {"date": post.posted_at}
    return item


def _camel_case(post: Post, requested_url: str) -> dict[str, Any]:
    return {
        "postUrl": post.url,
        "postText": post.text,
        "postedAt": post.posted_at,
        "authorProfileUrl": post.author_profile_url,
        "numLikes": post.reactions,
        "numComments": post.comments,
    }


def _input_url(post: Post, requested_url: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "linkedinUrl": post.url,
        "content": post.text,
        "inputUrl": requested_url,
        "author": {"profileUrl": post.author_profile_url},
        "likesCount": post.reactions,
        "comments": [{"text": f"comment {n}"} for n in range(post.comments)],
    }
    try:
        item["timestamp"] = int(datetime.fromisoformat(post.posted_at).timestamp() * 1000)
    except ValueError:  # not ISO 8601 (or empty): passed on as text
        item["date"] = post.posted_at
    return item


_Shape = Callable[[Post, str], dict[str, Any]]
_SHAPES: tuple[_Shape, ...] = (_store_sample, _camel_case, _input_url)


def _error(status: int, kind: str, message: str) -> Response:
    return Response.json({"error": {"type": kind, "message": message}}, status)
