"""The project's exception tree.

    SmartResumeError
    ├── ConfigurationError        bad settings or task registry; raised before any work starts
    └── IntegrationError          a remote service answered badly or not at all
        ├── TransientError        worth retrying later (5xx, 429, timeouts, connection errors)
        └── PermanentError        retrying will not help (401/403, 422, malformed answers)

Adapters raise these ``from`` the library exception; only the kopf handlers translate them into
``kopf.TemporaryError`` / ``kopf.PermanentError``.
"""

from __future__ import annotations


class SmartResumeError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigurationError(SmartResumeError):
    """Raised when settings, a task name or a plugin hook is invalid."""


class IntegrationError(SmartResumeError):
    """Raised when Airtable, the AI endpoint, Apify or the mail service fails."""

    def __init__(self, message: str, *, service: str, status: int | None = None) -> None:
        super().__init__(message)
        self.service = service
        self.status = status


class TransientError(IntegrationError):
    """Raised for failures that may pass: HTTP 5xx, 408, 429, timeouts, dropped connections."""


class PermanentError(IntegrationError):
    """Raised for failures that retrying cannot fix: bad credentials, unknown fields, bad
    payloads."""
