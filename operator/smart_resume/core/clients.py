"""A tenant of the agency, as the master base's Clients table describes it.

A Clients record is data people type: a record whose Processing Stream is missing or not a whole
number, or whose Client ID another record uses too, still becomes a ``Client``, with ``problem``
saying what is wrong. The worker records that problem for the client and processes nothing for
it; the rest of the stream carries on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from smart_resume.core.spec import MAX_STREAM

UNKNOWN_STREAM = 0
"""``Client.stream`` of a record whose Processing Stream cannot be read."""


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
    problem: str = ""
    """Why the record cannot be processed, for the person who fixes it; empty when it can."""


def stream_number(value: object) -> int | None:
    """A Processing Stream value as a stream number: ``2``, ``2.0`` and ``" 2 "`` are 2;
    missing, fractional, out of 1..64, booleans and text are ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str):
        digits = value.strip()
        value = (
            int(digits) if digits.isascii() and digits.isdecimal() and len(digits) <= 2 else None
        )
    if isinstance(value, int) and 1 <= value <= MAX_STREAM:
        return value
    return None


def with_duplicates_marked(clients: Iterable[Client]) -> list[Client]:
    """One ``Client`` per Client ID, in first-seen order; an ID used by several records gets a
    ``problem`` naming them all, since guessing which record is meant could process the wrong
    base."""
    by_id: dict[str, list[Client]] = {}
    for client in clients:
        by_id.setdefault(client.client_id, []).append(client)
    result = []
    for client_id, records in by_id.items():
        first = records[0]
        if len(records) > 1:
            ids = ", ".join(record.record_id for record in records)
            problem = (
                f"Client ID {client_id!r} is used by {len(records)} Clients records ({ids}); "
                "make it unique"
            )
            first = dataclasses.replace(first, problem=problem)
        result.append(first)
    return result


def for_stream(clients: Iterable[Client], stream: int, streams: Iterable[int]) -> list[Client]:
    """The clients a run's worker for ``stream`` handles: those of the stream, and, in the run's
    first stream only, those whose stream is unknown, so exactly one worker records their
    problem."""
    first = min(streams, default=stream)
    return [
        client
        for client in clients
        if client.stream == stream or (client.stream == UNKNOWN_STREAM and stream == first)
    ]
