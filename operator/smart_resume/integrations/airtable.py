"""The project's one door to Airtable: the master base's Clients table and every client's base.

``AirtableGateway`` is a thin adapter over pyairtable's ``Api``/``Table`` (one ``Api`` for all
bases) that adds what pyairtable leaves out:

- pacing: every request on the wire (each page, each 10-record chunk) first takes a turn from
  the process-wide per-base ``RequestPacer``;
- the 429 penalty: a 429 makes every caller for that base wait the penalty (30 s), then the same
  request is sent again, a bounded number of times (a 429 means nothing was applied, so even a
  POST is safe to resend);
- the shared retry policy (``http.retry_policy``): 500/502/503/504 retried with backoff,
  connection failures retried, read timeouts never resent;
- errors: every library exception becomes our ``TransientError``/``PermanentError`` with the
  status, Airtable's error type and message, and never the API key.

Every formula is built with ``pyairtable.formulas`` (values are quoted and escaped there; client
names contain quotes and apostrophes), which is why ``select`` takes a ``Formula``, not a string.

Deliberately not here: table and field names (``airtable_fields``), what the tasks select or
write, and plain record creation (writes that may be resent go through ``batch_upsert``).
urllib3's own 5xx retries happen below the pacer; their backoff spaces them out.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import requests
from pyairtable import Api
from pyairtable.api.types import RecordDict, UpdateRecordDict, UpsertResultDict
from pyairtable.formulas import EQ, OR, Field, Formula, match
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from smart_resume.config import AirtableSettings, env_name
from smart_resume.core.clients import (
    UNKNOWN_STREAM,
    Client,
    stream_number,
    with_duplicates_marked,
)
from smart_resume.core.errors import (
    ConfigurationError,
    IntegrationError,
    PermanentError,
    TransientError,
)
from smart_resume.core.spec import MAX_STREAM
from smart_resume.integrations import http
from smart_resume.integrations.airtable_fields import ClientsTable, ClientStatus
from smart_resume.integrations.pacing import RequestPacer, shared_pacer

__all__ = ["AirtableGateway", "active_clients_formula", "client_ids_formula"]

SERVICE: Final = "airtable"
RETRIED_STATUSES: Final = (500, 502, 503, 504)
"""429 is left out on purpose: it needs the per-base penalty, which urllib3 cannot apply."""
CONNECT_TIMEOUT_SECONDS: Final = 5
ITERATOR_RESTARTS: Final = 3
"""Times a listing that Airtable dropped between pages is started again."""
RATE_LIMITED_ATTEMPTS: Final = 3
"""Sends of one request while Airtable answers 429 (so up to two penalties are waited out)."""

_log = logging.getLogger(__name__)


class AirtableGateway:
    """Reads and writes Airtable records, paced per base, with errors mapped to ours.

    Thread-safe: one gateway (one HTTP connection pool) can serve all threads of a worker.

    Example:
        >>> gateway = AirtableGateway(Settings.from_env().airtable)
        >>> [client.client_id for client in gateway.active_clients(stream=1)]
        ['acme-recruiting', 'globex']
    """

    def __init__(
        self,
        settings: AirtableSettings,
        *,
        pacer: RequestPacer | None = None,
        rate_limited_attempts: int = RATE_LIMITED_ATTEMPTS,
        on_response: Callable[[int], None] | None = None,
    ) -> None:
        """Prepare the HTTP client; nothing is sent until the first call.

        Args:
            settings: endpoint, key, master base, limits and timeout.
            pacer: defaults to the process-wide pacer for the limits in ``settings``.
            rate_limited_attempts: sends of one request while Airtable answers 429.
            on_response: called with the HTTP status of every answer (e.g. to count them).

        Raises:
            ConfigurationError: the API key or the master base id is missing.
        """
        missing = [
            env_name("airtable", name)
            for name in ("api_key", "master_base_id")
            if not getattr(settings, name)
        ]
        if missing:
            raise ConfigurationError(f"Airtable is not configured: set {', '.join(missing)}")
        self._master_base_id = settings.master_base_id
        self._api_key = settings.api_key.reveal()
        pacer = pacer or shared_pacer(
            settings.requests_per_second_per_base, settings.rate_limit_penalty_seconds
        )
        self._api = _paced_api(settings, pacer, attempts=rate_limited_attempts)
        if on_response is not None:
            observe = on_response
            self._api.session.hooks["response"].append(
                lambda response, *_, **__: observe(response.status_code)
            )

    # -- master base: clients -------------------------------------------------------------------

    def active_clients(self, stream: int) -> list[Client]:
        """The Active clients of ``stream``, ordered by Client ID (the cycle's stable order).

        Sorted here rather than by Airtable, so the order never depends on Airtable's collation.
        """
        formula = active_clients_formula(stream)
        return sorted(self._select_clients(formula), key=lambda client: client.client_id)

    def clients_by_id(self, client_ids: Iterable[str]) -> list[Client]:
        """The clients with these IDs, whatever their status or stream, in the order asked.

        IDs with no client record are left out; the caller decides whether that is an error.
        """
        wanted = list(dict.fromkeys(client_ids))
        if not wanted:
            return []
        by_id = {c.client_id: c for c in self._select_clients(client_ids_formula(wanted))}
        return [by_id[client_id] for client_id in wanted if client_id in by_id]

    def update_client(self, record_id: str, fields: Mapping[str, Any]) -> RecordDict:
        """PATCH one master Clients record (only the given fields change)."""
        with self._mapped_errors(f"update {ClientsTable.TABLE} record {record_id}"):
            return self._api.table(self._master_base_id, ClientsTable.TABLE).update(
                record_id, dict(fields)
            )

    def _select_clients(self, formula: Formula) -> list[Client]:
        return _clients_from(self.select(self._master_base_id, ClientsTable.TABLE, formula=formula))

    @property
    def master_base_id(self) -> str:
        return self._master_base_id

    def check_tables(self, tables: Iterable[str]) -> None:
        """Read one record of each master-base table, so a wrong base, table or key shows up
        at start-up (raises our ``PermanentError`` or ``TransientError``)."""
        for table in tables:
            with self._mapped_errors(f"read {table} in {self._master_base_id}"):
                self._api.table(self._master_base_id, table).first()

    # -- any base -------------------------------------------------------------------------------

    def select(
        self,
        base_id: str,
        table: str,
        *,
        formula: Formula,
        fields: Sequence[str] | None = None,
        max_records: int | None = None,
    ) -> list[RecordDict]:
        """Every record matching ``formula``, following pagination (see ``pages``)."""
        return [
            record
            for page in self.pages(
                base_id, table, formula=formula, fields=fields, max_records=max_records
            )
            for record in page
        ]

    def pages(
        self,
        base_id: str,
        table: str,
        *,
        formula: Formula,
        fields: Sequence[str] | None = None,
        max_records: int | None = None,
    ) -> Iterator[list[RecordDict]]:
        """The records matching ``formula``, one page (up to 100) at a time, each page fetched
        only when the previous one has been consumed, so memory does not grow with the table.

        Airtable may drop a listing between pages (422 ``LIST_RECORDS_ITERATOR_NOT_AVAILABLE``,
        after client inactivity or a server restart): the listing then starts again, up to
        ``ITERATOR_RESTARTS`` times, and records already yielded are left out, so that none is
        handed out (and paid for) twice.

        Args:
            formula: built with ``pyairtable.formulas`` (``match``, ``EQ``, ``AND``, ...).
            fields: return only these fields (default: all non-empty ones).
            max_records: stop after this many records.
        """
        options: dict[str, Any] = {"formula": formula}
        if fields is not None:
            options["fields"] = list(fields)
        if max_records is not None:
            options["max_records"] = max_records
        yielded: set[str] = set()
        for restart in range(ITERATOR_RESTARTS + 1):
            with self._mapped_errors(f"select from {table} in {base_id}"):
                try:
                    for page in self._api.table(base_id, table).iterate(**options):
                        fresh = [record for record in page if record["id"] not in yielded]
                        if max_records is not None:
                            fresh = fresh[: max_records - len(yielded)]
                        yielded.update(record["id"] for record in fresh)
                        if fresh:
                            yield fresh
                    return
                except requests.HTTPError as exc:
                    if restart == ITERATOR_RESTARTS or not _listing_expired(exc):
                        raise
                    _log.warning(
                        "Airtable dropped a listing between pages; listing again",
                        extra={"base_id": base_id, "table": table},
                    )

    def batch_update(
        self, base_id: str, table: str, updates: Sequence[UpdateRecordDict]
    ) -> list[RecordDict]:
        """PATCH records by id (``{"id", "fields"}``), 10 per request."""
        with self._mapped_errors(f"update {len(updates)} records of {table} in {base_id}"):
            return self._api.table(base_id, table).batch_update(list(updates))

    def batch_upsert(
        self,
        base_id: str,
        table: str,
        records: Sequence[Mapping[str, Any]],
        key_fields: Sequence[str],
    ) -> UpsertResultDict:
        """Create or update records matched on ``key_fields``, 10 per request; safe to repeat.

        Args:
            records: the fields of each record; each must hold every key field.
            key_fields: 1 to 3 fields that identify a record (e.g. Run ID).

        Raises:
            ValueError: a record lacks a key field (before any request is sent).
        """
        with self._mapped_errors(f"upsert {len(records)} records of {table} in {base_id}"):
            return self._api.table(base_id, table).batch_upsert(
                [{"fields": dict(fields)} for fields in records], key_fields=list(key_fields)
            )

    @contextlib.contextmanager
    def _mapped_errors(self, action: str) -> Iterator[None]:
        try:
            yield
            return
        except requests.RequestException as exc:
            error = _mapped(exc, action, api_key=self._api_key)
            error.__cause__ = exc
            error = http.scrubbed(error, self._api_key)
        raise error from error.__cause__


def active_clients_formula(stream: int) -> Formula:
    """The Active Clients records of ``stream``."""
    return match({ClientsTable.STATUS: ClientStatus.ACTIVE, ClientsTable.PROCESSING_STREAM: stream})


def client_ids_formula(client_ids: Sequence[str]) -> Formula:
    """The Clients records whose Client ID is one of ``client_ids`` (any text: pyairtable quotes
    it)."""
    return OR(*(EQ(Field(ClientsTable.CLIENT_ID), client_id) for client_id in client_ids))


def _paced_api(settings: AirtableSettings, pacer: RequestPacer, *, attempts: int) -> Api:
    # Idempotent: reads (the POST of a long listRecords too), updates by id and upserts on key
    # fields do the same thing when sent twice.
    retry = http.retry_policy(idempotent=True, statuses=RETRIED_STATUSES)
    api = Api(
        settings.api_key.reveal(),
        endpoint_url=settings.endpoint_url,
        # pyairtable annotates the timeouts as ints; requests takes any number of seconds.
        timeout=(CONNECT_TIMEOUT_SECONDS, settings.timeout_seconds),  # type: ignore[arg-type]
        retry_strategy=retry,
    )
    # Replaces pyairtable's adapter for the endpoint (the longest mounted prefix wins), with the
    # same retry policy, so the pacer sees every request as it goes on the wire: each page, each
    # chunk, and the GET -> POST listRecords switch.
    api.session.mount(
        settings.endpoint_url,
        _PacedAdapter(
            pacer,
            base_url_prefix=f"{settings.endpoint_url.rstrip('/')}/{Api.VERSION}/",
            attempts=attempts,
            max_retries=retry,
        ),
    )
    return api


class _PacedAdapter(HTTPAdapter):
    """Takes a pacer turn before each send; after a 429, penalizes the base and sends again."""

    def __init__(
        self, pacer: RequestPacer, *, base_url_prefix: str, attempts: int, max_retries: Retry
    ) -> None:
        """``base_url_prefix``: the URL up to the base id, e.g. ``https://api.airtable.com/v0/``."""
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        super().__init__(max_retries=max_retries)
        self._pacer = pacer
        self._base_url_prefix = base_url_prefix
        self._attempts = attempts

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        path = str(request.url).removeprefix(self._base_url_prefix)
        base_id = path.split("/", 1)[0].split("?", 1)[0]
        attempt = 1
        while True:
            self._pacer.wait_turn(base_id)
            response = super().send(request, *args, **kwargs)
            if response.status_code != 429:
                return response
            # Penalize even after the last attempt: the other threads must pause too.
            self._pacer.penalize(base_id)
            _log.warning(
                "Airtable rate limit reached; pausing the base",
                extra={"base_id": base_id, "pause_seconds": self._pacer.penalty_seconds},
            )
            if attempt == self._attempts:
                return response
            response.close()
            attempt += 1


def _clients_from(records: Iterable[RecordDict]) -> list[Client]:
    clients = [client for client in map(_client_from, records) if client is not None]
    return with_duplicates_marked(clients)


def _client_from(record: RecordDict) -> Client | None:
    """The client of one Clients record; a record that cannot be processed gets a ``problem``
    naming it and what to fix. ``None`` for a record without a Client ID (nothing to key it by)."""
    fields = dict(record["fields"])
    client_id = fields.pop(ClientsTable.CLIENT_ID, "")
    if not isinstance(client_id, str | int) or not str(client_id).strip():
        _log.warning("Clients record without a Client ID skipped", extra={"record": record["id"]})
        return None
    raw_stream = fields.pop(ClientsTable.PROCESSING_STREAM, None)
    stream = stream_number(raw_stream)
    base_id = fields.pop(ClientsTable.AIRTABLE_BASE_ID, "")
    base_id = base_id.strip() if isinstance(base_id, str) else ""
    problems = []
    if stream is None:
        shown = "missing" if raw_stream is None else http.snippet(repr(raw_stream), 40)
        problems.append(
            f"{ClientsTable.PROCESSING_STREAM} is {shown}, not a stream number 1-{MAX_STREAM}"
        )
    if not base_id:
        problems.append(f"{ClientsTable.AIRTABLE_BASE_ID} is missing")
    return Client(
        client_id=str(client_id),
        name=str(fields.pop(ClientsTable.CLIENT_NAME, "")),
        base_id=base_id,
        stream=UNKNOWN_STREAM if stream is None else stream,
        record_id=record["id"],
        fields=fields,
        problem=f"Clients record {record['id']}: {'; '.join(problems)}" if problems else "",
    )


def _mapped(exc: requests.RequestException, action: str, *, api_key: str) -> IntegrationError:
    response = exc.response
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        error: type[IntegrationError] = PermanentError
        message, status = f"Airtable {action}: the answer is not JSON", None
    elif response is None:
        # Includes read timeouts: a write may or may not have been applied.
        error, status = TransientError, None
        cause = http.snippet(str(_root_cause(exc)), secrets=[api_key])
        message = f"Airtable {action}: no answer ({cause})"
    else:
        status = response.status_code
        error = TransientError if status in http.TRANSIENT_STATUSES else PermanentError
        message = f"Airtable {action}: HTTP {status} {_error_detail(response, api_key)}"
    return error(http.redact(message, api_key), service=SERVICE, status=status)


def _listing_expired(exc: requests.HTTPError) -> bool:
    response = exc.response
    return (
        response is not None
        and response.status_code == 422
        and "LIST_RECORDS_ITERATOR_NOT_AVAILABLE" in response.text
    )


def _root_cause(exc: requests.RequestException) -> object:
    """urllib3's reason (e.g. "Read timed out") rather than requests' wrapper with the whole URL."""
    wrapped = exc.args[0] if exc.args else None
    return getattr(wrapped, "reason", None) or exc


def _error_detail(response: requests.Response, api_key: str) -> str:
    """Airtable's ``{"error": {"type", "message"}}``, ``{"error": "TYPE"}`` or 429's ``errors``."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return http.snippet(response.text, secrets=[api_key])
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return f"{error.get('type', '')}: {error.get('message', '')}"
        if isinstance(error, str):
            return error
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return f"{errors[0].get('error', '')}: {errors[0].get('message', '')}"
    return http.snippet(response.text, secrets=[api_key])
