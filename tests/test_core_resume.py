"""Resume: choosing the source run, carrying progress forward, and planning a cycle."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest

from smart_resume.core.resume import (
    CyclePlan,
    carry_forward,
    find_resume_source,
    is_cycle_finished,
    plan_cycle,
)
from smart_resume.core.spec import TASK_ORDER
from smart_resume.core.status import Phase, stream_phase

CLIENTS = ["acme", "globex", "initech"]


def _run(
    name: str, created: str, streams: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": f"2025-11-22T{created}Z"},
        "spec": {"streams": [1], **spec},
        "status": {"streams": streams or {}},
    }


def _tasks(*states: str) -> dict[str, Any]:
    return {task: {"state": state} for task, state in zip(TASK_ORDER, states, strict=False)}


UNFINISHED = {"cycle": "SR-251122-001", "clientsTotal": 2, "clients": {"acme": {"state": "Failed"}}}
FINISHED = {
    "cycle": "SR-251122-001",
    "clientsTotal": 1,
    "clients": {"acme": {"state": "Completed"}},
}


class _Worker:
    """Plays the worker loop of the resume module's docstring over a stream entry.

    Each task costs one unit of ``budget``; when it runs out, the task just started stays Running,
    as when the deadline cuts a run. Clients in ``failing`` fail their first remaining task.
    """

    def __init__(self, budget: int = 1_000, failing: frozenset[str] = frozenset()) -> None:
        self.budget = budget
        self.failing = failing
        self.completed_tasks: list[tuple[str, str]] = []
        self.started_clients: list[str] = []

    def work(
        self,
        stream: dict[str, Any],
        *,
        loaded: list[str],
        tasks: tuple[str, ...] = TASK_ORDER,
        max_attempts: int = 3,
    ) -> dict[str, Any]:
        stream = copy.deepcopy(stream)
        stream["clientsTotal"] = len(loaded)
        clients: dict[str, Any] = stream.setdefault("clients", {})
        while True:
            plan = plan_cycle(loaded, clients, tasks=tasks, max_attempts=max_attempts)
            for client_id in plan.dropped:
                del clients[client_id]
            for client_id in plan.quarantine:
                clients[client_id]["state"] = "Quarantined"
            if not plan.order:
                return stream
            for client_id in plan.order:
                if not self._process(clients, client_id, plan):
                    return stream

    def _process(self, clients: dict[str, Any], client_id: str, plan: CyclePlan) -> bool:
        entry = clients.setdefault(client_id, {"tasks": {}})
        entry["attempts"] = entry.get("attempts", 0) + 1
        entry["state"] = "Running"
        self.started_clients.append(client_id)
        for task in plan.remaining_tasks(client_id):
            entry.setdefault("tasks", {})[task] = {"state": "Running"}
            if self.budget == 0:
                return False
            self.budget -= 1
            if client_id in self.failing:
                entry["tasks"][task]["state"] = entry["state"] = "Failed"
                return True
            entry["tasks"][task] = {"state": "Completed", "examined": 1}
            self.completed_tasks.append((client_id, task))
        entry["state"] = "Completed"
        return True


def test_resume__chain_of_three_runs() -> None:
    """A is cut mid-client, B resumes at its first unfinished task, C sees B done, starts anew."""
    worker = _Worker(budget=4)
    stream_a = worker.work({"cycle": "SR-251122-001"}, loaded=CLIENTS)
    assert stream_a["clients"]["acme"]["state"] == "Completed"
    assert stream_a["clients"]["globex"]["state"] == "Running"
    assert stream_a["clients"]["globex"]["tasks"] == {
        "lead_scoring": {"state": "Completed", "examined": 1},
        "post_harvesting": {"state": "Running"},
    }
    run_a = _run(
        "run-a",
        "01:00:00",
        {"1": {**stream_a, "job": "run-a-s1", "phase": "TimedOut", "currentClient": "globex"}},
    )
    run_b = _run("run-b", "03:00:00")

    assert find_resume_source(1, [run_a, run_b], current=run_b) is run_a
    carried = carry_forward(run_a["status"]["streams"]["1"])
    assert carried["cycle"] == "SR-251122-001"
    plan = plan_cycle(CLIENTS, carried["clients"], tasks=TASK_ORDER, max_attempts=3)
    assert (plan.order, plan.completed) == (("globex", "initech"), ("acme",))
    assert plan.remaining_tasks("globex") == ["post_harvesting", "post_scoring"]

    worker.budget = 1_000
    stream_b = worker.work(carried, loaded=CLIENTS)
    run_b["status"]["streams"]["1"] = {**stream_b, "resumedFrom": "run-a", "phase": "Succeeded"}
    assert is_cycle_finished(stream_b)
    assert Counter(worker.completed_tasks) == {(c, t): 1 for c in CLIENTS for t in TASK_ORDER}

    run_c = _run("run-c", "05:00:00")
    assert find_resume_source(1, [run_a, run_b, run_c], current=run_c) is None
    assert find_resume_source(1, [run_b, run_c], current=run_c) is None


def test_resume__failing_client_is_retried_after_the_rest_then_quarantined() -> None:
    """A client that keeps failing is tried max_attempts times, after the others, then dropped."""
    worker = _Worker(failing=frozenset({"globex"}))
    stream = worker.work({"cycle": "SR-251122-001"}, loaded=CLIENTS, max_attempts=3)
    assert worker.started_clients == ["acme", "globex", "initech", "globex", "globex"]
    assert stream["clients"]["globex"] == {
        "state": "Quarantined",
        "attempts": 3,
        "tasks": {"lead_scoring": {"state": "Failed"}},
    }
    assert is_cycle_finished(stream)
    finished = stream_phase(stream, job_finished=True, deadline_exceeded=False, terminated=False)
    assert finished == Phase.PARTIALLY_SUCCEEDED


def test_resume__interrupted_attempts_count_towards_quarantine() -> None:
    """A client cut in every run (say it crashes its worker) is quarantined, not retried forever."""
    stream: dict[str, Any] = {"cycle": "SR-251122-001"}
    for _ in range(3):
        stream = carry_forward(_Worker(budget=0).work(stream, loaded=["acme", "globex"]))
    plan = plan_cycle(["acme", "globex"], stream["clients"], tasks=TASK_ORDER, max_attempts=3)
    assert (plan.quarantine, plan.order) == (("acme",), ("globex",))


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        pytest.param([], None, id="no-runs"),
        pytest.param([_run("old", "01:00:00", {"1": UNFINISHED})], "old", id="latest-unfinished"),
        pytest.param([_run("old", "01:00:00", {"1": FINISHED})], None, id="latest-finished"),
        pytest.param(
            [_run("a", "01:00:00", {"1": UNFINISHED}), _run("b", "02:00:00", {"1": FINISHED})],
            None,
            id="finished-after-unfinished",
        ),
        pytest.param(
            [_run("b", "02:00:00", {"1": UNFINISHED}), _run("a", "01:00:00", {"1": FINISHED})],
            "b",
            id="by-creation-not-list-order",
        ),
        pytest.param(
            [
                _run("a", "01:00:00", {"1": UNFINISHED}),
                _run("skipper", "02:00:00", {"1": {"phase": "Skipped", "reason": "LockHeld"}}),
            ],
            "a",
            id="skipped-stream-passed-over",
        ),
        pytest.param(
            [_run("a", "01:00:00", {"1": UNFINISHED}), _run("other", "02:00:00", {"2": FINISHED})],
            "a",
            id="other-stream-passed-over",
        ),
        pytest.param(
            [
                _run("a", "01:00:00", {"1": UNFINISHED}),
                _run("adhoc", "02:00:00", {"1": FINISHED}, clients=["acme"]),
            ],
            "a",
            id="ad-hoc-passed-over",
        ),
        pytest.param([_run("later", "09:00:00", {"1": UNFINISHED})], None, id="later-run-ignored"),
        pytest.param(
            [_run("current", "05:00:00", {"1": UNFINISHED})], None, id="current-run-ignored"
        ),
        pytest.param(
            [
                _run("a-run", "05:00:00", {"1": UNFINISHED}),
                _run("z-run", "05:00:00", {"1": FINISHED}),
            ],
            "a-run",
            id="same-second-name-breaks-tie",
        ),
    ],
)
def test_find_resume_source__latest_earlier_run_decides(
    runs: list[dict[str, Any]], expected: str | None
) -> None:
    """The latest earlier regular run with a cycle of the stream is resumed if its cycle is open."""
    current = _run("current", "05:00:00")
    source = find_resume_source(1, runs, current=current)
    assert (source and source["metadata"]["name"]) == expected


def test_find_resume_source__needs_the_current_creation_time() -> None:
    """Without the current run's creationTimestamp "earlier" is unknown: an error, not a guess."""
    with pytest.raises(ValueError, match="creationTimestamp"):
        find_resume_source(1, [], current={"metadata": {"name": "new"}})


SOURCE_STREAM: dict[str, Any] = {
    "job": "run-a-s1",
    "lease": "smart-resume-stream-1",
    "phase": "TimedOut",
    "reason": "DeadlineExceeded",
    "message": "cut",
    "cycle": "SR-251121-004",
    "resumedFrom": "run-0",
    "clientsTotal": 5,
    "clientsDone": 1,
    "currentClient": "globex",
    "heartbeatTime": "2025-11-22T01:00:00Z",
    "clients": {
        "acme": {
            "name": "Acme",
            "state": "Completed",
            "attempts": 1,
            "tasks": _tasks(*["Completed"] * 3),
        },
        "globex": {
            "name": "Globex",
            "state": "Running",
            "attempts": 1,
            "message": "scoring posts",
            "tasks": _tasks("Completed", "Running"),
        },
        "initech": {"state": "TimedOut", "attempts": 2, "tasks": _tasks("TimedOut")},
        "umbrella": {"state": "Failed", "attempts": 1, "tasks": _tasks("Completed", "Failed")},
        "gone": None,
    },
}


def test_carry_forward__keeps_the_cycle_and_drops_the_execution() -> None:
    """Only the cycle, its counters and its clients move to the new run."""
    carried = carry_forward(SOURCE_STREAM)
    assert set(carried) == {"cycle", "clientsTotal", "clientsDone", "clients"}
    assert (carried["cycle"], carried["clientsTotal"], carried["clientsDone"]) == (
        "SR-251121-004",
        5,
        1,
    )
    assert set(carried["clients"]) == {"acme", "globex", "initech", "umbrella"}


def test_carry_forward__interrupted_client_becomes_pending() -> None:
    """A client and task cut while Running are Pending again, finished tasks untouched."""
    globex = carry_forward(SOURCE_STREAM)["clients"]["globex"]
    assert globex == {
        "name": "Globex",
        "state": "Pending",
        "attempts": 1,
        "tasks": _tasks("Completed", "Pending"),
    }


def test_carry_forward__failed_clients_keep_state_for_retry() -> None:
    """TimedOut, Failed and Completed clients are carried as they were."""
    carried = carry_forward(SOURCE_STREAM)["clients"]
    for client_id in ("acme", "initech", "umbrella"):
        assert carried[client_id] == SOURCE_STREAM["clients"][client_id]


def test_carry_forward__does_not_change_its_input() -> None:
    """The source run's status is left as it was, and shares nothing with the result."""
    before = copy.deepcopy(SOURCE_STREAM)
    carried = carry_forward(SOURCE_STREAM)
    carried["clients"]["acme"]["tasks"]["lead_scoring"]["state"] = "Pending"
    assert before == SOURCE_STREAM


def _plan(carried: dict[str, Any], loaded: list[str] = CLIENTS, **options: Any) -> CyclePlan:
    return plan_cycle(loaded, carried, **{"tasks": TASK_ORDER, "max_attempts": 3, **options})


@pytest.mark.parametrize(
    ("carried", "groups"),
    [
        pytest.param({}, {"order": ("acme", "globex", "initech")}, id="fresh-cycle"),
        pytest.param(
            {
                "acme": {"state": "Failed", "attempts": 1},
                "initech": {"state": "Pending", "attempts": 1},
            },
            {"order": ("globex", "initech", "acme")},
            id="retries-after-pending",
        ),
        pytest.param(
            {
                "acme": {"state": "TimedOut", "attempts": 1},
                "globex": {"state": "Failed", "attempts": 2},
            },
            {"order": ("initech", "acme", "globex")},
            id="retries-in-load-order",
        ),
        pytest.param(
            {
                "acme": {"state": "Failed", "attempts": 3},
                "globex": {"state": "TimedOut", "attempts": 4},
            },
            {"order": ("initech",), "quarantine": ("acme", "globex")},
            id="attempts-used-up",
        ),
        pytest.param(
            {"globex": {"state": "Pending", "attempts": 3}},
            {"order": ("acme", "initech"), "quarantine": ("globex",)},
            id="interrupted-on-last-attempt",
        ),
        pytest.param(
            {"acme": {"state": "Quarantined", "attempts": 3}},
            {"order": ("globex", "initech"), "quarantined": ("acme",)},
            id="already-quarantined",
        ),
        pytest.param(
            {"acme": {"state": "Completed", "attempts": 1, "tasks": _tasks(*["Completed"] * 3)}},
            {"order": ("globex", "initech"), "completed": ("acme",)},
            id="completed-skipped",
        ),
        pytest.param(
            {"acme": {"state": "Completed", "tasks": _tasks("Completed")}},
            {"order": ("acme", "globex", "initech")},
            id="completed-but-more-tasks-requested",
        ),
    ],
)
def test_plan_cycle__sorts_clients_into_groups(
    carried: dict[str, Any], groups: dict[str, tuple[str, ...]]
) -> None:
    """Each loaded client lands in exactly the group its carried state calls for."""
    plan = _plan(carried)
    for group in ("order", "quarantine", "quarantined", "completed", "dropped"):
        assert getattr(plan, group) == groups.get(group, ()), group


def test_plan_cycle__resumed_client_starts_at_first_unfinished_task() -> None:
    """Remaining tasks skip the Completed ones and keep the canonical order."""
    carried = {
        "acme": {"state": "Pending", "tasks": _tasks("Completed", "Pending")},
        "globex": {"state": "Failed", "tasks": _tasks("Completed", "Completed", "Failed")},
        "initech": {"state": "Pending", "tasks": {"post_harvesting": {"state": "Completed"}}},
    }
    plan = _plan(carried)
    assert plan.remaining_tasks("acme") == ["post_harvesting", "post_scoring"]
    assert plan.remaining_tasks("globex") == ["post_scoring"]
    assert plan.remaining_tasks("initech") == ["lead_scoring", "post_scoring"]


def test_plan_cycle__only_requested_tasks_remain() -> None:
    """A run of some tasks plans only those, whatever order they were requested in."""
    carried = {"globex": {"state": "Failed", "tasks": _tasks("Completed", "Failed")}}
    plan = _plan(carried, tasks=["post_scoring", "lead_scoring"])
    assert plan.remaining_tasks("acme") == ["lead_scoring", "post_scoring"]
    assert plan.remaining_tasks("globex") == ["post_scoring"]


def test_plan_cycle__client_with_no_requested_task_left_is_processed_to_close_it() -> None:
    """A failed client whose failed task this run does not ask for is processed with no task."""
    carried = {"acme": {"state": "Failed", "attempts": 3, "tasks": _tasks("Completed", "Failed")}}
    plan = _plan(carried, loaded=["acme"], tasks=["lead_scoring"])
    assert (plan.order, plan.quarantine, plan.completed) == (("acme",), (), ())
    assert plan.remaining_tasks("acme") == []


def test_resume__narrower_run_closes_a_cycle_left_with_failures() -> None:
    """The worker loop records such a client Completed, so the cycle finishes."""
    carried = {"acme": {"state": "Failed", "attempts": 1, "tasks": _tasks("Completed", "Failed")}}
    worker = _Worker()
    stream = worker.work(
        {"cycle": "SR-251122-001", "clients": carried}, loaded=["acme"], tasks=("lead_scoring",)
    )
    assert worker.completed_tasks == []
    assert stream["clients"]["acme"]["state"] == "Completed"
    assert is_cycle_finished(stream)


def test_plan_cycle__new_and_removed_clients() -> None:
    """New clients join the cycle as pending; entries of removed ones are reported as dropped."""
    carried = {
        "acme": {"state": "Completed", "tasks": _tasks(*["Completed"] * 3)},
        "gone": {"state": "Failed", "attempts": 1},
        "left": {"state": "Pending"},
    }
    plan = _plan(carried, loaded=["acme", "newcomer"])
    assert (plan.order, plan.completed, plan.dropped) == (
        ("newcomer",),
        ("acme",),
        ("gone", "left"),
    )
    assert plan.remaining_tasks("newcomer") == list(TASK_ORDER)
    with pytest.raises(KeyError):
        plan.remaining_tasks("gone")


def test_plan_cycle__duplicate_loaded_ids_are_planned_once() -> None:
    """A client listed twice by the loader is still processed once."""
    assert _plan({}, loaded=["acme", "globex", "acme"]).order == ("acme", "globex")
