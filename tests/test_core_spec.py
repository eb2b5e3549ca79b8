"""A run's spec read from a custom resource body, with the CRD's defaults and rules."""

from __future__ import annotations

from typing import Any

import pytest

from smart_resume.core.spec import (
    TASK_ORDER,
    InvalidSpecError,
    ResumeMode,
    RunSpec,
    ordered_tasks,
)


def _body(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "run"}, "spec": spec}


def test_from_body__minimal_spec_gets_the_crd_defaults() -> None:
    """Only streams given: every other field has the CRD's default."""
    assert RunSpec.from_body(_body(streams=[1])) == RunSpec(
        streams=(1,),
        tasks=TASK_ORDER,
        clients=None,
        lead_scoring_limit=None,
        client_timeout_seconds=600,
        deadline_seconds=7200,
        max_attempts=3,
        resume=ResumeMode.AUTO,
        suspend=False,
        dry_run=False,
    )


def test_from_body__reads_every_field() -> None:
    """Each camelCase field of the CR lands in its attribute."""
    spec = RunSpec.from_body(
        _body(
            streams=[3, 1],
            tasks=["post_scoring"],
            clients=["acme", "globex"],
            leadScoringLimit=25,
            clientTimeoutSeconds=120,
            deadlineSeconds=900,
            maxAttempts=5,
            resume="Fresh",
            suspend=True,
            dryRun=True,
        )
    )
    assert spec == RunSpec(
        streams=(3, 1),
        tasks=("post_scoring",),
        clients=("acme", "globex"),
        lead_scoring_limit=25,
        client_timeout_seconds=120,
        deadline_seconds=900,
        max_attempts=5,
        resume=ResumeMode.FRESH,
        suspend=True,
        dry_run=True,
    )
    assert spec.is_ad_hoc


def test_from_body__tasks_come_in_canonical_order() -> None:
    """Tasks listed in any order run lead scoring, then harvesting, then post scoring."""
    spec = RunSpec.from_body(_body(streams=[1], tasks=["post_scoring", "lead_scoring"]))
    assert spec.tasks == ("lead_scoring", "post_scoring")


def test_from_body__without_clients_is_not_ad_hoc() -> None:
    """No clients list means every active client of each stream."""
    assert not RunSpec.from_body(_body(streams=[1])).is_ad_hoc


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param({}, "streams: required", id="no-spec"),
        pytest.param(_body(), "streams: required", id="no-streams"),
        pytest.param(_body(streams=[]), "streams: must be a non-empty list", id="empty-streams"),
        pytest.param(_body(streams=[1, 1]), "streams: duplicate value 1", id="duplicate-stream"),
        pytest.param(_body(streams=[0]), "streams: 0 must be between 1 and 64", id="zero-stream"),
        pytest.param(_body(streams=[65]), "streams: 65 must be between 1 and 64", id="high-stream"),
        pytest.param(_body(streams=["1"]), "streams: every item must be a int", id="string-stream"),
        pytest.param(_body(streams=[True]), "streams: every item must be a int", id="bool-stream"),
        pytest.param(
            _body(streams=[1], tasks=["lead_scoring", "magic"]),
            "tasks: unsupported value 'magic'",
            id="unknown-task",
        ),
        pytest.param(
            _body(streams=[1], tasks=["post_scoring", "post_scoring"]),
            "tasks: duplicate value post_scoring",
            id="duplicate-task",
        ),
        pytest.param(_body(streams=[1], clients=[""]), "clients: a client ID", id="empty-client"),
        pytest.param(
            _body(streams=[1], clientTimeoutSeconds=-5),
            "clientTimeoutSeconds: -5 must be between 1 and 86400",
            id="negative-timeout",
        ),
        pytest.param(
            _body(streams=[1], deadlineSeconds=5),
            "deadlineSeconds: 5 must be between 10 and 604800",
            id="short-deadline",
        ),
        pytest.param(
            _body(streams=[1], clientTimeoutSeconds=7200),
            "clientTimeoutSeconds must be less than deadlineSeconds",
            id="timeout-not-below-deadline",
        ),
        pytest.param(
            _body(streams=[1], maxAttempts=11),
            "maxAttempts: 11 must be between 1 and 10",
            id="too-many-attempts",
        ),
        pytest.param(
            _body(streams=[1], leadScoringLimit=0),
            "leadScoringLimit: 0 must be between 1 and 1000000",
            id="zero-limit",
        ),
        pytest.param(
            _body(streams=[1], leadScoringLimit="10"),
            "leadScoringLimit: must be an integer",
            id="string-limit",
        ),
        pytest.param(
            _body(streams=[1], resume="Sometimes"),
            "resume: unsupported value 'Sometimes'",
            id="unknown-resume",
        ),
        pytest.param(
            _body(streams=[1], suspend="yes"), "suspend: must be true or false", id="string-suspend"
        ),
        pytest.param(
            _body(streams=[1], leadScoringLimit=1_000_001),
            "leadScoringLimit: 1000001 must be between 1 and 1000000",
            id="limit-too-high",
        ),
        pytest.param(
            _body(streams=[1], clientTimeoutSeconds=86_401, deadlineSeconds=600_000),
            "clientTimeoutSeconds: 86401 must be between 1 and 86400",
            id="timeout-too-long",
        ),
        pytest.param(
            _body(streams=[1], deadlineSeconds=604_801),
            "deadlineSeconds: 604801 must be between 10 and 604800",
            id="deadline-too-long",
        ),
    ],
)
def test_from_body__rejects_what_the_crd_rejects(body: dict[str, Any], problem: str) -> None:
    """Unvalidated input breaking a CRD rule raises InvalidSpecError naming the rule."""
    with pytest.raises(InvalidSpecError, match="invalid spec") as caught:
        RunSpec.from_body(body)
    assert problem in str(caught.value)


def test_from_body__reports_every_problem_at_once() -> None:
    """All broken rules are named in one error, not one per attempt."""
    with pytest.raises(InvalidSpecError) as caught:
        RunSpec.from_body(_body(streams=[0], maxAttempts=0, resume="Later"))
    assert str(caught.value).count(";") == 2


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        pytest.param([], (), id="none"),
        pytest.param(["post_scoring", "lead_scoring"], ("lead_scoring", "post_scoring"), id="two"),
        pytest.param(reversed(TASK_ORDER), TASK_ORDER, id="all-reversed"),
        pytest.param(["post_harvesting", "test_only"], ("post_harvesting",), id="unknown-dropped"),
    ],
)
def test_ordered_tasks__sorts_into_canonical_order(tasks: Any, expected: tuple[str, ...]) -> None:
    """Any collection of task names comes back in TASK_ORDER, without names outside it."""
    assert ordered_tasks(tasks) == expected
