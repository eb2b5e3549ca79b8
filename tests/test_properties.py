"""Property-based tests (hypothesis): no model answer crashes the verdict parser, no Clients value
crashes its reading, and every formula, prompt and log line the project builds keeps its meaning
for any client name or ID (quotes, apostrophes, braces, backslashes, newlines, unicode).

Formulas are evaluated with the fake Airtable's formula engine (``fakes.fake_airtable``), the one
the adapter tests run against over HTTP.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fakes.fake_airtable import parse_formula
from smart_resume.core.clients import stream_number
from smart_resume.integrations.ai import lead_scoring_prompt, post_scoring_prompt
from smart_resume.integrations.airtable import active_clients_formula, client_ids_formula
from smart_resume.integrations.airtable_fields import ClientsTable, ClientStatus
from smart_resume.integrations.verdicts import (
    IntField,
    Reason,
    Rejection,
    Verdict,
    VerdictSchema,
    parse_verdict,
)
from smart_resume.logs import JsonFormatter

settings.register_profile("project", max_examples=150, deadline=None)
settings.load_profile("project")

ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
"""Any text a person can type or paste: every Unicode character but lone surrogates."""
AWKWARD = st.sampled_from(
    [
        "O'Brien & Sons",
        'The "Closer" Agency',
        "{Client ID}",
        "a}b{c",
        "back\\slash\\",
        "x' OR 1=1 OR '\\",
        '"), TRUE(), ("',
        "line one\nline two",
        "tab\there\r\n",
        "Zürich Talent – ☃ 🚀",
        "العربية",
        "\u200b\ufeff",
        "",
        " ",
    ]
)
NAMES = st.one_of(AWKWARD, ANY_TEXT)
CLIENT_IDS = st.one_of(AWKWARD, ANY_TEXT).filter(bool)  # the CRD requires minLength 1

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | NAMES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(NAMES, children, max_size=4),
    max_leaves=25,
)
FRAGMENTS = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        "[" * 1500,
        '{"a":' * 1500,
        '"score"',
        '"assessment"',
        '"best_post_index"',
        ":",
        ",",
        '"',
        "\\",
        "85",
        "2",
        "-1",
        "7.5",
        "1e400",
        "9" * 5000,
        "null",
        "true",
        "NaN",
        "```json\n",
        "```",
        " ",
        "\n",
        "Sure! ",
    ]
)
ANSWERS = st.one_of(
    ANY_TEXT,
    st.lists(FRAGMENTS, max_size=25).map("".join),
    JSON_VALUES.map(json.dumps),
    st.builds(
        lambda score, assessment: json.dumps({"score": score, "assessment": assessment}),
        JSON_VALUES,
        JSON_VALUES,
    ),
)
POST_SCHEMA = VerdictSchema(extras=(IntField("best_post_index", 1, 3),))


def _completion(content: Any, finish_reason: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    return {"choices": [{"index": 0, "finish_reason": finish_reason, "message": message}]}


def _usable(result: Verdict | Rejection, schema: VerdictSchema) -> None:
    if isinstance(result, Verdict):
        assert schema.low <= result.score <= schema.high
        assert isinstance(result.assessment, str)
        for field in schema.extras:
            assert field.low <= result.extras[field.key] <= field.high
    else:
        assert isinstance(result, Rejection)
        assert result.code in set(Reason)
        assert len(result.detail) <= 200
        assert "\n" not in result.detail


# -- the verdict parser -------------------------------------------------------------------------


@given(
    content=ANSWERS,
    finish_reason=st.sampled_from(["stop", "length", "content_filter", None, "tool_calls", 3]),
    schema=st.sampled_from([VerdictSchema(), POST_SCHEMA]),
)
def test_parse_verdict__any_answer_is_a_verdict_in_range_or_a_reason_code(
    content: str, finish_reason: Any, schema: VerdictSchema
) -> None:
    """Whatever text the model returns, the parser returns a Verdict within the schema or a
    Rejection with a known code and a bounded one-line detail; it never raises."""
    _usable(parse_verdict(_completion(content, finish_reason), schema), schema)


@given(body=JSON_VALUES)
def test_parse_verdict__any_body_shape_is_handled(body: object) -> None:
    """Any JSON document as the whole response body (no choices, odd types) is handled."""
    _usable(parse_verdict(body), VerdictSchema())


@given(score=st.integers(min_value=-(10**6), max_value=10**6), assessment=NAMES)
def test_parse_verdict__a_whole_score_is_accepted_exactly_when_in_range(
    score: int, assessment: str
) -> None:
    """A clean answer's score is taken as is inside 0..100 and rejected as out of range outside;
    never clamped."""
    content = json.dumps({"score": score, "assessment": assessment})
    result = parse_verdict(_completion(content, "stop"))
    if 0 <= score <= 100:
        assert result == Verdict(score=score, assessment=assessment.strip())
    else:
        assert isinstance(result, Rejection) and result.code == Reason.AI_SCORE_OUT_OF_RANGE


# -- Clients values -------------------------------------------------------------------------


@given(value=JSON_VALUES)
def test_stream_number__any_cell_value_is_a_stream_or_none(value: object) -> None:
    """Any Processing Stream cell value reads as a stream 1..64 or as None; nothing raises."""
    stream = stream_number(value)
    assert stream is None or 1 <= stream <= 64


# -- formulas -------------------------------------------------------------------------------


@given(ids=st.lists(CLIENT_IDS, min_size=1, max_size=4, unique=True), other=CLIENT_IDS)
def test_client_ids_formula__selects_exactly_the_given_ids(ids: list[str], other: str) -> None:
    """The ad-hoc clients formula matches a record exactly when its Client ID is one asked for,
    whatever characters the IDs hold: no ID can widen, narrow or break the filter."""
    formula = parse_formula(str(client_ids_formula(ids)))

    for client_id in ids:
        assert formula.matches({ClientsTable.CLIENT_ID: client_id})
    assert formula.matches({ClientsTable.CLIENT_ID: other}) is (other in ids)
    assert formula.field_names == {ClientsTable.CLIENT_ID}


@given(stream=st.integers(min_value=1, max_value=64), other=st.integers(-5, 70), status=NAMES)
def test_active_clients_formula__selects_active_clients_of_the_stream(
    stream: int, other: int, status: str
) -> None:
    """The scheduled clients formula matches Active records of its stream only."""
    formula = parse_formula(str(active_clients_formula(stream)))
    record = {ClientsTable.STATUS: ClientStatus.ACTIVE, ClientsTable.PROCESSING_STREAM: stream}

    assert formula.matches(record)
    assert formula.matches({**record, ClientsTable.PROCESSING_STREAM: other}) is (other == stream)
    assert formula.matches({**record, ClientsTable.STATUS: status}) is (
        status == ClientStatus.ACTIVE
    )


# -- prompts and log lines ------------------------------------------------------------------


@given(criteria=NAMES, profile=st.dictionaries(NAMES, NAMES, max_size=6))
def test_lead_scoring_prompt__carries_any_text_as_data(
    criteria: str, profile: dict[str, str]
) -> None:
    """Criteria and profile fields reach the model verbatim inside one JSON document, so no
    quote, brace or newline in them can end the data or start an instruction."""
    prompt = lead_scoring_prompt(criteria, profile)

    assert json.loads(prompt.user) == {
        "criteria": criteria,
        "lead": {key: value for key, value in profile.items() if value != ""},
    }


@given(topics=NAMES, url=NAMES, posts=st.lists(NAMES, min_size=1, max_size=4))
def test_post_scoring_prompt__carries_any_text_as_data(
    topics: str, url: str, posts: list[str]
) -> None:
    """Topics, profile URL and post texts reach the model verbatim, each post numbered."""
    document = json.loads(post_scoring_prompt(topics, profile_url=url, posts=posts).user)

    assert document["topics"] == topics
    assert document["lead_profile_url"] == url
    assert [post["text"] for post in document["posts"]] == posts
    assert [post["index"] for post in document["posts"]] == list(range(1, len(posts) + 1))


@given(client=NAMES, detail=NAMES)
def test_json_log_line__any_client_name_stays_one_parseable_line(client: str, detail: str) -> None:
    """A client name or detail with newlines or quotes cannot forge or split a log line."""
    record = logging.makeLogRecord(
        {"name": "smart_resume.worker", "levelname": "INFO", "msg": "client started"}
    )
    record.client, record.detail = client, detail

    line = JsonFormatter().format(record)

    assert "\n" not in line
    entry = json.loads(line)
    assert (entry["message"], entry["client"], entry["detail"]) == (
        "client started",
        client,
        detail,
    )
