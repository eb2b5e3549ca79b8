"""Apify: harvest leads' recent LinkedIn posts with one synchronous actor run.

``ApifyClient.harvest_posts`` calls ``run-sync-get-dataset-items`` with ``{"urls": [...],
"maxPosts": n}`` (token in the Authorization header, never in the URL) and hands the items to
``collect_posts``, which maps them into ``Post`` values. LinkedIn post actors share no output
schema, so the mapping accepts the key spellings seen in the wild, attributes each item to one of
the requested profiles, drops duplicates (same URL or URN) and counts the items it cannot use.

This module deliberately does not split large batches (one sync run must finish within Apify's
300 s wait; the caller sizes its batches), does not fall back to the asynchronous run API, and
does not write posts anywhere.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import quote, unquote, urlsplit

import requests

from smart_resume.config import ApifySettings, env_name
from smart_resume.core.errors import ConfigurationError
from smart_resume.integrations.http import build_session, request_json

__all__ = ["SERVICE", "ApifyClient", "Harvest", "Post", "collect_posts"]

SERVICE = "apify"
CONNECT_TIMEOUT_SECONDS = 5.0

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


class ApifyClient:
    """Runs the configured LinkedIn-posts actor synchronously.

    Args:
        settings: Base URL, actor (``username~actor-name``, ``username/actor-name`` or an ID),
            token, posts per lead and read timeout (keep it above Apify's 300 s sync wait).
        session: A session to send with; default ``build_session()`` (the shared retry policy).

    Raises:
        ConfigurationError: if the actor or the token is not configured.
    """

    def __init__(self, settings: ApifySettings, *, session: requests.Session | None = None) -> None:
        for field in ("actor_id", "token"):
            if not getattr(settings, field):
                raise ConfigurationError(f"{env_name('apify', field)} is not set")
        self._settings = settings
        self._session = session or build_session()
        actor = quote(settings.actor_id.replace("/", "~"), safe="")
        self._url = f"{settings.base_url.rstrip('/')}/v2/acts/{actor}/run-sync-get-dataset-items"

    def harvest_posts(self, profile_urls: Sequence[str], max_posts: int | None = None) -> Harvest:
        """Fetch up to ``max_posts`` (default: the settings' per-lead limit) posts per profile.

        Raises:
            ValueError: if ``max_posts`` is below 1, before any request is sent.
            TransientError: 408 run timeout, 429/5xx (after the session's retries), a timeout or a
                dropped connection.
            PermanentError: 401/403 and other 4xx (e.g. a failed run), or a body that is not a JSON
                list, such as an HTML login or error page; the message names status and a snippet.
        """
        if not profile_urls:
            return Harvest(posts={}, skipped={})
        limit = self._settings.max_posts_per_lead if max_posts is None else max_posts
        if limit < 1:
            raise ValueError(f"max_posts must be at least 1, not {limit}")
        items = self._run(list(profile_urls), limit)
        return collect_posts(items, profile_urls, max_posts=limit)

    def _run(self, profile_urls: list[str], max_posts: int) -> list[object]:
        return request_json(  # type: ignore[no-any-return]
            self._session,
            "POST",
            self._url,
            service=SERVICE,
            expect=list,
            secret=self._settings.token.reveal(),
            params={"maxItems": len(profile_urls) * max_posts},  # caps the cost of the run
            json={"urls": profile_urls, "maxPosts": max_posts},
            headers={"Authorization": f"Bearer {self._settings.token.reveal()}"},
            timeout=(CONNECT_TIMEOUT_SECONDS, self._settings.timeout_seconds),
        )


def collect_posts(
    items: Sequence[object], profile_urls: Sequence[str], *, max_posts: int
) -> Harvest:
    """Map actor ``items`` to the ``Post`` values of each requested profile (pure)."""
    requested = {_url_key(url): url for url in profile_urls}
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
    return {_url_key(url), urn} if urn else {_url_key(url)}


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
        if candidate is not None and _url_key(candidate) in requested:
            return requested[_url_key(candidate)]
    if len(requested) == 1:  # asked about one profile, every item is that profile's
        return next(iter(requested.values()))
    return None


def _url_key(url: str) -> str:
    """What identifies a URL here: its host (LinkedIn's folded) and lowercased path, slash-less.

    ``https://www.linkedin.com/in/Jane-Doe/?trk=x`` and ``uk.linkedin.com/in/jane-doe`` both give
    ``linkedin.com/in/jane-doe``.
    """
    parts = urlsplit(url if "://" in url else "https://" + url)
    host = parts.hostname or ""
    host = "linkedin.com" if host.endswith(".linkedin.com") else host.removeprefix("www.")
    return host + unquote(parts.path).rstrip("/").lower()


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
    if isinstance(value, str) and value.strip().replace(",", "").isdigit():
        return int(value.strip().replace(",", ""))
    return None
