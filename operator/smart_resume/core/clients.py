"""A tenant of the agency, as the master base's Clients table describes it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Client:
    client_id: str
    """Stable identifier, e.g. ``acme-recruiting``; keys progress in the run status."""
    name: str
    base_id: str
    """The client's own Airtable base (its Leads table lives there)."""
    stream: int
    record_id: str = ""
    """The client's record in the master Clients table."""
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The remaining master-record fields (scoring criteria, topics, ...)."""
