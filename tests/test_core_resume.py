"""Resume: claiming a stream's cycle from its checkpoint, and planning the cycle."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest

from smart_resume.core.checkpoint import (
    ClaimDecision,
    claim_cycle,
    cycle_counts,
    decode_clients,
    encode_client,
)
from smart_resume.core.resume import CyclePlan, plan_cycle
from smart_resume.core.spec import TASK_ORDER

CLIENTS = ["acme", "globex", "initech"]


def _tasks(*states: str) -> dict[str, Any]:
    return {task: {"state": state} for task, state in zip(TASK_ORDER, states, strict=False)}


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


def _stored(stream: dict[str, Any]) -> dict[str, Any]:
    """A worked stream as its checkpoint stores it (clients encoded)."""
    return {**stream, "clients": {c: encode_client(e) for c, e in stream["clients"].items()}}


def _claim(checkpoint: dict[str, Any], run: str, **options: Any) -> Any:
    return claim_cycle(
        checkpoint,
        run_name=run,
        run_uid=f"uid-{run}",
        run_id=f"SR-{run}",
        **{"continue_unfinished": True, **options},
    )


def test_resume__chain_of_three_runs() -> None:
    """A is cut mid-client; B claims and continues A's cycle at the first unfinished task; C
    finds the cycle finished and opens a new one."""
    opened = _claim({}, "a")
    assert opened.decision is ClaimDecision.OPEN
    assert opened.status == {"cycle": "SR-a", "owner": "a", "ownerUid": "uid-a", "clients": {}}
    worker = _Worker(budget=4)
    stream_a = _stored(worker.work(opened.status, loaded=CLIENTS))
    clients = decode_clients(stream_a)
    assert clients["acme"]["state"] == "Completed"
    assert clients["globex"]["state"] == "Running"
    assert [t["state"] for t in clients["globex"]["tasks"].values()] == ["Completed", "Running"]

    claim_b = _claim(stream_a, "b")
    assert (claim_b.decision, claim_b.previous_owner) == (ClaimDecision.CONTINUE, "a")
    assert (claim_b.status["cycle"], claim_b.status["owner"]) == ("SR-a", "b")
    plan = plan_cycle(CLIENTS, decode_clients(claim_b.status), tasks=TASK_ORDER, max_attempts=3)
    assert (plan.order, plan.completed) == (("globex", "initech"), ("acme",))
    assert plan.remaining_tasks("globex") == ["post_harvesting", "post_scoring"]

    worker.budget = 1_000
    carried = {**claim_b.status, "clients": decode_clients(claim_b.status)}
    stream_b = _stored(worker.work(carried, loaded=CLIENTS))
    assert cycle_counts(stream_b).finished
    assert Counter(worker.completed_tasks) == {(c, t): 1 for c in CLIENTS for t in TASK_ORDER}

    claim_c = _claim(stream_b, "c")
    assert claim_c.decision is ClaimDecision.OPEN
    assert (claim_c.status["cycle"], claim_c.status["clients"]) == ("SR-c", {})
    assert _claim(claim_c.status, "c").decision is ClaimDecision.OURS, "a re-run changes nothing"


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
    counts = cycle_counts(_stored(stream))
    assert counts.finished and not counts.all_completed


def test_resume__interrupted_attempts_count_towards_quarantine() -> None:
    """A client cut in every run (say it crashes its worker) is quarantined, not retried forever."""
    stream: dict[str, Any] = {"cycle": "SR-251122-001"}
    for _ in range(3):
        stream = _Worker(budget=0).work(stream, loaded=["acme", "globex"])
        stream["clients"] = decode_clients(_stored(stream))  # through the checkpoint each time
    plan = plan_cycle(["acme", "globex"], stream["clients"], tasks=TASK_ORDER, max_attempts=3)
    assert (plan.quarantine, plan.order) == (("acme",), ("globex",))


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
    assert cycle_counts(_stored(stream)).finished


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
