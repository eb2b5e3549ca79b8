"""Run IDs: SR-YYMMDD-NNN, numbered per day."""

from __future__ import annotations

from datetime import date

import pytest

from smart_resume.core.runid import next_run_id

TODAY = date(2025, 11, 22)


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        pytest.param([], "SR-251122-001", id="first-ever"),
        pytest.param(["SR-251121-007"], "SR-251122-001", id="first-of-the-day"),
        pytest.param(["SR-251122-001", "SR-251122-002"], "SR-251122-003", id="next"),
        pytest.param(["SR-251122-009", "SR-251122-002"], "SR-251122-010", id="highest-not-last"),
        pytest.param(["SR-251122-001", "SR-251122-005"], "SR-251122-006", id="gaps-not-filled"),
        pytest.param(["SR-251122-999"], "SR-251122-1000", id="past-999"),
        pytest.param(["SR-261122-004", "SR-251123-004"], "SR-251122-001", id="other-days"),
        pytest.param(
            ["", "SR-251122", "SR-251122-01", "SR-251122-abc", "XX-251122-005", "SR-251122-004x"],
            "SR-251122-001",
            id="malformed-ignored",
        ),
        pytest.param(["SR-251122-003", "garbage"], "SR-251122-004", id="malformed-among-valid"),
    ],
)
def test_next_run_id__numbers_runs_per_day(existing: list[str], expected: str) -> None:
    """The next ID is one past the highest well-formed ID of the same day."""
    assert next_run_id(existing, TODAY) == expected


def test_next_run_id__accepts_any_iterable() -> None:
    """A generator of IDs (e.g. read from listed runs) works as well as a list."""
    assert next_run_id((f"SR-251122-00{n}" for n in (1, 2)), TODAY) == "SR-251122-003"
