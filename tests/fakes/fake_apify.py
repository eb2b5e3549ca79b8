"""A local Apify for one LinkedIn-posts actor: asynchronous runs, their status and datasets.

Endpoints, as the real API has them (token only in the Authorization header: a token in the URL
gets the same 401 JSON error as a wrong one, so a leak shows up as a failure):

- ``POST /v2/acts/{actor}/runs?maxItems=&timeout=`` with ``{"urls": [...], "maxPosts": n}``
  starts a run (201, ``{"data": {"id", "status": "RUNNING", "defaultDatasetId", ...}}``);
- ``GET /v2/actor-runs/{id}?waitForFinish=s`` answers once the run finished, or after ``s``
  seconds (at most 60) with it still RUNNING;
- ``POST /v2/actor-runs/{id}/abort`` stops it (ABORTED; its dataset stays empty);
- ``GET /v2/datasets/{id}/items?offset=&limit=`` pages the items of a run that SUCCEEDED.

A run takes ``run_start_seconds`` plus ``seconds_per_profile`` for each of its profiles
(``set_profile_seconds`` changes that for one profile), on the
clock of this process, so runs overlap as they do at Apify; ``max_concurrent_runs`` is the most
that were running at once. Past its ``timeout`` a run ends TIMED-OUT; ``end_next_runs`` makes
the next runs end with another status at once (``TIMED-OUT``, ``FAILED``, ``ABORTED``).

``set_posts(profile_url, posts)`` stores a profile's posts; a run returns the stored posts of the
requested URLs (exact spelling), at most ``maxPosts`` each and ``maxItems`` in all. Items are
rendered in three key shapes taken in turn (Apify-store sample, camelCase, and one with
``inputUrl``, an epoch-millisecond timestamp and comments as a list), so that the client's
tolerant mapping is exercised on every run; ``set_extra_items`` adds raw items of any shape.
``LOGIN_PAGE`` is a ready-made answer for ``fail_next``.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from fakes.server import FakeService, Request, Response
from smart_resume.integrations.apify import Post

__all__ = ["DEFAULT_ACTOR", "DEFAULT_TOKEN", "LOGIN_PAGE", "FakeApify"]

DEFAULT_TOKEN = "apify_api_FAKE0123456789abcdef"
DEFAULT_ACTOR = "fake-user~linkedin-posts"
MAX_WAIT_SECONDS = 60
_START = re.compile(r"/v2/acts/([^/]+)/runs")
_RUN = re.compile(r"/v2/actor-runs/([^/]+)")
_ABORT = re.compile(r"/v2/actor-runs/([^/]+)/abort")
_ITEMS = re.compile(r"/v2/datasets/([^/]+)/items")

LOGIN_PAGE = Response.html(
    "<!DOCTYPE html>\n<html><head><title>Log in | Apify</title></head>\n"
    '<body><h1>Log in to Apify</h1><form action="/sign-in"></form></body></html>',
    200,
)


@dataclasses.dataclass
class FakeRun:
    id: str
    urls: list[str]
    items: list[Any]
    started_at: float
    ends_at: float
    final_status: str
    """What it becomes at ``ends_at`` (SUCCEEDED unless timed out or scripted)."""
    aborted_at: float | None = None

    def status(self, now: float) -> str:
        if self.aborted_at is not None:
            return "ABORTED"
        return self.final_status if now >= self.ends_at else "RUNNING"

    def ended_at(self) -> float:
        return self.ends_at if self.aborted_at is None else min(self.ends_at, self.aborted_at)


class FakeApify(FakeService):
    """Args: token: the only token accepted; actor_id: the only actor that exists;
    seconds_per_profile / run_start_seconds: how long a run takes."""

    name = "fake-apify"

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        actor_id: str = DEFAULT_ACTOR,
        latency_seconds: float = 0.0,
        seconds_per_profile: float = 0.0,
        run_start_seconds: float = 0.0,
    ) -> None:
        super().__init__(latency_seconds=latency_seconds)
        self.token = token
        self.actor_id = actor_id
        self.seconds_per_profile = seconds_per_profile
        self.run_start_seconds = run_start_seconds
        self.runs: dict[str, FakeRun] = {}
        self._posts: dict[str, list[Post]] = {}
        self._extra_items: dict[str, list[Any]] = {}
        self._profile_seconds: dict[str, float] = {}
        self._scripted_ends: list[str] = []
        self._changed = threading.Condition()
        self._ids = itertools.count(1)

    def set_posts(self, profile_url: str, posts: Sequence[Post]) -> None:
        """Store the posts returned for ``profile_url`` (replacing earlier ones)."""
        with self._changed:
            self._posts[profile_url] = list(posts)

    def set_extra_items(self, profile_url: str, items: Sequence[Any]) -> None:
        """Raw items (any JSON) a run for ``profile_url`` returns after its posts."""
        with self._changed:
            self._extra_items[profile_url] = list(items)

    def set_profile_seconds(self, profile_url: str, seconds: float) -> None:
        """How long a run spends on ``profile_url`` (instead of ``seconds_per_profile``)."""
        with self._changed:
            self._profile_seconds[profile_url] = seconds

    def end_next_runs(self, status: str, *, times: int = 1) -> None:
        """The next ``times`` runs started end at once with ``status``."""
        with self._changed:
            self._scripted_ends.extend([status] * times)

    @property
    def started_runs(self) -> list[list[str]]:
        """The profile URLs of each run started, in order."""
        with self._changed:
            return [run.urls for run in self.runs.values()]

    @property
    def aborted_runs(self) -> list[str]:
        with self._changed:
            return [run.id for run in self.runs.values() if run.aborted_at is not None]

    @property
    def max_concurrent_runs(self) -> int:
        """The most runs that were running at the same moment."""
        with self._changed:
            edges = sorted(  # at a tie a start comes first: a run that ends at once still ran
                edge
                for run in self.runs.values()
                for edge in ((run.started_at, -1), (run.ended_at(), 1))
            )
        running = most = 0
        for _, step in edges:
            running -= step
            most = max(most, running)
        return most

    def handle(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "token-not-valid", "Authentication token is not valid.")
        path = request.path
        if request.method == "POST" and (route := _START.fullmatch(path)):
            return self._start(route.group(1), request)
        if request.method == "POST" and (route := _ABORT.fullmatch(path)):
            return self._abort(route.group(1))
        if request.method == "GET" and (route := _RUN.fullmatch(path)):
            return self._wait(route.group(1), request)
        if request.method == "GET" and (route := _ITEMS.fullmatch(path)):
            return self._items(route.group(1), request)
        return _error(404, "page-not-found", f"no route {request.method} {path}")

    def _start(self, actor: str, request: Request) -> Response:
        if unquote(actor) != self.actor_id:
            return _error(404, "record-not-found", "Actor was not found")
        run_input = request.json()
        urls = run_input.get("urls") if isinstance(run_input, dict) else None
        max_posts = run_input.get("maxPosts") if isinstance(run_input, dict) else None
        if not isinstance(urls, list) or not isinstance(max_posts, int):
            return _error(400, "invalid-input", "Input needs urls (array) and maxPosts (integer)")
        now = time.monotonic()
        timeout = float(request.param("timeout") or "inf")
        with self._changed:
            duration = self.run_start_seconds + sum(
                self._profile_seconds.get(url, self.seconds_per_profile) for url in urls
            )
            found = [(url, post) for url in urls for post in self._posts.get(url, [])[:max_posts]]
            shapes = itertools.cycle(_SHAPES)
            items = [next(shapes)(post, url) for url, post in found]
            items += [item for url in urls for item in self._extra_items.get(url, [])]
            max_items = request.param("maxItems")
            scripted = self._scripted_ends.pop(0) if self._scripted_ends else None
            if scripted is not None:
                final, ends_at = scripted, now
            elif duration > timeout:
                final, ends_at = "TIMED-OUT", now + timeout
            else:
                final, ends_at = "SUCCEEDED", now + duration
            run = FakeRun(
                id=f"FakeRun{next(self._ids):05d}",
                urls=list(urls),
                items=items[: int(max_items)] if max_items else items,
                started_at=now,
                ends_at=ends_at,
                final_status=final,
            )
            self.runs[run.id] = run
        return Response.json({"data": _render(run, now)}, 201)

    def _wait(self, run_id: str, request: Request) -> Response:
        wait = min(MAX_WAIT_SECONDS, float(request.param("waitForFinish") or 0))
        deadline = time.monotonic() + wait
        with self._changed:
            run = self.runs.get(run_id)
            if run is None:
                return _error(404, "record-not-found", "Actor run was not found")
            while (now := time.monotonic()) < deadline and run.status(now) == "RUNNING":
                self._changed.wait(min(deadline, run.ends_at) - now)
            return Response.json({"data": _render(run, time.monotonic())})

    def _abort(self, run_id: str) -> Response:
        with self._changed:
            run = self.runs.get(run_id)
            if run is None:
                return _error(404, "record-not-found", "Actor run was not found")
            now = time.monotonic()
            if run.status(now) == "RUNNING":
                run.aborted_at = now
                run.items = []
                self._changed.notify_all()
            return Response.json({"data": _render(run, now)})

    def _items(self, dataset_id: str, request: Request) -> Response:
        offset = int(request.param("offset") or 0)
        limit = int(request.param("limit") or 1_000_000)
        with self._changed:
            run = next((r for r in self.runs.values() if _dataset_id(r) == dataset_id), None)
            if run is None:
                return _error(404, "record-not-found", "Dataset was not found")
            page = run.items[offset : offset + limit]
            total = len(run.items)
        headers = (
            ("X-Apify-Pagination-Offset", str(offset)),
            ("X-Apify-Pagination-Limit", str(limit)),
            ("X-Apify-Pagination-Count", str(len(page))),
            ("X-Apify-Pagination-Total", str(total)),
        )
        return dataclasses.replace(Response.json(page), headers=headers)


def _dataset_id(run: FakeRun) -> str:
    return run.id.replace("FakeRun", "FakeDataset")


def _render(run: FakeRun, now: float) -> dict[str, Any]:
    return {
        "id": run.id,
        "actId": "FakeActor01",
        "status": run.status(now),
        "defaultDatasetId": _dataset_id(run),
        "defaultKeyValueStoreId": run.id.replace("FakeRun", "FakeStore"),
    }


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
