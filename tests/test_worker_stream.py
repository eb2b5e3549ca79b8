"""The stream worker's loop, without Kubernetes: checkpoints are collected instead of patched.

Clients run in real child processes with the test-only tasks of ``support.fake_tasks``.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any

from smart_resume.config import JobSettings, Settings
from smart_resume.core.clients import Client
from smart_resume.core.spec import RunSpec
from smart_resume.worker.stream import StopSignals, StreamWorker, _merge

SETTINGS = Settings(job=JobSettings(task_plugins="support.fake_tasks:register"))


def _client(client_id: str, behaviour: str = "") -> Client:
    fields = {"Test Task Seconds": 0.0, **({"Test Behaviour": behaviour} if behaviour else {})}
    return Client(
        client_id=client_id, name=client_id.title(), base_id="appX", stream=1, fields=fields
    )


def _worker(
    clients: list[Client],
    *,
    signals: StopSignals | None = None,
    deadline_in: float = 3600,
    carried: dict[str, Any] | None = None,
    **spec: Any,
) -> tuple[StreamWorker, dict[str, Any]]:
    state: dict[str, Any] = {"clients": copy.deepcopy(carried or {})}  # the status as stored
    worker = StreamWorker(
        run_id="SR-261122-001",
        spec=RunSpec.from_body({"spec": {"streams": [1], **spec}}),
        stream=1,
        settings=SETTINGS,
        clients=clients,
        carried=carried or {},
        patch=lambda fields: _merge(state, fields),
        signals=signals or StopSignals(),
        deadline=time.monotonic() + deadline_in,
    )
    return worker, state


def test_stream_worker__completes_every_client_once() -> None:
    """Every client ends Completed after one attempt, with each task's counts checkpointed."""
    worker, state = _worker([_client("acme-recruiting"), _client("blue-harbor")])
    result = worker.run()
    assert result.reason == "CycleCompleted"
    assert state["clientsDone"] == state["clientsTotal"] == 2
    for entry in state["clients"].values():
        assert (entry["state"], entry["attempts"]) == ("Completed", 1)
        assert entry["tasks"]["post_scoring"] == {
            "state": "Completed",
            "examined": 2,
            "succeeded": 1,
            "failed": 0,
            "skipped": {"already_done": 1},
            "durationSeconds": entry["tasks"]["post_scoring"]["durationSeconds"],
        }


def test_stream_worker__failing_client_is_retried_then_quarantined() -> None:
    """A client whose task fails is retried after the others, then quarantined at maxAttempts."""
    worker, state = _worker(
        [_client("acme-recruiting", "fail:post_scoring"), _client("blue-harbor")], maxAttempts=2
    )
    result = worker.run()
    bad = state["clients"]["acme-recruiting"]
    assert (bad["state"], bad["attempts"]) == ("Quarantined", 2)
    assert bad["tasks"]["post_scoring"]["state"] == "Failed"
    assert "failed on purpose" in bad["tasks"]["post_scoring"]["error"]
    assert state["clients"]["blue-harbor"]["state"] == "Completed"
    assert result.reason == "CycleFinishedWithProblems"


def test_stream_worker__resumes_at_the_first_unfinished_task() -> None:
    """A carried client with lead scoring done continues at post harvesting."""
    carried = {
        "acme-recruiting": {
            "state": "Pending",
            "attempts": 1,
            "tasks": {"lead_scoring": {"state": "Completed", "examined": 9}},
        }
    }
    worker, state = _worker([_client("acme-recruiting")], carried=carried)
    worker.run()
    entry = state["clients"]["acme-recruiting"]
    assert entry["attempts"] == 2
    assert entry["tasks"]["lead_scoring"] == {"state": "Completed", "examined": 9}, "not run again"
    assert entry["tasks"]["post_harvesting"]["state"] == "Completed"


def test_stream_worker__stops_when_the_deadline_is_near() -> None:
    """With less than one client timeout left, no client is started and the reason says why."""
    worker, state = _worker([_client("acme-recruiting")], deadline_in=30, clientTimeoutSeconds=60)
    result = worker.run()
    assert result.reason == "DeadlineNear"
    assert state["clients"]["acme-recruiting"]["attempts"] == 0


def test_stream_worker__stops_when_the_lease_is_lost() -> None:
    """A lost Lease stops the loop before the next client."""
    signals = StopSignals()
    signals.stop(signals.lock_lost)
    worker, state = _worker([_client("acme-recruiting")], signals=signals)
    assert worker.run().reason == "LockLost"
    assert state["reason"] == "LockLost"
    assert state["clients"]["acme-recruiting"]["state"] == "Pending"


def test_merge__applies_rfc7386() -> None:
    """Nested maps merge key by key and null deletes, as the API server's merge patch does."""
    target = {"a": {"b": 1, "c": 2}, "d": 3}
    _merge(target, {"a": {"b": None, "e": 4}, "d": None})
    assert target == {"a": {"c": 2, "e": 4}}


def test_stream_worker__task_asked_to_wrap_up_keeps_its_counts() -> None:
    """A task that honours `cancelled` near the timeout is recorded TimedOut with its counts
    kept."""
    worker, state = _worker(
        [_client("acme-recruiting", "wrap-up:lead_scoring")], clientTimeoutSeconds=2, maxAttempts=1
    )
    worker.run()
    entry = state["clients"]["acme-recruiting"]
    task = entry["tasks"]["lead_scoring"]
    assert (task["state"], task["examined"]) == ("TimedOut", 2)
    assert "work done is kept" in task["error"]
    assert entry["state"] == "Quarantined"


def test_stream_worker__unusable_record_is_recorded_and_the_rest_carries_on() -> None:
    """A client whose record has a problem is Quarantined at once with that problem as its
    message, without an attempt or a task; the other clients complete."""
    problem = "Clients record rec1: Processing Stream is 'two', not a stream number 1-64"
    odd = dataclasses.replace(_client("odd-record"), problem=problem)
    worker, state = _worker([odd, _client("blue-harbor")])

    result = worker.run()

    entry = state["clients"]["odd-record"]
    assert (entry["state"], entry["message"], entry["attempts"]) == ("Quarantined", problem, 0)
    assert "tasks" not in entry
    assert state["clients"]["blue-harbor"]["state"] == "Completed"
    assert state["clientsDone"] == 2
    assert result.reason == "CycleFinishedWithProblems"
