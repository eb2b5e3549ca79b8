"""Apify: harvest leads' recent LinkedIn posts with one asynchronous actor run per batch.

``ApifyClient.harvest_posts`` starts the actor (``POST /v2/acts/{actor}/runs`` with
``{"urls": [...], "maxPosts": n}``, token in the Authorization header, never in the URL), waits
for the run with ``GET /v2/actor-runs/{id}?waitForFinish=`` polls of ``wait_seconds`` (at most
Apify's 60), pages the run's dataset (``GET /v2/datasets/{id}/items?offset=&limit=``) and hands
the items to ``collect_posts``, which maps them into ``Post`` values. LinkedIn post actors share
no output schema, so the mapping accepts the key spellings seen in the wild, attributes each item
to one of the requested profiles, drops duplicates (same URL or URN) and counts the items it
cannot use; no item, however malformed, makes it raise.

A run the caller no longer waits for is aborted (``POST /v2/actor-runs/{id}/abort``): when the
caller's ``cancelled`` event is set, and when a poll fails (a 408, an error after the retries).
Starting a run is billable, so the start request is never resent after a 5xx or a read timeout
(Apify may have started the run); only a 429 (nothing started) and connection failures are.

This module deliberately does not split batches (the caller sizes them and halves a batch whose
run timed out), does not run several actor runs at once (the caller does, one thread each) and
does not write posts anywhere. Apify's own ``apify-client`` is not used: its retries resend every
request on 5xx, and swapping its transport for the project's retry policy leaves little of it.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar
from urllib.parse import quote, unquote, urlsplit

import requests

from smart_resume.config import ApifySettings, env_name
from smart_resume.core.errors import (
    ConfigurationError,
    IntegrationError,
    PermanentError,
    TransientError,
)
from smart_resume.integrations.http import build_session, request_json, retry_policy, snippet

__all__ = [
    "SERVICE",
    "ApifyClient",
    "Harvest",
    "Post",
    "Run",
    "collect_posts",
    "profile_key",
]

SERVICE: Final = "apify"
CONNECT_TIMEOUT_SECONDS: Final = 5.0
MAX_WAIT_SECONDS: Final = 60
"""The longest ``waitForFinish`` Apify holds a request for."""
DATASET_PAGE_ITEMS: Final = 1000
START_RETRIED_STATUSES: Final = (429,)
"""What a run start may resend: a 429 started nothing, a 5xx may have started (and billed) a run."""
STATUS_RUN_TIMEOUT: Final = 408
"""The status of the ``TransientError`` for a run that timed out (Apify's own code for it)."""
FINISHED: Final = frozenset({"SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED"})

_log = logging.getLogger(__name__)

_URL_KEYS = ("url", "postUrl", "linkedinUrl", "post_url")
_URN_KEYS = ("urn", "postUrn", "entityUrn")
_TEXT_KEYS = ("text", "content", "postText")
_POSTED_AT_KEYS = (
    "posted_at.date",
    "posted_at.timestamp",
    "postedAt.date",
    "postedAt",
    "date",
    "timestamp",
)
_AUTHOR_KEYS = ("author.profile_url", "author.profileUrl", "authorProfileUrl", "profileUrl")
_INPUT_KEYS = ("inputUrl",)
_REACTION_KEYS = (
    "stats.total_reactions",
    "numLikes",
    "likesCount",
    "reactions",
    "totalReactionCount",
)
_COMMENT_KEYS = ("stats.comments", "numComments", "commentsCount", "comments")

_MAX_COUNT_DIGITS = 18  # int() refuses strings of over 4,300 digits; no count has 19
_EPOCH_MILLISECONDS_FROM = 10**11  # as epoch seconds this is the year 5138
_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True)
class Post:
    """One LinkedIn post, whatever key spelling the actor used for it."""

    url: str
    text: str
    posted_at: str
    """As the actor reports it (ISO 8601 when it gave an epoch timestamp); ``""`` when unknown."""
    author_profile_url: str
    """Who wrote it; for a repost that is not the lead whose feed it came from."""
    reactions: int = 0
    comments: int = 0


@dataclasses.dataclass(frozen=True)
class Harvest:
    """The posts of one actor run, and the count of items that could not be used."""

    posts: dict[str, list[Post]]
    """Per requested profile URL, spelled as requested (each one present), ``max_posts`` at most."""
    skipped: dict[str, int]
    """Reason code -> items dropped: ``apify_item_not_object``, ``apify_item_no_url``,
    ``apify_item_no_text``, ``apify_item_unattributed``. Duplicates are not counted."""


@dataclasses.dataclass(frozen=True)
class Run:
    """An actor run as Apify reports it."""

    id: str
    status: str
    """``READY``, ``RUNNING``, ``TIMING-OUT``, ``ABORTING`` or one of ``FINISHED``."""
    dataset_id: str


class ApifyClient:
    """Runs the configured LinkedIn-posts actor asynchronously; thread-safe.

    Args:
        settings: Base URL, actor (``username~actor-name``, ``username/actor-name`` or an ID),
            token, posts per lead, run timeout, poll hold and read timeout.
        session: Sends the polls, aborts and dataset pages (requests that may be resent);
            default ``build_session()`` (the shared retry policy).
        start_session: Sends run starts; default: the shared policy resending only
            ``START_RETRIED_STATUSES``.

    Raises:
        ConfigurationError: if the actor or the token is not configured.
    """

    def __init__(
        self,
        settings: ApifySettings,
        *,
        session: requests.Session | None = None,
        start_session: requests.Session | None = None,
    ) -> None:
        for field in ("actor_id", "token"):
            if not getattr(settings, field):
                raise ConfigurationError(f"{env_name('apify', field)} is not set")
        self._settings = settings
        self._session = session or build_session()
        self._start_session = start_session or build_session(
            retry_policy(statuses=START_RETRIED_STATUSES)
        )
        self._api = f"{settings.base_url.rstrip('/')}/v2"
        self._actor = quote(settings.actor_id.replace("/", "~"), safe="")

    def harvest_posts(
        self,
        profile_urls: Sequence[str],
        max_posts: int | None = None,
        *,
        cancelled: threading.Event | None = None,
    ) -> Harvest | None:
        """Fetch up to ``max_posts`` (default: the settings' per-lead limit) posts per profile.

        Returns:
            The harvest, or None when ``cancelled`` was set before the run finished: the run was
            aborted (or never started) and nothing it found is used.

        Raises:
            ValueError: if ``max_posts`` is below 1, before any request is sent.
            TransientError: the run timed out (status ``STATUS_RUN_TIMEOUT``), was aborted by
                someone else, or a request failed with 408, 429/5xx (after the retries; never
                for the start), a timeout or a dropped connection.
            PermanentError: 401/403 and other 4xx, a run that FAILED, or a body that is not the
                JSON expected, such as an HTML login or error page (status and a snippet).
        """
        if not profile_urls:
            return Harvest(posts={}, skipped={})
        limit = self._settings.max_posts_per_lead if max_posts is None else max_posts
        if limit < 1:
            raise ValueError(f"max_posts must be at least 1, not {limit}")
        if cancelled is not None and cancelled.is_set():
            return None
        run = self.start_run(list(profile_urls), limit)
        try:
            while run.status not in FINISHED:
                if cancelled is not None and cancelled.is_set():
                    self._abort_quietly(run.id)
                    return None
                run = self.wait_run(run.id)
        except BaseException:
            self._abort_quietly(run.id)
            raise
        _raise_unless_succeeded(run)
        return collect_posts(self.dataset_items(run.dataset_id), profile_urls, max_posts=limit)

    def start_run(self, profile_urls: Sequence[str], max_posts: int) -> Run:
        """Start one actor run for these profiles; never resent once it may have started."""
        body = self._call(
            self._start_session,
            "POST",
            f"/acts/{self._actor}/runs",
            params={
                "maxItems": len(profile_urls) * max_posts,  # caps the cost of the run
                "timeout": self._settings.run_timeout_seconds,
            },
            json={"urls": list(profile_urls), "maxPosts": max_posts},
        )
        return _run_from(body)

    def wait_run(self, run_id: str) -> Run:
        """The run once it finished, or after ``wait_seconds`` if it is still going."""
        wait = max(0, min(MAX_WAIT_SECONDS, self._settings.wait_seconds))
        body = self._call(
            self._session,
            "GET",
            f"/actor-runs/{quote(run_id, safe='')}",
            params={"waitForFinish": wait},
            read_timeout=wait + self._settings.timeout_seconds,
        )
        return _run_from(body)

    def abort_run(self, run_id: str) -> Run:
        """Ask Apify to stop the run (harmless when it already finished)."""
        body = self._call(self._session, "POST", f"/actor-runs/{quote(run_id, safe='')}/abort")
        return _run_from(body)

    def dataset_items(self, dataset_id: str) -> list[object]:
        """Every item of a dataset, ``DATASET_PAGE_ITEMS`` per request."""
        items: list[object] = []
        while True:
            page: list[object] = self._call(
                self._session,
                "GET",
                f"/datasets/{quote(dataset_id, safe='')}/items",
                params={"offset": len(items), "limit": DATASET_PAGE_ITEMS, "clean": "true"},
                expect=list,
            )
            items.extend(page)
            if len(page) < DATASET_PAGE_ITEMS:
                return items

    def _abort_quietly(self, run_id: str) -> None:
        try:
            self.abort_run(run_id)
        except IntegrationError as exc:
            _log.warning(
                "could not abort an Apify run", extra={"run_id": run_id, "error": str(exc)}
            )

    def _call(
        self,
        session: requests.Session,
        method: str,
        path: str,
        *,
        expect: type[dict[str, Any]] | type[list[Any]] = dict,
        read_timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        token = self._settings.token.reveal()
        return request_json(
            session,
            method,
            self._api + path,
            service=SERVICE,
            expect=expect,
            secret=token,
            headers={"Authorization": f"Bearer {token}"},
            timeout=(CONNECT_TIMEOUT_SECONDS, read_timeout or self._settings.timeout_seconds),
            **kwargs,
        )


def _run_from(body: Mapping[str, Any]) -> Run:
    data = body.get("data")
    if isinstance(data, Mapping):
        run_id, status = data.get("id"), data.get("status")
        dataset_id = data.get("defaultDatasetId")
        if isinstance(run_id, str) and isinstance(status, str) and isinstance(dataset_id, str):
            return Run(id=run_id, status=status, dataset_id=dataset_id)
    raise PermanentError(
        f"{SERVICE} answered with no run object: {snippet(str(body))}", service=SERVICE
    )


def _raise_unless_succeeded(run: Run) -> None:
    message = f"{SERVICE} actor run {run.id} ended {run.status}"
    if run.status == "TIMED-OUT":
        raise TransientError(message, service=SERVICE, status=STATUS_RUN_TIMEOUT)
    if run.status == "ABORTED":
        raise TransientError(message, service=SERVICE)
    if run.status != "SUCCEEDED":
        raise PermanentError(message, service=SERVICE)


def profile_key(url: str) -> str | None:
    """What identifies a profile URL: its host (LinkedIn's folded) and lowercased path, slash-less;
    None for a URL that cannot be parsed or names no host.

    ``https://www.linkedin.com/in/Jane-Doe/?trk=x`` and ``uk.linkedin.com/in/jane-doe`` both give
    ``linkedin.com/in/jane-doe``; ``https://www.linkedin.com]/in/x`` gives None.
    """
    try:
        parts = urlsplit(url if "://" in url else "https://" + url)
        host = parts.hostname or ""
    except ValueError:  # e.g. an unbalanced "[" or "]" in the host
        return None
    if not host:
        return None
    host = "linkedin.com" if host.endswith(".linkedin.com") else host.removeprefix("www.")
    return host + unquote(parts.path).rstrip("/").lower()


def collect_posts(
    items: Sequence[object], profile_urls: Sequence[str], *, max_posts: int
) -> Harvest:
    """Map actor ``items`` to the ``Post`` values of each requested profile (pure)."""
    requested = {key: url for url in profile_urls if (key := profile_key(url)) is not None}
    posts: dict[str, list[Post]] = {url: [] for url in profile_urls}
    skipped: collections.Counter[str] = collections.Counter()
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, Mapping):
            skipped["apify_item_not_object"] += 1
            continue
        url = _pick(item, _URL_KEYS, _text)
        text = _pick(item, _TEXT_KEYS, _text)
        owner = _owner(item, requested)
        if url is None:
            skipped["apify_item_no_url"] += 1
        elif text is None:
            skipped["apify_item_no_text"] += 1
        elif owner is None:
            skipped["apify_item_unattributed"] += 1
        elif not _identities(item, url) & seen:
            seen |= _identities(item, url)
            if len(posts[owner]) < max_posts:
                posts[owner].append(_post(item, url, text, owner))
    return Harvest(posts=posts, skipped=dict(skipped))


def _identities(item: Mapping[str, object], url: str) -> set[str]:
    """The keys a post is known by: its URL and, when the actor gives one, its URN."""
    urn = _pick(item, _URN_KEYS, _text)
    key = profile_key(url) or url
    return {key, urn} if urn else {key}


def _post(item: Mapping[str, object], url: str, text: str, owner: str) -> Post:
    return Post(
        url=url,
        text=text,
        posted_at=_pick(item, _POSTED_AT_KEYS, _moment) or "",
        author_profile_url=_pick(item, _AUTHOR_KEYS + _INPUT_KEYS, _text) or owner,
        reactions=_pick(item, _REACTION_KEYS, _count) or 0,
        comments=_pick(item, _COMMENT_KEYS, _count) or 0,
    )


def _owner(item: Mapping[str, object], requested: Mapping[str, str]) -> str | None:
    """The requested profile an item came from, spelled as requested."""
    # inputUrl first: it names the profile the actor was asked about, even for a repost.
    for path in _INPUT_KEYS + _AUTHOR_KEYS:
        candidate = _pick(item, (path,), _text)
        key = None if candidate is None else profile_key(candidate)
        if key is not None and key in requested:
            return requested[key]
    if len(requested) == 1:  # asked about one profile, every item is that profile's
        return next(iter(requested.values()))
    return None


def _pick(
    item: Mapping[str, object], paths: Sequence[str], convert: Callable[[object], _T | None]
) -> _T | None:
    """The first value along ``paths`` (dotted for nesting) that ``convert`` accepts."""
    for path in paths:
        value: object = item
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        converted = convert(value)
        if converted is not None:
            return converted
    return None


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _moment(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _text(value)
    seconds = value / 1000 if value >= _EPOCH_MILLISECONDS_FROM else value
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return None


def _count(value: object) -> int | None:
    if isinstance(value, list):  # some actors return the comments themselves
        return len(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and 0 <= value < math.inf:
        return int(value)
    digits = value.strip().replace(",", "") if isinstance(value, str) else ""
    if digits.isdecimal() and len(digits) <= _MAX_COUNT_DIGITS:  # isdigit() passes "²"
        return int(digits)
    return None
