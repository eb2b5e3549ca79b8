"""The fake Airtable: its formula engine (pure) and its HTTP behaviour (real sockets)."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from pyairtable import Api
from pyairtable import formulas as F

from fakes.fake_airtable import (
    DEFAULT_API_KEY,
    FakeAirtable,
    FormulaError,
    parse_formula,
)

BASE = "appFakeBase000001"
TABLE = "Leads"
FIELDS = ["Name", "Score", "Status", "Done", "Tags", "Checked At", "Note"]


def matches(formula: object, **cells: Any) -> bool:
    return parse_formula(str(formula)).matches(cells)


# == formula engine ================================================================================


@pytest.mark.parametrize(
    "value",
    ["O'Brien", 'The "Closer"', "back\\slash", "it's a \\' trap", "x' OR 1=1 OR '\\", "{Name}"],
)
def test_formula__quoted_values_round_trip(value: str) -> None:
    """A value quoted by pyairtable matches exactly itself, whatever quotes or backslashes."""
    formula = F.match({"Name": value})

    assert matches(formula, Name=value)
    assert not matches(formula, Name=value + " ")
    assert not matches(formula, Name="x")


def test_formula__escaped_closing_brace_in_a_field_name() -> None:
    """``field_name()`` escapes a '}' in a field name and the parser reads it back."""
    formula = parse_formula(str(F.EQ(F.Field("Odd } Name"), 1)))

    assert formula.field_names == {"Odd } Name"}
    assert formula.matches({"Odd } Name": 1})


@pytest.mark.parametrize(
    ("formula", "score", "expected"),
    [
        ("{Score}=50", 50, True),
        ("{Score}!=50", 50, False),
        ("{Score}<50", 49.5, True),
        ("{Score}<=50", 50, True),
        ("{Score}>50", 50, False),
        ("{Score}>=50", 51, True),
        ("{Score}>-1", 0, True),
        ("{Score}=-3.5", -3.5, True),
    ],
)
def test_formula__numeric_comparisons(formula: str, score: float, expected: bool) -> None:
    """The six comparison operators compare numbers numerically, negatives included."""
    assert parse_formula(formula).matches({"Score": score}) is expected


def test_formula__logical_functions_nest() -> None:
    """AND, OR and NOT combine as pyairtable's helpers build them."""
    formula = F.AND(F.match({"Status": "To Be Scored"}), F.NOT(F.EQ(F.Field("Score"), 0)))
    either = F.OR(F.EQ(F.Field("Status"), "Scored"), F.GT(F.Field("Score"), 90))

    assert matches(formula, Status="To Be Scored", Score=10)
    assert not matches(formula, Status="To Be Scored", Score=0)
    assert matches(either, Status="Failed", Score=95)
    assert not matches(either, Status="Failed", Score=5)


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("{Status}=BLANK()", True),
        ("{Status}=''", True),
        ("{Score}=0", True),
        ("{Status}", False),
        ("NOT({Status})", True),
        ("{Status}!=''", False),
        ("LEN({Status})=0", True),
    ],
)
def test_formula__empty_fields_are_blank(formula: str, expected: bool) -> None:
    """A missing (empty) field is blank: equal to '' and 0, and false on its own."""
    assert parse_formula(formula).matches({}) is expected


def test_formula__booleans_are_true_false_functions() -> None:
    """A checkbox compares with TRUE()/FALSE() the way pyairtable renders Python booleans."""
    assert matches(F.match({"Done": True}), Done=True)
    assert not matches(F.match({"Done": True}), Done=False)
    assert matches(F.match({"Done": False}))


def test_formula__text_functions_and_concatenation() -> None:
    """IF, LEN, FIND and & work on text."""
    cells = {"Name": "Ada", "Status": "Scored"}

    assert parse_formula("IF({Status}='Scored', LEN({Name}), 0)=3").matches(cells)
    assert parse_formula("FIND('cor', {Status})=2").matches(cells)
    assert parse_formula("FIND('zzz', {Status})=0").matches(cells)
    assert parse_formula("{Name} & '-' & {Status} = 'Ada-Scored'").matches(cells)
    assert parse_formula("if({Status}='x', TRUE(), FALSE())=0").matches(cells)


def test_formula__lists_compare_as_joined_text() -> None:
    """A multiple-select value reads as its items joined by ', ', as in Airtable formulas."""
    assert parse_formula("FIND('vip', {Tags})>0").matches({"Tags": ["new", "vip"]})
    assert parse_formula("{Tags}='new, vip'").matches({"Tags": ["new", "vip"]})


def test_formula__dates_compare_as_dates() -> None:
    """DATETIME_PARSE values compare with ISO date fields chronologically, blanks never match."""
    cutoff = dt.datetime(2025, 11, 1, 12, 0, tzinfo=dt.UTC)
    older = F.LT(F.Field("Checked At"), cutoff)

    assert matches(older, **{"Checked At": "2025-10-31T09:00:00.000Z"})
    assert not matches(older, **{"Checked At": "2025-11-02"})
    assert not matches(older)
    assert matches(F.OR(F.EQ(F.Field("Checked At"), F.BLANK()), older))
    assert matches(F.IS_BEFORE(F.Field("Checked At"), cutoff), **{"Checked At": "2025-01-01"})
    assert matches(F.IS_AFTER(F.Field("Checked At"), cutoff), **{"Checked At": "2026-01-01"})


def test_formula__bad_date_fails_only_that_record() -> None:
    """A record whose date doesn't parse is an #ERROR! for that record only: it does not match."""
    formula = parse_formula("DATETIME_PARSE({Checked At}) < DATETIME_PARSE('2030-01-01')")

    assert formula.matches({"Checked At": "2025-01-01"})
    assert not formula.matches({"Checked At": "last Tuesday"})


def test_formula__field_names_are_collected() -> None:
    """The parsed formula lists every field it refers to, for the unknown-field check."""
    formula = parse_formula("AND({Name}='a', OR({Score}>1, NOT({Done})), LEN({Note} & 'x'))")

    assert formula.field_names == {"Name", "Score", "Done", "Note"}


@pytest.mark.parametrize(
    "formula",
    [
        "{Score}+1=2",
        "{Score}*2",
        "REGEX_MATCH({Name}, 'a')",
        "NOT()",
        "NOT({Done}, {Done})",
        "TRUE(1)",
        "{Name}='unterminated",
        "{Name",
        "{Name}='a' {Score}",
        "Status='x'",
        "AND({Name}='a'",
        "",
        "()",
        "{Name}=='a'",
    ],
)
def test_formula__unsupported_or_malformed_is_rejected(formula: str) -> None:
    """Anything outside the subset raises FormulaError instead of matching everything."""
    with pytest.raises(FormulaError):
        parse_formula(formula)


# == the fake over HTTP ============================================================================


@pytest.fixture
def fake() -> Iterator[FakeAirtable]:
    service = FakeAirtable()
    with service:
        service.add_table(BASE, TABLE, fields=FIELDS)
        yield service


@pytest.fixture
def table(fake: FakeAirtable) -> Any:
    return Api(DEFAULT_API_KEY, endpoint_url=fake.url, retry_strategy=None).table(BASE, TABLE)


def raw(fake: FakeAirtable, method: str, path: str = "", **kwargs: Any) -> requests.Response:
    headers = kwargs.pop("headers", {"Authorization": f"Bearer {DEFAULT_API_KEY}"})
    url = f"{fake.url}/v0/{BASE}/{TABLE}{path}"
    return requests.request(method, url, headers=headers, timeout=5, **kwargs)


def error_type(response: requests.Response) -> str:
    return str(response.json()["error"]["type"])


def test_fake_airtable__filter_by_formula_over_http(fake: FakeAirtable, table: Any) -> None:
    """pyairtable's formula reaches the fake as filterByFormula and selects the right records."""
    fake.add_records(
        BASE,
        TABLE,
        [
            {"Name": "O'Brien", "Status": "To Be Scored"},
            {"Name": "O'Brien", "Status": "Scored"},
            {"Name": "OBrien", "Status": "To Be Scored"},
        ],
    )

    found = table.all(formula=F.match({"Name": "O'Brien", "Status": "To Be Scored"}))

    assert [(r["fields"]["Name"], r["fields"]["Status"]) for r in found] == [
        ("O'Brien", "To Be Scored")
    ]


@pytest.mark.parametrize(
    ("formula", "expected_message"),
    [("{Score}+1=2", "unsupported character"), ("{Bogus}='x'", "Unknown field names: Bogus")],
)
def test_fake_airtable__bad_formula_is_422(
    fake: FakeAirtable, formula: str, expected_message: str
) -> None:
    """An unsupported formula or one naming an unknown field is a 422 INVALID_FILTER_BY_FORMULA."""
    response = raw(fake, "GET", params={"filterByFormula": formula})

    assert response.status_code == 422
    assert error_type(response) == "INVALID_FILTER_BY_FORMULA"
    assert expected_message in response.json()["error"]["message"]


def test_fake_airtable__empty_values_are_left_out(fake: FakeAirtable, table: Any) -> None:
    """'', [], False and None are stored as empty and never returned, as Airtable does."""
    created = table.create({"Name": "Ada", "Note": "", "Tags": [], "Done": False, "Score": None})
    table.update(created["id"], {"Name": ""})

    assert created["fields"] == {"Name": "Ada"}
    assert fake.records(BASE, TABLE)[0]["fields"] == {}


def test_fake_airtable__record_ids_look_like_airtable(table: Any) -> None:
    """Record ids are 'rec' plus 14 letters or digits, and every record has a createdTime."""
    record = table.create({"Name": "Ada"})

    assert re.fullmatch(r"rec[A-Za-z0-9]{14}", record["id"])
    assert record["createdTime"].endswith("Z")


def test_fake_airtable__list_options(fake: FakeAirtable, table: Any) -> None:
    """sort, fields[] and maxRecords shape the listing."""
    fake.add_records(
        BASE, TABLE, [{"Name": n, "Score": s} for n, s in [("a", 2), ("b", 3), ("c", 1)]]
    )

    found = table.all(sort=["-Score"], fields=["Name"], max_records=2)

    assert [r["fields"] for r in found] == [{"Name": "b"}, {"Name": "a"}]


def test_fake_airtable__pagination_is_a_snapshot(fake: FakeAirtable, table: Any) -> None:
    """Later pages return the ids matched at the first page, even if records changed since."""
    fake.add_records(
        BASE, TABLE, [{"Name": f"n{i:03}", "Status": "To Be Scored"} for i in range(150)]
    )
    pages = table.iterate(formula=F.match({"Status": "To Be Scored"}))
    first = next(pages)
    table.batch_update([{"id": r["id"], "fields": {"Status": "Scored"}} for r in first[:10]])

    second = next(pages)

    assert (len(first), len(second)) == (100, 50)
    assert second[0]["fields"]["Name"] == "n100"


def test_fake_airtable__page_size_over_100_is_422(fake: FakeAirtable) -> None:
    """pageSize is capped at 100 as in the real API."""
    response = raw(fake, "GET", params={"pageSize": "101"})

    assert response.status_code == 422


def test_fake_airtable__list_records_post_accepts_options_in_the_body(
    fake: FakeAirtable,
) -> None:
    """POST .../listRecords takes the list options as JSON, as pyairtable sends long queries."""
    fake.add_records(BASE, TABLE, [{"Name": "a", "Score": 1}, {"Name": "b", "Score": 2}])

    response = raw(
        fake,
        "POST",
        "/listRecords",
        json={"filterByFormula": "{Score}>1", "fields": ["Name"], "sort": [{"field": "Name"}]},
    )

    assert [r["fields"] for r in response.json()["records"]] == [{"Name": "b"}]


def test_fake_airtable__create_more_than_ten_is_422(fake: FakeAirtable) -> None:
    """One create request takes at most 10 records and creates none when it fails."""
    response = raw(
        fake, "POST", json={"records": [{"fields": {"Name": str(i)}} for i in range(11)]}
    )

    assert response.status_code == 422
    assert fake.records(BASE, TABLE) == []


def test_fake_airtable__unknown_field_fails_the_whole_write(fake: FakeAirtable) -> None:
    """A write naming an unknown field is a 422 UNKNOWN_FIELD_NAME and applies nothing."""
    records = [{"fields": {"Name": "ok"}}, {"fields": {"Bogus": 1}}]

    response = raw(fake, "POST", json={"records": records})

    assert response.status_code == 422
    assert response.json()["error"] == {
        "type": "UNKNOWN_FIELD_NAME",
        "message": 'Unknown field name: "Bogus"',
    }
    assert fake.records(BASE, TABLE) == []


def test_fake_airtable__upsert_creates_then_updates(table: Any, fake: FakeAirtable) -> None:
    """performUpsert creates a record for a new key and updates the one record with that key."""
    first = table.batch_upsert([{"fields": {"Name": "a", "Score": 1}}], key_fields=["Name"])
    second = table.batch_upsert([{"fields": {"Name": "a", "Score": 2}}], key_fields=["Name"])

    assert len(first["createdRecords"]) == 1
    assert second["updatedRecords"] == first["createdRecords"]
    assert [r["fields"] for r in fake.records(BASE, TABLE)] == [{"Name": "a", "Score": 2}]


def test_fake_airtable__upsert_with_several_matches_is_422(fake: FakeAirtable) -> None:
    """An upsert key that matches two existing records fails the request and changes nothing."""
    fake.add_records(BASE, TABLE, [{"Name": "dup", "Score": 1}, {"Name": "dup", "Score": 2}])
    body = {
        "records": [{"fields": {"Name": "new"}}, {"fields": {"Name": "dup", "Score": 3}}],
        "performUpsert": {"fieldsToMergeOn": ["Name"]},
    }

    response = raw(fake, "PATCH", json=body)

    assert response.status_code == 422
    assert [r["fields"] for r in fake.records(BASE, TABLE)] == [
        {"Name": "dup", "Score": 1},
        {"Name": "dup", "Score": 2},
    ]


def test_fake_airtable__put_replaces_all_fields(table: Any) -> None:
    """PUT clears the fields it doesn't name; PATCH keeps them."""
    record = table.create({"Name": "Ada", "Score": 1})

    patched = table.update(record["id"], {"Score": 2})
    replaced = table.update(record["id"], {"Score": 3}, replace=True)

    assert patched["fields"] == {"Name": "Ada", "Score": 2}
    assert replaced["fields"] == {"Score": 3}


def test_fake_airtable__delete_by_id(table: Any, fake: FakeAirtable) -> None:
    """DELETE removes records by id; an unknown id is a 404."""
    keep, drop = table.batch_create([{"Name": "keep"}, {"Name": "drop"}])

    assert table.batch_delete([drop["id"]]) == [{"id": drop["id"], "deleted": True}]
    assert [r["id"] for r in fake.records(BASE, TABLE)] == [keep["id"]]
    assert raw(fake, "DELETE", f"/{drop['id']}").status_code == 404


def test_fake_airtable__unknown_base_or_table_is_403(fake: FakeAirtable) -> None:
    """An unknown table answers 403 INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND, as Airtable does."""
    response = requests.get(
        f"{fake.url}/v0/{BASE}/Nope",
        headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"},
        timeout=5,
    )

    assert response.status_code == 403
    assert error_type(response) == "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"


def test_fake_airtable__wrong_token_is_401(fake: FakeAirtable) -> None:
    """A request without the right bearer token answers 401 AUTHENTICATION_REQUIRED."""
    response = raw(fake, "GET", headers={"Authorization": "Bearer patWrong"})

    assert response.status_code == 401
    assert error_type(response) == "AUTHENTICATION_REQUIRED"


def test_fake_airtable__rate_limit_mode_answers_429(fake: FakeAirtable) -> None:
    """With enforcement on, a 6th request to a base within a second is answered 429."""
    fake.enforce_rate_limit = True
    start = time.monotonic()

    statuses = [raw(fake, "GET").status_code for _ in range(6)]

    assert time.monotonic() - start < 1.0, "the six requests must fall into one second"
    assert statuses == [200] * 5 + [429]
    assert fake.rate_limited_requests == 1
