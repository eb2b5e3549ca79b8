"""The one HTTP retry policy shared by every adapter (Airtable, AI, Apify, SendGrid).

Policy, in one place:
- connection failures are retried (nothing reached the server);
- read timeouts are *not* retried: a POST may have been applied, and resending it could
  duplicate a record or an actor run;
- 500/502/503/504 (and 429 where the caller wants urllib3 to handle it) are retried with
  exponential backoff, honouring ``Retry-After``;
- every other status is returned to the caller, who maps it with ``raise_for_status``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from smart_resume.core.errors import IntegrationError, PermanentError, TransientError

TRANSIENT_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
SNIPPET_CHARS = 200


def retry_policy(
    *,
    total: int = 5,
    backoff_factor: float = 0.5,
    statuses: Collection[int] = (500, 502, 503, 504),
) -> Retry:
    """The urllib3 ``Retry`` used by every session of this project."""
    return Retry(
        total=total,
        connect=3,
        read=0,
        status_forcelist=tuple(statuses),
        allowed_methods=None,  # retry POST too: only statuses that mean "not applied" are listed
        backoff_factor=backoff_factor,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def build_session(retry: Retry | None = None, *, connections: int = 10) -> requests.Session:
    """A ``requests.Session`` with ``retry`` (default: ``retry_policy()``) mounted for http and
    https.

    ``connections`` sizes the pool per host: at least the number of requests sent in parallel,
    or connections are opened and thrown away.
    """
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry or retry_policy(), pool_maxsize=connections)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """A one-line, bounded excerpt of a response body for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def raise_for_status(response: requests.Response, *, service: str) -> None:
    """Raise ``TransientError`` or ``PermanentError`` naming status and a body snippet; pass on
    2xx."""
    if response.ok:
        return
    message = f"{service} answered HTTP {response.status_code}: {snippet(response.text)}"
    error = TransientError if response.status_code in TRANSIENT_STATUSES else PermanentError
    raise error(message, service=service, status=response.status_code)


def json_body(response: requests.Response, *, service: str) -> object:
    """Decode a JSON body; an HTML page or other non-JSON body is a ``PermanentError`` with a
    snippet."""
    try:
        return response.json()
    except ValueError as exc:
        kind = response.headers.get("Content-Type", "unknown content type")
        raise PermanentError(
            f"{service} answered HTTP {response.status_code} with {kind}, not JSON: "
            f"{snippet(response.text)}",
            service=service,
            status=response.status_code,
        ) from exc


def request_json(
    session: requests.Session,
    method: str,
    url: str,
    *,
    service: str,
    expect: type[dict[str, Any]] | type[list[Any]],
    secret: str = "",
    **kwargs: Any,
) -> Any:
    """Send one request and return its JSON body, which must be an ``expect`` (object or list).

    Transport failures are ``TransientError`` (a read timeout is not resent: see ``retry_policy``);
    statuses and bodies are mapped by ``raise_for_status`` and ``json_body``. ``secret`` (the
    credential sent with the request) is cut out of every message, since some services and
    proxies quote the credential they were given.
    """
    try:
        try:
            response = session.request(method, url, **kwargs)
        except requests.RequestException as exc:
            raise TransientError(f"{service} request failed: {exc}", service=service) from exc
        raise_for_status(response, service=service)
        body = json_body(response, service=service)
        if not isinstance(body, expect):
            raise PermanentError(
                f"{service} answered HTTP {response.status_code} with a JSON "
                f"{type(body).__name__}, not a JSON {expect.__name__}",
                service=service,
                status=response.status_code,
            )
        return body
    except IntegrationError as exc:
        if not secret or secret not in str(exc):
            raise
        redacted = type(exc)(
            str(exc).replace(secret, "***"), service=exc.service, status=exc.status
        )
        raise redacted from exc.__cause__
