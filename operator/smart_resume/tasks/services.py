"""The integration adapters a task may use, built on first use from the worker's settings."""

from __future__ import annotations

import functools
from typing import Any

from smart_resume.config import Settings


class Services:
    """Lazy: a task that needs only Airtable never builds (or validates) the AI or Apify client."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @functools.cached_property
    def airtable(self) -> Any:
        from smart_resume.integrations.airtable import AirtableGateway

        return AirtableGateway(self.settings.airtable)
