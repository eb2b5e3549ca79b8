"""Record builders for seeding the fake Airtable, shared by the tests and the demo."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fakes.fake_airtable import FakeAirtable
from smart_resume.integrations.airtable_fields import (
    ClientRunResultsTable,
    ClientsTable,
    ClientStatus,
    JobTrackingTable,
)


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


def add_master_base(
    fake: FakeAirtable, base_id: str, *, extra_client_fields: Iterable[str] = ()
) -> None:
    """The master base's three tables (Clients, Job Tracking, Client Run Results), empty."""
    fake.add_table(
        base_id, ClientsTable.TABLE, fields=[*ClientsTable.field_names(), *extra_client_fields]
    )
    for table in (JobTrackingTable, ClientRunResultsTable):
        fake.add_table(base_id, table.TABLE, fields=table.field_names())
