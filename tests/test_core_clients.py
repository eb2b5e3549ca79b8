"""Reading people-typed Clients values: stream numbers, duplicate IDs, where an unknown stream
goes."""

from __future__ import annotations

import pytest

from smart_resume.core.clients import (
    UNKNOWN_STREAM,
    Client,
    for_stream,
    stream_number,
    with_duplicates_marked,
)


def _client(client_id: str, stream: int, record_id: str = "") -> Client:
    return Client(
        client_id=client_id, name=client_id, base_id="appX", stream=stream, record_id=record_id
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        (3.0, 3),
        (" 3 ", 3),
        ("64", 64),
        (64, 64),
        (None, None),
        ("", None),
        ("three", None),
        (3.5, None),
        (True, None),
        (0, None),
        (65, None),
        ("0065", None),
        pytest.param("9" * 5000, None, id="5000-digit-text"),
        pytest.param(10**5000, None, id="5000-digit-int"),
        (float("nan"), None),
        (float("inf"), None),
        ([3], None),
        ({"stream": 3}, None),
        ("３", None),  # a full-width digit is decimal to Python, but not a number people meant
    ],
)
def test_stream_number__reads_whole_numbers_in_range_only(
    value: object, expected: int | None
) -> None:
    """Only whole numbers 1..64 (as number or digits) are streams; nothing raises."""
    assert stream_number(value) == expected


def test_with_duplicates_marked__one_client_per_id_with_a_problem_naming_the_records() -> None:
    """Duplicates keep the first record's data, in first-seen order, with a problem."""
    clients = [_client("a", 1, "rec1"), _client("b", 1, "rec2"), _client("a", 2, "rec3")]

    marked = with_duplicates_marked(clients)

    assert [(c.client_id, c.record_id) for c in marked] == [("a", "rec1"), ("b", "rec2")]
    assert marked[0].problem == (
        "Client ID 'a' is used by 2 Clients records (rec1, rec3); make it unique"
    )
    assert marked[1].problem == ""


def test_for_stream__unknown_stream_goes_to_the_runs_first_stream_only() -> None:
    """An ad-hoc client whose stream is unknown is recorded by exactly one worker: the first
    stream's."""
    clients = [_client("one", 1), _client("two", 2), _client("lost", UNKNOWN_STREAM)]

    assert [c.client_id for c in for_stream(clients, 2, [3, 2])] == ["two", "lost"]
    assert [c.client_id for c in for_stream(clients, 3, [3, 2])] == []
    assert [c.client_id for c in for_stream(clients, 1, [1])] == ["one", "lost"]
