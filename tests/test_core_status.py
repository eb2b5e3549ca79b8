"""Status reductions: stream and run phases, summaries and the Succeeded condition."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from smart_resume.core.status import (
    ConditionStatus,
    Phase,
    client_counts,
    format_time,
    is_cycle_finished,
    is_terminal,
    run_phase,
    set_condition,
    stream_phase,
    succeeded_condition_for,
    summarize,
)

NOW = datetime(2025, 11, 22, 5, 48, 0, tzinfo=UTC)


def _stream(*states: str, total: int | None = -1, **fields: Any) -> dict[str, Any]:
    """A run's stream entry counting one client per state, as the operator copies it from the
    checkpoint; ``total`` defaults to the number of states."""
    by_state = Counter(states)
    entry: dict[str, Any] = {
        "clientsDone": by_state["Completed"] + by_state["Quarantined"],
        "counts": client_counts(by_state),
        **fields,
    }
    if total is not None:
        entry["clientsTotal"] = len(states) if total == -1 else total
    return entry


@pytest.mark.parametrize(
    ("stream", "finished"),
    [
        pytest.param(_stream("Completed", "Quarantined"), True, id="completed-and-quarantined"),
        pytest.param(_stream(), True, id="no-clients"),
        pytest.param(_stream("Completed", total=None), False, id="clients-not-loaded"),
        pytest.param(_stream("Completed", total=2), False, id="client-without-entry"),
        pytest.param(_stream("Completed", "Pending"), False, id="pending-left"),
        pytest.param(_stream("Completed", "Failed"), False, id="failed-left-for-retry"),
        pytest.param(_stream("TimedOut"), False, id="timed-out-left-for-retry"),
        pytest.param(_stream("Running"), False, id="running"),
        pytest.param({}, False, id="empty-entry"),
    ],
)
def test_is_cycle_finished__only_when_every_client_is_closed(
    stream: dict[str, Any], finished: bool
) -> None:
    """A cycle ends when each of its clientsTotal clients is Completed or Quarantined."""
    assert is_cycle_finished(stream) is finished


@pytest.mark.parametrize(
    ("stream", "flags", "expected"),
    [
        pytest.param({}, {}, Phase.PENDING, id="no-job-yet"),
        pytest.param({"job": "run-s1"}, {}, Phase.RUNNING, id="job-running"),
        pytest.param(
            _stream("Completed", job="run-s1"), {}, Phase.RUNNING, id="done-but-job-still-running"
        ),
        pytest.param(
            _stream("Completed", "Completed"),
            {"job_finished": True},
            Phase.SUCCEEDED,
            id="all-completed",
        ),
        pytest.param(_stream(), {"job_finished": True}, Phase.SUCCEEDED, id="no-clients"),
        pytest.param(
            _stream("Completed", "Quarantined"),
            {"job_finished": True},
            Phase.PARTIALLY_SUCCEEDED,
            id="some-quarantined",
        ),
        pytest.param(
            _stream("Completed", "Pending"),
            {"job_finished": True, "deadline_exceeded": True},
            Phase.TIMED_OUT,
            id="deadline-with-clients-left",
        ),
        pytest.param(
            _stream("Completed", "Failed"),
            {"job_finished": True},
            Phase.FAILED,
            id="job-failed-with-clients-left",
        ),
        pytest.param(
            _stream("Completed", "Completed"),
            {"job_finished": True, "deadline_exceeded": True},
            Phase.SUCCEEDED,
            id="finished-just-before-deadline",
        ),
        pytest.param(
            _stream("Running", job="run-s1"), {"terminated": True}, Phase.TERMINATED, id="deleted"
        ),
        pytest.param(
            _stream("Running", job="run-s1"),
            {"suspended": True},
            Phase.SUSPENDED,
            id="suspended",
        ),
        pytest.param(
            _stream("Completed"),
            {"terminated": True},
            Phase.SUCCEEDED,
            id="deleted-after-finishing",
        ),
        pytest.param(
            {"phase": "Skipped", "reason": "LockHeld"},
            {"job_finished": True},
            Phase.SKIPPED,
            id="skipped-stays-skipped",
        ),
    ],
)
def test_stream_phase__follows_the_table(
    stream: dict[str, Any], flags: dict[str, bool], expected: Phase
) -> None:
    """A stream's phase comes from its clients once its Job stopped, else from its Job."""
    arguments = {"job_finished": False, "deadline_exceeded": False, "terminated": False, **flags}
    assert stream_phase(stream, **arguments) == expected


S, P, R = Phase.SUCCEEDED, Phase.PENDING, Phase.RUNNING


@pytest.mark.parametrize(
    ("phases", "flags", "expected"),
    [
        pytest.param([], {}, P, id="no-streams"),
        pytest.param([P, P], {}, P, id="all-pending"),
        pytest.param([P, "Skipped"], {}, P, id="pending-and-skipped"),
        pytest.param([R, P], {}, R, id="one-running"),
        pytest.param([S, P], {}, R, id="one-done-one-pending"),
        pytest.param([S, "Suspended"], {}, R, id="unsuspending"),
        pytest.param([S, R], {"suspended": True}, Phase.SUSPENDED, id="suspended"),
        pytest.param([S, S], {"suspended": True}, S, id="suspended-after-finishing"),
        pytest.param([R, R], {"terminated": True}, Phase.TERMINATED, id="terminated"),
        pytest.param([S, S], {"terminated": True}, S, id="terminated-after-finishing"),
        pytest.param([S, S], {}, S, id="all-succeeded"),
        pytest.param(["Skipped", "Skipped"], {}, Phase.SKIPPED, id="all-skipped"),
        pytest.param(["TimedOut"], {}, Phase.TIMED_OUT, id="all-timed-out"),
        pytest.param(["Failed", "Failed"], {}, Phase.FAILED, id="all-failed"),
        pytest.param([S, "Skipped"], {}, Phase.PARTIALLY_SUCCEEDED, id="succeeded-and-skipped"),
        pytest.param([S, "Failed"], {}, Phase.PARTIALLY_SUCCEEDED, id="succeeded-and-failed"),
        pytest.param(
            ["PartiallySucceeded", "TimedOut"],
            {},
            Phase.PARTIALLY_SUCCEEDED,
            id="partial-and-timed-out",
        ),
        pytest.param([S, "Terminated"], {}, Phase.TERMINATED, id="succeeded-and-terminated"),
        pytest.param(["Failed", "TimedOut"], {}, Phase.FAILED, id="failed-and-timed-out"),
        pytest.param(["TimedOut", "Skipped"], {}, Phase.TIMED_OUT, id="timed-out-and-skipped"),
    ],
)
def test_run_phase__follows_the_table(
    phases: list[str], flags: dict[str, bool], expected: Phase
) -> None:
    """The run's phase reduces its streams' phases as the docstring's table says."""
    arguments = {"suspended": False, "terminated": False, **flags}
    assert run_phase(phases, **arguments) == expected


@pytest.mark.parametrize(
    ("phase", "terminal"),
    [(phase, phase not in {"Pending", "Running", "Suspended"}) for phase in Phase],
)
def test_is_terminal__for_every_phase(phase: Phase, terminal: bool) -> None:
    """Only Pending, Running and Suspended can still change."""
    assert is_terminal(phase) is terminal


def test_summarize__counts_over_all_streams() -> None:
    """Progress, totals and the streams summary add up the streams' client entries."""
    status = {
        "streams": {
            "2": _stream("Completed", "Quarantined", "TimedOut", phase="Running"),
            "1": _stream("Completed", "Failed", "Pending", total=4, phase="Running"),
            "3": _stream("Completed", phase="Succeeded"),
            "4": {"phase": "Skipped", "reason": "LockHeld"},
        }
    }
    assert summarize(status) == {
        "progress": "4/8",
        "current": "",
        "streamsSummary": "2/4",
        "totals": {"clients": 8, "completed": 3, "timedOut": 1, "failed": 1, "quarantined": 1},
    }


def test_summarize__current_lists_working_streams_in_order() -> None:
    """Current shows stream:client for unfinished streams only, by stream number."""
    status = {
        "streams": {
            "10": {"phase": "Running", "current": "initech"},
            "2": {"phase": "Running", "current": "globex"},
            "1": {"phase": "Running", "current": "acme"},
            "3": {"phase": "Succeeded", "current": "stale"},
            "4": {"phase": "Running"},
        }
    }
    assert summarize(status)["current"] == "1:acme 2:globex 10:initech"


def test_summarize__current_is_cut_with_a_count() -> None:
    """With many streams, Current stays short and says how many it left out."""
    streams = {str(n): {"phase": "Running", "current": f"client-{n:02d}"} for n in range(1, 21)}
    current = summarize({"streams": streams})["current"]
    assert len(current) <= 80
    shown = current.split(" ")
    assert shown[0] == "1:client-01"
    assert shown[-1] == f"+{20 - (len(shown) - 1)}"


def test_summarize__empty_status() -> None:
    """A run without streams yet summarizes to zeros."""
    assert summarize({}) == {
        "progress": "0/0",
        "current": "",
        "streamsSummary": "0/0",
        "totals": {"clients": 0, "completed": 0, "timedOut": 0, "failed": 0, "quarantined": 0},
    }


def test_summarize__ignores_deleted_entries() -> None:
    """Null entries (merge-patch deletions) and done counts beyond the total don't count."""
    stream = _stream("Completed", "Completed", total=1, phase="Running")
    assert summarize({"streams": {"1": stream, "2": None}})["progress"] == "1/1"


def _condition(**fields: Any) -> dict[str, Any]:
    return {
        "type": "Succeeded",
        "status": "Unknown",
        "reason": "Running",
        "message": "m",
        "lastTransitionTime": "2025-11-22T05:00:00Z",
        "observedGeneration": 1,
        **fields,
    }


def _set(conditions: list[dict[str, Any]], status: str, reason: str) -> list[dict[str, Any]]:
    return set_condition(
        conditions,
        type="Succeeded",
        status=status,
        reason=reason,
        message="new",
        now=NOW,
        observed_generation=2,
    )


def test_set_condition__adds_a_new_condition() -> None:
    """A new condition type is appended with lastTransitionTime = now."""
    other = _condition(type="Ready")
    assert _set([other], "Unknown", "Pending") == [
        other,
        _condition(
            reason="Pending",
            message="new",
            lastTransitionTime="2025-11-22T05:48:00Z",
            observedGeneration=2,
        ),
    ]


def test_set_condition__same_status_keeps_transition_time() -> None:
    """Changing only reason or message is no transition: lastTransitionTime stays."""
    [updated] = _set([_condition()], "Unknown", "Suspended")
    assert updated["lastTransitionTime"] == "2025-11-22T05:00:00Z"
    assert (updated["reason"], updated["message"], updated["observedGeneration"]) == (
        "Suspended",
        "new",
        2,
    )


def test_set_condition__status_change_moves_transition_time() -> None:
    """A status flip records now as lastTransitionTime, in place in the list."""
    conditions = [_condition(), _condition(type="Ready")]
    updated = _set(conditions, "True", "Succeeded")
    assert [c["type"] for c in updated] == ["Succeeded", "Ready"]
    assert updated[0]["lastTransitionTime"] == "2025-11-22T05:48:00Z"
    assert updated[0]["status"] == "True"


def test_set_condition__does_not_change_its_input() -> None:
    """The caller's list and dicts are left as they were."""
    conditions = [_condition()]
    _set(conditions, "True", "Succeeded")
    assert conditions == [_condition()]


@pytest.mark.parametrize(
    ("phase", "status"),
    [
        (Phase.PENDING, ConditionStatus.UNKNOWN),
        (Phase.RUNNING, ConditionStatus.UNKNOWN),
        (Phase.SUSPENDED, ConditionStatus.UNKNOWN),
        (Phase.SUCCEEDED, ConditionStatus.TRUE),
        (Phase.PARTIALLY_SUCCEEDED, ConditionStatus.FALSE),
        (Phase.TIMED_OUT, ConditionStatus.FALSE),
        (Phase.FAILED, ConditionStatus.FALSE),
        (Phase.TERMINATED, ConditionStatus.FALSE),
        (Phase.SKIPPED, ConditionStatus.FALSE),
    ],
)
def test_succeeded_condition_for__every_phase(phase: Phase, status: ConditionStatus) -> None:
    """Unknown while the run can change, True only for full success; the reason is the phase."""
    condition = succeeded_condition_for(phase)
    assert (condition.status, condition.reason) == (status, phase.value)
    assert condition.message


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param(NOW, "2025-11-22T05:48:00Z", id="utc"),
        pytest.param(NOW.replace(microsecond=999_999), "2025-11-22T05:48:00Z", id="drops-fraction"),
        pytest.param(
            datetime(2025, 11, 22, 7, 48, tzinfo=timezone(timedelta(hours=2))),
            "2025-11-22T05:48:00Z",
            id="other-zone",
        ),
    ],
)
def test_format_time__as_the_api_server_writes_it(moment: datetime, expected: str) -> None:
    """Times are RFC 3339 in UTC with whole seconds."""
    assert format_time(moment) == expected


def test_format_time__rejects_naive_datetimes() -> None:
    """A datetime without a zone is an error, not a guess."""
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2025, 11, 22))
