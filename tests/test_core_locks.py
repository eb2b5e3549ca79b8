"""Lease decisions: take, renew, take over a stale Lease, or keep away."""

from __future__ import annotations

import datetime

import pytest

from smart_resume.core.locks import (
    LeaseDecision,
    LeaseObservations,
    LeaseView,
    Observation,
    decide,
    format_microtime,
    lease_spec,
)

NOW = datetime.datetime(2026, 11, 22, 6, 0, 0, tzinfo=datetime.UTC)


def _view(holder: str, duration: int = 300) -> LeaseView:
    return LeaseView(holder=holder, renew_time=NOW, duration_seconds=duration)


FRESH = Observation(unchanged_seconds=0.0, seen_renewed=False)
RENEWING = Observation(unchanged_seconds=10.0, seen_renewed=True)


@pytest.mark.parametrize(
    ("lease", "observation", "expected"),
    [
        pytest.param(None, None, LeaseDecision.CREATE, id="absent"),
        pytest.param(_view("ns/me/1"), None, LeaseDecision.OURS, id="ours"),
        pytest.param(_view("ns/other/2"), FRESH, LeaseDecision.WAIT, id="first-seen"),
        pytest.param(_view("ns/other/2"), RENEWING, LeaseDecision.HELD, id="seen-renewing"),
        pytest.param(
            _view("ns/other/2"),
            Observation(300.0, seen_renewed=False),
            LeaseDecision.TAKE_OVER,
            id="unchanged-for-its-duration",
        ),
        pytest.param(
            _view("ns/other/2"),
            Observation(300.0, seen_renewed=True),
            LeaseDecision.TAKE_OVER,
            id="stopped-renewing",
        ),
        pytest.param(_view(""), None, LeaseDecision.TAKE_OVER, id="released-holder"),
    ],
)
def test_decide__table(
    lease: LeaseView | None, observation: Observation | None, expected: LeaseDecision
) -> None:
    """Each Lease state, as observed here, maps to the one action a run may take on it."""
    assert decide(lease, holder="ns/me/1", observation=observation) is expected


def test_decide__ignores_the_renew_time_written_by_another_clock() -> None:
    """A renewTime ten minutes in the past or the future changes nothing: only the observer's
    own clock judges staleness."""
    for skew in (-600, 600):
        lease = LeaseView(
            "ns/other/2", NOW + datetime.timedelta(seconds=skew), duration_seconds=300
        )
        assert decide(lease, holder="ns/me/1", observation=RENEWING) is LeaseDecision.HELD
        stale = Observation(301.0, seen_renewed=True)
        assert decide(lease, holder="ns/me/1", observation=stale) is LeaseDecision.TAKE_OVER


def test_decide__uses_the_records_own_duration() -> None:
    """Staleness is measured with the Lease's leaseDurationSeconds, not the reader's settings."""
    observed = Observation(20.0, seen_renewed=True)
    assert (
        decide(_view("ns/other/2", duration=10), holder="ns/me/1", observation=observed)
        is LeaseDecision.TAKE_OVER
    )
    assert (
        decide(_view("ns/other/2", duration=30), holder="ns/me/1", observation=observed)
        is LeaseDecision.HELD
    )


def test_lease_observations__count_on_the_observers_clock() -> None:
    """A record is timed from when this observer first saw it; a change seen soon after a look
    shows a renewing holder, one found after a long absence does not; a restarted observer
    starts from zero."""
    observations = LeaseObservations()

    def look(holder: str, version: str, now: float) -> Observation:
        return observations.observe(
            "ns/l", holder=holder, version=version, duration_seconds=300, now=now
        )

    assert look("h", "1", 100.0) == FRESH
    assert look("h", "1", 130.0) == Observation(30.0, False)
    assert look("h", "2", 131.0) == Observation(0.0, True)
    assert look("h2", "3", 132.0) == FRESH, "another holder: not known live"
    assert look("h2", "4", 1000.0) == FRESH, "a change after a long absence proves nothing"
    restarted = LeaseObservations()
    assert restarted.observe("ns/l", holder="h2", version="4", duration_seconds=300, now=5.0) == (
        FRESH
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
