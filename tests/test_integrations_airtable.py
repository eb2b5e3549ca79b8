"""AirtableGateway against FakeAirtable over real HTTP: queries, batches, retries, errors."""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pyairtable import formulas as F

from fakes.fake_airtable import DEFAULT_API_KEY, FakeAirtable
from fakes.server import Response
from smart_resume.config import AirtableSettings, Secret
from smart_resume.core.errors import ConfigurationError, PermanentError, TransientError
from smart_resume.integrations.airtable import AirtableGateway
from smart_resume.integrations.airtable_fields import (
    ClientsTable,
    ClientStatus,
    LeadsTable,
    ScoringStatus,
)
from smart_resume.integrations.pacing import RequestPacer

MASTER = "appMasterBase0001"
CLIENT_BASE = "appClientBase0001"
PENALTY_SECONDS = 0.2
TRICKY_NAME = 'O\'Brien & "Sons" \\ Recruiting'


@pytest.fixture
def fake() -> Iterator[FakeAirtable]:
    service = FakeAirtable()
    with service:
        service.add_table(MASTER, ClientsTable.TABLE, fields=ClientsTable.field_names())
        service.add_table(CLIENT_BASE, LeadsTable.TABLE, fields=LeadsTable.field_names())
        yield service


@pytest.fixture
def settings(fake: FakeAirtable) -> AirtableSettings:
    return AirtableSettings(
        api_key=Secret(DEFAULT_API_KEY),
        endpoint_url=fake.url,
        master_base_id=MASTER,
        rate_limit_penalty_seconds=PENALTY_SECONDS,
        timeout_seconds=2.0,
    )


def make_gateway(settings: AirtableSettings, **changes: Any) -> AirtableGateway:
    """A gateway with its own pacer (production rate, test-small penalty) and these settings."""
    settings = dataclasses.replace(settings, **changes)
    pacer = RequestPacer(
        requests_per_second=settings.requests_per_second_per_base,
        penalty_seconds=settings.rate_limit_penalty_seconds,
    )
    return AirtableGateway(settings, pacer=pacer)


@pytest.fixture
def gateway(settings: AirtableSettings) -> AirtableGateway:
    return make_gateway(settings)


def add_client(
    fake: FakeAirtable, client_id: str, *, stream: int = 1, fields: Mapping[str, Any] | None = None
) -> str:
    record = {
        ClientsTable.CLIENT_ID: client_id,
        ClientsTable.CLIENT_NAME: f"Client {client_id}",
        ClientsTable.STATUS: ClientStatus.ACTIVE,
        ClientsTable.PROCESSING_STREAM: stream,
        ClientsTable.AIRTABLE_BASE_ID: CLIENT_BASE,
        **(fields or {}),
    }
    return str(fake.add_records(MASTER, ClientsTable.TABLE, [record])[0]["id"])


def add_leads(fake: FakeAirtable, count: int, **fields: Any) -> list[str]:
    leads = [
        {LeadsTable.LINKEDIN_PROFILE_URL: f"https://linkedin.com/in/lead-{i:03}", **fields}
        for i in range(count)
    ]
    return [str(record["id"]) for record in fake.add_records(CLIENT_BASE, LeadsTable.TABLE, leads)]


def requests_to(fake: FakeAirtable, method: str, base_id: str, suffix: str) -> int:
    return fake.request_counts[f"{method} /v0/{base_id}/{suffix}"]


# == clients =======================================================================================


def test_active_clients__only_active_clients_of_the_stream_in_client_id_order(
    fake: FakeAirtable, gateway: AirtableGateway
) -> None:
    """Active clients of the asked stream come back ordered by Client ID, fully mapped."""
    record_id = add_client(fake, "zeta", fields={ClientsTable.SCORING_CRITERIA: "Recruiters in NZ"})
    add_client(fake, "alpha")
    add_client(fake, "paused", fields={ClientsTable.STATUS: ClientStatus.PAUSED})
    add_client(fake, "other-stream", stream=2)

    clients = gateway.active_clients(stream=1)

    assert [client.client_id for client in clients] == ["alpha", "zeta"]
    zeta = clients[1]
    assert (zeta.name, zeta.base_id, zeta.stream, zeta.record_id) == (
        "Client zeta",
        CLIENT_BASE,
        1,
        record_id,
    )
    assert zeta.fields[ClientsTable.SCORING_CRITERIA] == "Recruiters in NZ"


def test_clients__quotes_and_apostrophes_survive_every_formula(
    fake: FakeAirtable, gateway: AirtableGateway
) -> None:
    """IDs and names with quotes, apostrophes and backslashes match exactly, never a decoy."""
    tricky_id = 'o\'brien-"sons"\\nz'
    add_client(fake, tricky_id, fields={ClientsTable.CLIENT_NAME: TRICKY_NAME})
    add_client(
        fake, "o'brien-sons", fields={ClientsTable.CLIENT_NAME: TRICKY_NAME.replace("\\", "")}
    )

    by_id = gateway.clients_by_id([tricky_id])
    by_name = gateway.select(
        MASTER, ClientsTable.TABLE, formula=F.match({ClientsTable.CLIENT_NAME: TRICKY_NAME})
    )
    active = gateway.active_clients(stream=1)

    assert [(c.client_id, c.name) for c in by_id] == [(tricky_id, TRICKY_NAME)]
    assert [r["fields"][ClientsTable.CLIENT_ID] for r in by_name] == [tricky_id]
    assert TRICKY_NAME in [client.name for client in active]


def test_clients_by_id__keeps_the_asked_order_and_skips_unknown_ids(
    fake: FakeAirtable, gateway: AirtableGateway
) -> None:
    """Clients come back in the order asked (duplicates once), whatever their status or stream."""
    add_client(fake, "a")
    add_client(fake, "b", stream=3, fields={ClientsTable.STATUS: ClientStatus.PAUSED})

    clients = gateway.clients_by_id(["b", "missing", "a", "b"])

    assert [client.client_id for client in clients] == ["b", "a"]
    assert gateway.clients_by_id([]) == []


def test_update_client__patches_only_the_given_fields(
    fake: FakeAirtable, gateway: AirtableGateway
) -> None:
    """update_client changes the named master-record fields and leaves the others alone."""
    record_id = add_client(fake, "acme")
    job_status = ClientsTable.TASKS["lead_scoring"].job_status

    gateway.update_client(record_id, {job_status: "RUNNING"})

    fields = fake.records(MASTER, ClientsTable.TABLE)[0]["fields"]
    assert fields[job_status] == "RUNNING"
    assert fields[ClientsTable.CLIENT_ID] == "acme"


# == records =======================================================================================


def test_select__follows_pagination_over_more_than_100_records(
    fake: FakeAirtable, gateway: AirtableGateway
) -> None:
    """A select of 230 matching records reads all of them in three pages."""
    add_leads(fake, 230, **{LeadsTable.SCORING_STATUS: ScoringStatus.TO_BE_SCORED})
    add_leads(fake, 5, **{LeadsTable.SCORING_STATUS: ScoringStatus.SCORED})

    leads = gateway.select(
        CLIENT_BASE,
        LeadsTable.TABLE,
        formula=F.match({LeadsTable.SCORING_STATUS: ScoringStatus.TO_BE_SCORED}),
        fields=[LeadsTable.LINKEDIN_PROFILE_URL],
    )

    assert len(leads) == 230
    assert len({lead["id"] for lead in leads}) == 230
    assert requests_to(fake, "GET", CLIENT_BASE, LeadsTable.TABLE) == 3


def test_pages__reads_the_next_page_only_when_the_last_one_is_consumed(
    fake: FakeAirtable, gateway: AirtableGateway
) -> None:
    """Pages come one request at a time, so a caller holds one page of records, never the table;
    records changed while paging (as the tasks do) neither come back nor hide others."""
    add_leads(fake, 230, **{LeadsTable.SCORING_STATUS: ScoringStatus.TO_BE_SCORED})
    to_score = F.match({LeadsTable.SCORING_STATUS: ScoringStatus.TO_BE_SCORED})
    pages = gateway.pages(CLIENT_BASE, LeadsTable.TABLE, formula=to_score)

    first = next(pages)
    assert (len(first), requests_to(fake, "GET", CLIENT_BASE, LeadsTable.TABLE)) == (100, 1)
    scored = {LeadsTable.SCORING_STATUS: ScoringStatus.SCORED}
    gateway.batch_update(
        CLIENT_BASE, LeadsTable.TABLE, [{"id": r["id"], "fields": scored} for r in first]
    )
    rest = [record for page in pages for record in page]

    assert len(rest) == 130 and not {r["id"] for r in rest} & {r["id"] for r in first}
    assert requests_to(fake, "GET", CLIENT_BASE, LeadsTable.TABLE) == 3


def test_pages__a_listing_dropped_between_pages_starts_again_without_repeats(
    fake: FakeAirtable, gateway: AirtableGateway
) -> None:
    """Airtable's 422 LIST_RECORDS_ITERATOR_NOT_AVAILABLE between pages restarts the listing;
    records already handed out are not handed out again, none is missed."""
    add_leads(fake, 230, **{LeadsTable.SCORING_STATUS: ScoringStatus.TO_BE_SCORED})
    to_score = F.match({LeadsTable.SCORING_STATUS: ScoringStatus.TO_BE_SCORED})
    pages = gateway.pages(CLIENT_BASE, LeadsTable.TABLE, formula=to_score)
    first = next(pages)
    expired = Response.json({"error": {"type": "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"}}, 422)
    fake.fail_next(expired)

    rest = [record for page in pages for record in page]

    ids = [record["id"] for record in first + rest]
    assert len(ids) == len(set(ids)) == 230
    assert requests_to(fake, "GET", CLIENT_BASE, LeadsTable.TABLE) == 1 + 1 + 3  # dropped, again


def test_select__max_records_stops_early(fake: FakeAirtable, gateway: AirtableGateway) -> None:
    """max_records caps the result (a lead-scoring limit) in a single request."""
    add_leads(fake, 150, **{LeadsTable.SCORING_STATUS: ScoringStatus.TO_BE_SCORED})

    leads = gateway.select(
        CLIENT_BASE,
        LeadsTable.TABLE,
        formula=F.match({LeadsTable.SCORING_STATUS: ScoringStatus.TO_BE_SCORED}),
        max_records=7,
    )

    assert len(leads) == 7
    assert requests_to(fake, "GET", CLIENT_BASE, LeadsTable.TABLE) == 1


def test_batch_update__23_updates_take_3_requests(
    fake: FakeAirtable, gateway: AirtableGateway
) -> None:
    """Updates are sent 10 per request, and every record gets its new fields."""
    lead_ids = add_leads(fake, 23, **{LeadsTable.SCORING_STATUS: ScoringStatus.TO_BE_SCORED})

    gateway.batch_update(
        CLIENT_BASE,
        LeadsTable.TABLE,
        [{"id": lead_id, "fields": {LeadsTable.AI_SCORE: 80}} for lead_id in lead_ids],
    )

    assert requests_to(fake, "PATCH", CLIENT_BASE, LeadsTable.TABLE) == 3
    leads = fake.records(CLIENT_BASE, LeadsTable.TABLE)
    assert all(lead["fields"][LeadsTable.AI_SCORE] == 80 for lead in leads)
    assert all(lead["fields"][LeadsTable.SCORING_STATUS] == "To Be Scored" for lead in leads)


def test_batch_upsert__creates_then_updates_without_duplicates(
    fake: FakeAirtable, gateway: AirtableGateway
) -> None:
    """Upserting the same keys twice creates each record once, then updates it in place."""
    url = LeadsTable.LINKEDIN_PROFILE_URL
    rows = [{url: f"https://linkedin.com/in/p{i}", LeadsTable.FIRST_NAME: "A"} for i in range(12)]

    created = gateway.batch_upsert(CLIENT_BASE, LeadsTable.TABLE, rows, key_fields=[url])
    again = gateway.batch_upsert(
        CLIENT_BASE,
        LeadsTable.TABLE,
        [{**row, LeadsTable.FIRST_NAME: "B"} for row in rows],
        key_fields=[url],
    )

    assert (len(created["createdRecords"]), len(created["updatedRecords"])) == (12, 0)
    assert (len(again["createdRecords"]), sorted(again["updatedRecords"])) == (
        0,
        sorted(created["createdRecords"]),
    )
    leads = fake.records(CLIENT_BASE, LeadsTable.TABLE)
    assert len(leads) == 12
    assert {lead["fields"][LeadsTable.FIRST_NAME] for lead in leads} == {"B"}
    assert requests_to(fake, "PATCH", CLIENT_BASE, LeadsTable.TABLE) == 4


def test_batch_upsert__missing_key_field_fails_before_any_request(
    fake: FakeAirtable, gateway: AirtableGateway
) -> None:
    """A record without its key field is refused before anything is sent."""
    with pytest.raises(ValueError, match="LinkedIn Profile URL"):
        gateway.batch_upsert(
            CLIENT_BASE,
            LeadsTable.TABLE,
            [{LeadsTable.FIRST_NAME: "no key"}],
            key_fields=[LeadsTable.LINKEDIN_PROFILE_URL],
        )

    assert fake.total_requests == 0


# == retries, pacing and the 429 penalty ===========================================================


def test_gateway__503_then_success_is_retried(fake: FakeAirtable, gateway: AirtableGateway) -> None:
    """A 503 is retried by the shared policy and the call succeeds."""
    add_client(fake, "acme")
    fake.fail_next(Response.json({"error": {"type": "SERVICE_UNAVAILABLE"}}, 503))

    clients = gateway.active_clients(stream=1)

    assert [client.client_id for client in clients] == ["acme"]
    assert requests_to(fake, "GET", MASTER, ClientsTable.TABLE) == 2


def test_gateway__read_timeout_on_a_post_is_not_resent(
    fake: FakeAirtable, settings: AirtableSettings
) -> None:
    """A POST (a long query switched to listRecords) that times out is sent once, then fails."""
    gateway = make_gateway(settings, timeout_seconds=0.3)
    many_ids = [f"client-{i:016d}" for i in range(600)]  # long enough for the POST fallback
    fake.stall_next(1.0, path_contains="listRecords")

    with pytest.raises(TransientError) as raised:
        gateway.clients_by_id(many_ids)

    assert requests_to(fake, "POST", MASTER, "Clients/listRecords") == 1
    assert fake.total_requests == 1
    assert raised.value.status is None


def test_gateway__read_timeout_on_an_upsert_is_not_resent(
    fake: FakeAirtable, settings: AirtableSettings
) -> None:
    """A write that times out is not resent by the gateway: the caller decides what to do."""
    gateway = make_gateway(settings, timeout_seconds=0.3)
    fake.stall_next(1.0)

    with pytest.raises(TransientError):
        gateway.batch_upsert(
            CLIENT_BASE,
            LeadsTable.TABLE,
            [{LeadsTable.LINKEDIN_PROFILE_URL: "https://linkedin.com/in/x"}],
            key_fields=[LeadsTable.LINKEDIN_PROFILE_URL],
        )

    assert fake.total_requests == 1


def test_gateway__429_waits_the_penalty_then_succeeds(
    fake: FakeAirtable, gateway: AirtableGateway
) -> None:
    """After a 429 the gateway pauses the base for the penalty, then resends and succeeds."""
    add_client(fake, "acme")
    fake.fail_next(Response.json({"errors": [{"error": "RATE_LIMIT_REACHED"}]}, 429))
    start = time.monotonic()

    clients = gateway.active_clients(stream=1)

    assert time.monotonic() - start >= PENALTY_SECONDS
    assert [client.client_id for client in clients] == ["acme"]
    assert requests_to(fake, "GET", MASTER, ClientsTable.TABLE) == 2


def test_gateway__429_after_every_attempt_is_transient(
    fake: FakeAirtable, settings: AirtableSettings
) -> None:
    """When every attempt is rate limited, the error is transient, with status 429."""
    gateway = make_gateway(settings, rate_limit_penalty_seconds=0.01)
    fake.fail_next(
        Response.json({"errors": [{"error": "RATE_LIMIT_REACHED", "message": "slow"}]}, 429),
        times=3,
    )

    with pytest.raises(TransientError, match="RATE_LIMIT_REACHED") as raised:
        gateway.active_clients(stream=1)

    assert raised.value.status == 429
    assert fake.total_requests == 3


def test_gateway__pacing_keeps_a_strict_base_below_its_limit(
    fake: FakeAirtable, gateway: AirtableGateway
) -> None:
    """Seven quick selects against a base enforcing 5 requests/s never get a 429."""
    fake.enforce_rate_limit = True
    start = time.monotonic()

    for _ in range(7):
        gateway.active_clients(stream=1)

    assert fake.rate_limited_requests == 0
    assert time.monotonic() - start >= 1.0


# == errors ========================================================================================


def test_gateway__unknown_field_is_permanent_and_names_the_field(
    fake: FakeAirtable, gateway: AirtableGateway
) -> None:
    """A 422 UNKNOWN_FIELD_NAME becomes a PermanentError naming the field."""
    [lead_id] = add_leads(fake, 1)

    with pytest.raises(PermanentError) as raised:
        gateway.batch_update(
            CLIENT_BASE, LeadsTable.TABLE, [{"id": lead_id, "fields": {"Bogus": 1}}]
        )

    assert raised.value.status == 422
    assert raised.value.service == "airtable"
    assert 'UNKNOWN_FIELD_NAME: Unknown field name: "Bogus"' in str(raised.value)


def test_gateway__wrong_token_is_permanent_401_without_the_token(
    fake: FakeAirtable, settings: AirtableSettings
) -> None:
    """A rejected token is a PermanentError with status 401 whose message never shows the token."""
    token = "patWrongToken123.abcdefabcdef"
    gateway = make_gateway(settings, api_key=Secret(token))

    with pytest.raises(PermanentError) as raised:
        gateway.active_clients(stream=1)

    assert raised.value.status == 401
    assert "AUTHENTICATION_REQUIRED" in str(raised.value)
    assert token not in str(raised.value)
    assert token not in repr(raised.value.__cause__)


def test_gateway__unknown_base_is_permanent_403(gateway: AirtableGateway) -> None:
    """A base the token cannot see is a PermanentError with status 403."""
    with pytest.raises(PermanentError) as raised:
        gateway.select("appNoSuchBase0000", LeadsTable.TABLE, formula=F.match({"x": 1}))

    assert raised.value.status == 403


def test_gateway__missing_configuration_is_reported_at_construction(
    settings: AirtableSettings,
) -> None:
    """A gateway without key or master base refuses to start, naming the variables to set."""
    empty = dataclasses.replace(settings, api_key=Secret(""), master_base_id="")

    with pytest.raises(ConfigurationError) as raised:
        AirtableGateway(empty)

    assert "SMART_RESUME_AIRTABLE_API_KEY" in str(raised.value)
    assert "SMART_RESUME_AIRTABLE_MASTER_BASE_ID" in str(raised.value)


def test_gateway__key_with_trailing_newline_leaks_nowhere(settings: AirtableSettings) -> None:
    """requests refuses an Authorization header ending in a newline and quotes it; neither the
    error nor the chain log.exception would print carries the key."""
    key = "patLEAKTEST0000001.0123456789abcdef0123456789abcdef"
    gateway = make_gateway(settings, api_key=Secret(key + "\n"))

    with pytest.raises(TransientError) as raised:
        gateway.active_clients(stream=1)

    printed = "".join(traceback.format_exception(raised.value))
    assert "no answer" in printed
    assert key[:12] not in printed and key[-12:] not in printed and key[10:30] not in printed


def test_gateway__error_page_echoing_the_key_at_the_cut_leaks_nothing(
    fake: FakeAirtable, gateway: AirtableGateway
) -> None:
    """A proxy page quoting the key across the 200-character snippet cut shows no piece of it."""
    fake.fail_next(Response.html("z" * 170 + f"token {DEFAULT_API_KEY} rejected", 403))

    with pytest.raises(PermanentError) as raised:
        gateway.active_clients(stream=1)

    printed = "".join(traceback.format_exception(raised.value))
    assert "HTTP 403" in printed
    assert DEFAULT_API_KEY[:10] not in printed and DEFAULT_API_KEY[-10:] not in printed


@pytest.mark.parametrize(
    ("stream", "shown"),
    [
        pytest.param("two", "'two'", id="text"),
        pytest.param(None, "missing", id="missing"),
        pytest.param(1.5, "1.5", id="fraction"),
        pytest.param(True, "True", id="boolean"),
        pytest.param(0, "0", id="zero"),
        pytest.param(65, "65", id="above-64"),
        pytest.param(-1, "-1", id="negative"),
        pytest.param("9" * 5000, "'999", id="5000-digits"),
        pytest.param([1], "[1]", id="list"),
    ],
)
def test_clients_by_id__unreadable_processing_stream_is_a_per_client_problem(
    fake: FakeAirtable, gateway: AirtableGateway, stream: object, shown: str
) -> None:
    """A Processing Stream that is not a stream number makes that client carry a problem naming
    the field and the value; the other clients load as usual."""
    record = {ClientsTable.CLIENT_ID: "odd", ClientsTable.AIRTABLE_BASE_ID: CLIENT_BASE}
    if stream is not None:
        record[ClientsTable.PROCESSING_STREAM] = stream
    [created] = fake.add_records(MASTER, ClientsTable.TABLE, [record])
    record_id = created["id"]
    add_client(fake, "fine")

    odd, fine = gateway.clients_by_id(["odd", "fine"])

    assert odd.stream == 0
    assert odd.problem.startswith(f"Clients record {record_id}: Processing Stream is {shown}")
    assert "not a stream number 1-64" in odd.problem
    assert len(odd.problem) < 200
    assert (fine.stream, fine.problem) == (1, "")


@pytest.mark.parametrize("stream", [2, 2.0, " 2 ", "2"])
def test_clients_by_id__whole_number_streams_are_read(
    fake: FakeAirtable, gateway: AirtableGateway, stream: object
) -> None:
    """2, 2.0 and the text "2" (a text field) all mean stream 2."""
    add_client(fake, "two", fields={ClientsTable.PROCESSING_STREAM: stream})

    [client] = gateway.clients_by_id(["two"])

    assert (client.stream, client.problem) == (2, "")


def test_active_clients__duplicate_client_id_is_one_client_with_a_problem(
    fake: FakeAirtable, gateway: AirtableGateway
) -> None:
    """Two records with one Client ID do not silently collapse: the ID comes back once, with a
    problem naming both records; other clients are untouched."""
    first = add_client(fake, "twin")
    second = add_client(fake, "twin", fields={ClientsTable.AIRTABLE_BASE_ID: "appOTHERBASE0001"})
    add_client(fake, "single")

    clients = gateway.active_clients(stream=1)

    assert [c.client_id for c in clients] == ["single", "twin"]
    twin = clients[1]
    assert "Client ID 'twin' is used by 2 Clients records" in twin.problem
    assert first in twin.problem and second in twin.problem
    assert clients[0].problem == ""


def test_clients_by_id__missing_base_id_is_a_problem(
    fake: FakeAirtable, gateway: AirtableGateway
) -> None:
    """A client without its Airtable Base ID carries a problem naming the field."""
    add_client(fake, "baseless", fields={ClientsTable.AIRTABLE_BASE_ID: ""})

    [client] = gateway.clients_by_id(["baseless"])

    assert "Airtable Base ID is missing" in client.problem
