"""Record builders for seeding the fake Airtable, shared by the tests and the demo."""

from __future__ import annotations

from typing import Any

from smart_resume.integrations.airtable_fields import ClientsTable, ClientStatus


def client_record(
    client_id: str, *, name: str, stream: int, base_id: str, **fields: Any
) -> dict[str, Any]:
    """An Active client of ``stream`` in the master Clients table; ``fields`` add or override."""
    return {
        ClientsTable.CLIENT_ID: client_id,
        ClientsTable.CLIENT_NAME: name,
        ClientsTable.STATUS: ClientStatus.ACTIVE,
        ClientsTable.PROCESSING_STREAM: stream,
        ClientsTable.AIRTABLE_BASE_ID: base_id,
        **fields,
    }
