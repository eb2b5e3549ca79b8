"""The integration adapters a task may use, built on first use from the worker's settings."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Final

from urllib3.util.retry import Retry

from smart_resume.config import Settings
from smart_resume.integrations.http import build_session, retry_policy

if TYPE_CHECKING:
    from smart_resume.integrations.ai import ChatClient
    from smart_resume.integrations.airtable import AirtableGateway
    from smart_resume.integrations.apify import ApifyClient

__all__ = ["RETRIED_STATUSES", "Services"]

RETRIED_STATUSES: Final = (429, 500, 502, 503, 504)
"""What the AI and Apify sessions resend. 429 too: both answer it under load (the AI endpoint
above all, with several calls in flight), it means nothing was applied, and urllib3 honours its
Retry-After. The 5xx only for idempotent requests: these sessions are not ``idempotent``, since
a completion or an actor run answered with a 5xx may still have been billed (an Apify run start
is resent on 429 only). (Airtable's 429 needs the per-base penalty instead; its gateway handles
that.)"""


class Services:
    """Lazy: a task that needs only Airtable never builds (or validates) the AI or Apify client.

    Args:
        settings: the worker's settings.
        retry: the HTTP retry policy of the AI and Apify sessions (default: the shared
            ``http.retry_policy`` for ``RETRIED_STATUSES``); tests pass one without backoff.
    """

    def __init__(self, settings: Settings, *, retry: Retry | None = None) -> None:
        self.settings = settings
        self._retry = retry or retry_policy(idempotent=False, statuses=RETRIED_STATUSES)

    @functools.cached_property
    def airtable(self) -> AirtableGateway:
        from smart_resume.integrations.airtable import AirtableGateway

        return AirtableGateway(self.settings.airtable)

    @functools.cached_property
    def ai(self) -> ChatClient:
        from smart_resume.integrations.ai import ChatClient

        connections = max(10, self.settings.ai.concurrency)
        return ChatClient(
            self.settings.ai, session=build_session(self._retry, connections=connections)
        )

    @functools.cached_property
    def apify(self) -> ApifyClient:
        """Raises ``ConfigurationError`` when the actor or the token is not configured."""
        from smart_resume.integrations.apify import START_RETRIED_STATUSES, ApifyClient

        connections = max(10, self.settings.apify.run_concurrency)
        return ApifyClient(
            self.settings.apify,
            session=build_session(self._retry, connections=connections),
            start_session=build_session(
                self._retry.new(status_forcelist=START_RETRIED_STATUSES), connections=connections
            ),
        )
