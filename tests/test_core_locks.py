"""Lease decisions: take, renew, take over a stale Lease, or keep away."""

from __future__ import annotations

import datetime

import pytest

from smart_resume.core.locks import LeaseDecision, LeaseView, decide, format_microtime, lease_spec

NOW = datetime.datetime(2026, 11, 22, 6, 0, 0, tzinfo=datetime.UTC)


def _view(holder: str, seconds_ago: float, duration: int = 300) -> LeaseView:
    return LeaseView(
        holder=holder,
        renew_time=NOW - datetime.timedelta(seconds=seconds_ago),
        duration_seconds=duration,
    )


@pytest.mark.parametrize(
    ("lease", "expected"),
    [
        pytest.param(None, LeaseDecision.CREATE, id="absent"),
        pytest.param(_view("ns/me/1", 1000), LeaseDecision.OURS, id="ours-even-if-old"),
        pytest.param(_view("ns/other/2", 10), LeaseDecision.HELD, id="live-other"),
        pytest.param(_view("ns/other/2", 300), LeaseDecision.TAKE_OVER, id="expired-exactly"),
        pytest.param(_view("ns/other/2", 301), LeaseDecision.TAKE_OVER, id="stale-other"),
        pytest.param(_view("", 1), LeaseDecision.TAKE_OVER, id="released-holder"),
        pytest.param(
            LeaseView("ns/other/2", None, 300), LeaseDecision.TAKE_OVER, id="never-renewed"
        ),
    ],
)
def test_decide__table(lease: LeaseView | None, expected: LeaseDecision) -> None:
    """Each Lease state maps to the one action a run may take on it."""
    assert decide(lease, holder="ns/me/1", now=NOW) is expected


def test_decide__uses_the_records_own_duration() -> None:
    """Staleness is measured with the Lease's leaseDurationSeconds, not the reader's settings."""
    assert (
        decide(_view("ns/other/2", 20, duration=10), holder="ns/me/1", now=NOW)
        is LeaseDecision.TAKE_OVER
    )
    assert (
        decide(_view("ns/other/2", 20, duration=30), holder="ns/me/1", now=NOW)
        is LeaseDecision.HELD
    )


def test_format_microtime__six_digits_even_at_zero_microseconds() -> None:
    """MicroTime always has six fractional digits; isoformat() would drop them at .000000."""
    assert format_microtime(NOW) == "2026-11-22T06:00:00.000000Z"
    assert format_microtime(NOW.replace(microsecond=7)) == "2026-11-22T06:00:00.000007Z"


def test_lease_view__round_trips_a_written_spec() -> None:
    """A spec written by lease_spec reads back as the same holder, time and transitions."""
    spec = lease_spec(holder="ns/me/1", now=NOW, duration_seconds=300, transitions=4)
    view = LeaseView.from_spec(spec)
    assert (view.holder, view.renew_time, view.duration_seconds, view.transitions) == (
        "ns/me/1",
        NOW,
        300,
        4,
    )
