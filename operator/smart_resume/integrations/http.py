"""The one HTTP retry policy shared by every adapter (Airtable, AI, Apify, SendGrid).

Policy, in one place:
- connection failures are retried (nothing reached the server);
- read timeouts are *not* retried: a POST may have been applied, and resending it could
  duplicate a record or an actor run;
- 429 (where the caller lists it) is retried for every method: it means nothing was applied;
- 500/502/503/504 are retried with exponential backoff, honouring ``Retry-After``, but a
  non-idempotent request (POST, PATCH) only on a session declared ``idempotent``: a 5xx may
  come after the work was started and billed (an AI completion, an actor run);
- every other status is returned to the caller, who maps it with ``raise_for_status``.

Credentials never reach a message: ``redact`` cuts them out in every spelling (as sent, stripped,
escaped, URL-encoded, and any long enough piece) before a body is cut to a snippet, and
``scrubbed`` drops a cause whose traceback would quote one.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Collection, Iterable
from typing import Any
from urllib.parse import quote, quote_plus

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from smart_resume.core.errors import IntegrationError, PermanentError, TransientError

TRANSIENT_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
SNIPPET_CHARS = 200
REDACTED = "***"
PIECE_CHARS = 8
"""A run of at least this many characters of a credential is redacted wherever it appears."""
_REDACT_SCAN_CHARS = 65536
"""Bodies are redacted this far before being cut to a snippet (an error page is not longer)."""


class _Retry(Retry):
    """urllib3's ``Retry``, except that a listed 429 is resent whatever the method."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429 and 429 in (self.status_forcelist or ()):
            return True  # too many requests: the server did not process this one
        return super().is_retry(method, status_code, has_retry_after)


def retry_policy(
    *,
    idempotent: bool = False,
    total: int = 5,
    backoff_factor: float = 0.5,
    statuses: Collection[int] = (500, 502, 503, 504),
) -> Retry:
    """The urllib3 ``Retry`` used by every session of this project.

    Args:
        idempotent: every request of the session may be sent twice without doing its work twice
            (Airtable's reads and upserts). If false (the default), a POST or PATCH answered with
            a 5xx is not resent; GET, PUT, DELETE and a 429 still are.
        statuses: the statuses to resend (429 only where listed).
    """
    return _Retry(
        total=total,
        connect=3,
        read=0,
        status_forcelist=tuple(statuses),
        allowed_methods=None if idempotent else Retry.DEFAULT_ALLOWED_METHODS,
        backoff_factor=backoff_factor,
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def build_session(retry: Retry | None = None, *, connections: int = 10) -> requests.Session:
    """A ``requests.Session`` with ``retry`` (default: ``retry_policy()``, which resends no
    non-idempotent request after a 5xx) mounted for http and https.

    ``connections`` sizes the pool per host: at least the number of requests sent in parallel,
    or connections are opened and thrown away.
    """
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry or retry_policy(), pool_maxsize=connections)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def snippet(text: str, limit: int = SNIPPET_CHARS, *, secrets: Iterable[str] = ()) -> str:
    """A one-line, bounded excerpt of a response body for error messages.

    ``secrets`` are redacted before the cut, so a credential the body echoes cannot straddle it.
    """
    secrets = tuple(secrets)
    if secrets:
        text = redact(text[:_REDACT_SCAN_CHARS], *secrets)
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def secret_forms(secret: str) -> list[str]:
    """The spellings under which ``secret`` can appear in a message, longest first: as sent,
    stripped, escaped by ``repr`` or JSON, and URL-encoded."""
    forms = {
        secret,
        secret.strip(),
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret),
    }
    return sorted((form for form in forms if form), key=len, reverse=True)


def redact(text: str, *secrets: str) -> str:
    """``text`` with every spelling of each secret (``secret_forms``) replaced by ``***``, and
    every run of at least ``PIECE_CHARS`` characters of one (a cut or truncated echo) too."""
    for secret in secrets:
        for form in secret_forms(secret):
            text = text.replace(form, REDACTED)
            if len(form) > PIECE_CHARS:
                text = _redact_pieces(text, form)
    return text


def _redact_pieces(text: str, form: str) -> str:
    pieces = {form[i : i + PIECE_CHARS] for i in range(len(form) - PIECE_CHARS + 1)}
    out: list[str] = []
    start = i = 0
    while i <= len(text) - PIECE_CHARS:
        if text[i : i + PIECE_CHARS] not in pieces:
            i += 1
            continue
        end = i + PIECE_CHARS
        while end < len(text) and text[i : end + 1] in form:
            end += 1
        out += [text[start:i], REDACTED]
        start = i = end
    out.append(text[start:])
    return "".join(out)


def mentions_secret(exc: BaseException, *secrets: str) -> bool:
    """Whether the traceback of ``exc`` (its chain included), as a log would print it, quotes
    any of ``secrets``."""
    printed = "".join(traceback.format_exception(exc))
    return redact(printed, *secrets) != printed


def scrubbed(error: IntegrationError, *secrets: str) -> IntegrationError:
    """``error`` fit to raise and log: its message redacted, and its cause kept only if the
    cause's traceback quotes none of ``secrets``.

    Raise the result outside the ``except`` block that caught ``error`` (so it carries no
    ``__context__`` either), ``from`` its ``__cause__``.
    """
    if not secrets:
        return error
    clean = type(error)(redact(str(error), *secrets), service=error.service, status=error.status)
    cause = error.__cause__
    if cause is not None and not mentions_secret(cause, *secrets):
        clean.__cause__ = cause
    return clean


def raise_for_status(
    response: requests.Response, *, service: str, secrets: Iterable[str] = ()
) -> None:
    """Raise ``TransientError`` or ``PermanentError`` naming status and a body snippet (without
    ``secrets``); pass on 2xx."""
    if response.ok:
        return
    body = snippet(response.text, secrets=secrets)
    message = f"{service} answered HTTP {response.status_code}: {body}"
    error = TransientError if response.status_code in TRANSIENT_STATUSES else PermanentError
    raise error(message, service=service, status=response.status_code)


def json_body(response: requests.Response, *, service: str, secrets: Iterable[str] = ()) -> object:
    """Decode a JSON body; an HTML page or other non-JSON body is a ``PermanentError`` with a
    snippet (without ``secrets``)."""
    try:
        return response.json()
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        kind = response.headers.get("Content-Type", "unknown content type")
        raise PermanentError(
            f"{service} answered HTTP {response.status_code} with {kind}, not JSON: "
            f"{snippet(response.text, secrets=secrets)}",
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
    credential sent with the request, in a header or the URL) is cut out of every message and
    cause (``scrubbed``), since some services and proxies quote the credential they were given
    and requests quotes a header it refuses to send.
    """
    secrets = (secret,) if secret else ()
    try:
        try:
            response = session.request(method, url, **kwargs)
        except requests.RequestException as exc:
            raise TransientError(f"{service} request failed: {exc}", service=service) from exc
        raise_for_status(response, service=service, secrets=secrets)
        body = json_body(response, service=service, secrets=secrets)
        if not isinstance(body, expect):
            raise PermanentError(
                f"{service} answered HTTP {response.status_code} with a JSON "
                f"{type(body).__name__}, not a JSON {expect.__name__}",
                service=service,
                status=response.status_code,
            )
        return body
    except IntegrationError as exc:
        error = scrubbed(exc, *secrets)
    raise error from error.__cause__
