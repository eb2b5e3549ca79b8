"""The stream worker's loop, without Kubernetes: checkpoints are collected instead of patched.

Clients run in real child processes with the test-only tasks of ``support.fake_tasks``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from smart_resume.config import JobSettings, Settings
from smart_resume.core.checkpoint import decode_clients, encode_client
from smart_resume.core.clients import Client
from smart_resume.core.reasons import StreamReason
from smart_resume.core.spec import RunSpec
from smart_resume.worker.stream import CycleLost, StopSignals, StreamWorker

SETTINGS = Settings(job=JobSettings(task_plugins="support.fake_tasks:register"))


def _client(client_id: str, behaviour: str = "") -> Client:
    fields = {"Test Task Seconds": 0.0, **({"Test Behaviour": behaviour} if behaviour else {})}
    return Client(
        client_id=client_id, name=client_id.title(), base_id="appX", stream=1, fields=fields
    )


def merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """Apply a JSON merge patch (RFC 7386) to ``target`` in place, as the API server does."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping):
            child = target.get(key)
            if not isinstance(child, dict):
                child = target[key] = {}
            merge(child, value)
        else:
            target[key] = value


class Checkpoint:
    """The checkpoint's status as stored, and the writes that built it."""

    def __init__(self, carried: Mapping[str, Any] | None = None) -> None:
        self.status: dict[str, Any] = {
            "clients": {c: encode_client(e) for c, e in (carried or {}).items()}
        }
        self.writes: list[dict[str, Any]] = []

    def __call__(self, patch: dict[str, Any]) -> None:
        self.writes.append(patch)
        merge(self.status, patch)

    def clients(self) -> dict[str, dict[str, Any]]:
        return decode_clients(self.status)


def _worker(
    clients: list[Client],
    *,
    signals: StopSignals | None = None,
    deadline_in: float = 3600,
    carried: dict[str, Any] | None = None,
    checkpoint: Checkpoint | None = None,
    **spec: Any,
) -> tuple[StreamWorker, Checkpoint]:
    checkpoint = checkpoint or Checkpoint(carried)
    worker = StreamWorker(
        run_id="SR-261122-001",
        spec=RunSpec.from_body({"spec": {"streams": [1], **spec}}),
        stream=1,
        settings=SETTINGS,
        clients=clients,
        carried=checkpoint.clients(),
        checkpoint=checkpoint,
        signals=signals or StopSignals(),
        deadline=time.monotonic() + deadline_in,
    )
    return worker, checkpoint


def test_stream_worker__completes_every_client_once() -> None:
    """Every client ends Completed after one attempt, with each task's counts checkpointed."""
    worker, checkpoint = _worker([_client("acme-recruiting"), _client("blue-harbor")])
    result = worker.run()
    assert result.reason == StreamReason.CYCLE_COMPLETED
    assert checkpoint.status["clientsDone"] == checkpoint.status["clientsTotal"] == 2
    assert checkpoint.status["progress"] == "2/2"
    assert "current" not in checkpoint.status
    for entry in checkpoint.clients().values():
        assert (entry["state"], entry["attempts"]) == ("Completed", 1)
        assert entry["tasks"]["post_scoring"] == {
            "state": "Completed",
            "examined": 2,
            "succeeded": 1,
            "failed": 0,
            "skipped": 1,
        }


def test_stream_worker__at_most_three_writes_per_client() -> None:
    """A client's start, its first two tasks, and its end (written with the next client's start
    or the loop's end) take three checkpoint writes, plus one for the cycle's end."""
    ids = [f"client-{n}" for n in range(5)]
    worker, checkpoint = _worker([_client(c) for c in ids])
    worker.run()
    assert len(checkpoint.writes) == 3 * len(ids) + 1, checkpoint.writes
    assert all(e["state"] == "Completed" for e in checkpoint.clients().values())


def test_stream_worker__failing_client_is_retried_then_quarantined() -> None:
    """A client whose task fails is retried after the others, then quarantined at maxAttempts."""
    worker, checkpoint = _worker(
        [_client("acme-recruiting", "fail:post_scoring"), _client("blue-harbor")], maxAttempts=2
    )
    result = worker.run()
    bad = checkpoint.clients()["acme-recruiting"]
    assert (bad["state"], bad["attempts"]) == ("Quarantined", 2)
    assert bad["tasks"]["post_scoring"]["state"] == "Failed"
    assert "quarantined after 2 attempts" in checkpoint.status["problems"]["acme-recruiting"]
    assert checkpoint.clients()["blue-harbor"]["state"] == "Completed"
    assert "blue-harbor" not in checkpoint.status["problems"]
    assert result.reason == StreamReason.CYCLE_FINISHED_WITH_PROBLEMS


def test_stream_worker__resumes_at_the_first_unfinished_task() -> None:
    """A carried client with lead scoring done continues at post harvesting."""
    carried = {
        "acme-recruiting": {
            "state": "Pending",
            "attempts": 1,
            "tasks": {"lead_scoring": {"state": "Completed", "examined": 9}},
        }
    }
    worker, checkpoint = _worker([_client("acme-recruiting")], carried=carried)
    worker.run()
    entry = checkpoint.clients()["acme-recruiting"]
    assert entry["attempts"] == 2
    assert entry["tasks"]["lead_scoring"] == {
        "state": "Completed",
        "examined": 9,
        "succeeded": 0,
        "failed": 0,
        "skipped": 0,
    }, "not run again"
    assert entry["tasks"]["post_harvesting"]["state"] == "Completed"


def test_stream_worker__counts_accumulate_across_attempts() -> None:
    """A task cut in an earlier attempt keeps its counts; the next attempt adds to them."""
    carried = {
        "acme-recruiting": {
            "state": "TimedOut",
            "attempts": 1,
            "tasks": {
                "lead_scoring": {"state": "TimedOut", "examined": 5, "succeeded": 4, "failed": 1}
            },
        }
    }
    worker, checkpoint = _worker([_client("acme-recruiting")], carried=carried)
    worker.run()
    task = checkpoint.clients()["acme-recruiting"]["tasks"]["lead_scoring"]
    assert task == {"state": "Completed", "examined": 7, "succeeded": 5, "failed": 1, "skipped": 1}


def test_stream_worker__stops_when_the_deadline_is_near() -> None:
    """With less than one client timeout left, no client is started and the reason says why."""
    worker, checkpoint = _worker(
        [_client("acme-recruiting")], deadline_in=30, clientTimeoutSeconds=60
    )
    result = worker.run()
    assert result.reason == StreamReason.DEADLINE_NEAR
    assert checkpoint.clients() == {}


def test_stream_worker__stops_when_fenced() -> None:
    """A fenced worker (Lease lost) starts no client and writes nothing after the fence."""
    signals = StopSignals()
    checkpoint = Checkpoint()
    worker, _ = _worker([_client("acme-recruiting")], signals=signals, checkpoint=checkpoint)
    signals.fence(StreamReason.RENEW_DEADLINE_PASSED)
    assert worker.run().reason == StreamReason.RENEW_DEADLINE_PASSED
    assert checkpoint.clients() == {}


def test_stream_worker__cycle_claimed_by_another_run_stops_it() -> None:
    """A checkpoint write refused because another run claimed the cycle stops the loop."""
    writes: list[dict[str, Any]] = []

    def refuse_after_first(patch: dict[str, Any]) -> None:
        writes.append(patch)
        if len(writes) > 1:
            raise CycleLost

    worker = StreamWorker(
        run_id="SR-261122-001",
        spec=RunSpec.from_body({"spec": {"streams": [1]}}),
        stream=1,
        settings=SETTINGS,
        clients=[_client("acme-recruiting"), _client("blue-harbor")],
        carried={},
        checkpoint=refuse_after_first,
        signals=StopSignals(),
        deadline=time.monotonic() + 3600,
    )
    assert worker.run().reason == StreamReason.LOCK_LOST
    assert len(writes) == 2, "nothing more is tried once the cycle is lost"


def test_stream_worker__task_asked_to_wrap_up_keeps_its_counts() -> None:
    """A task that honours `cancelled` near the timeout is recorded TimedOut with its counts
    kept."""
    worker, checkpoint = _worker(
        [_client("acme-recruiting", "wrap-up:lead_scoring")], clientTimeoutSeconds=2, maxAttempts=1
    )
    worker.run()
    entry = checkpoint.clients()["acme-recruiting"]
    task = entry["tasks"]["lead_scoring"]
    assert (task["state"], task["examined"]) == ("TimedOut", 2)
    assert entry["state"] == "Quarantined"


def test_stream_worker__sigterm_asks_the_client_to_wrap_up_and_keeps_its_work() -> None:
    """On SIGTERM the client in flight is asked to wrap up (not killed): its counts are kept and
    the task stays unfinished for the next attempt."""
    signals = StopSignals()
    worker, checkpoint = _worker(
        [_client("acme-recruiting", "wrap-up:lead_scoring")], signals=signals
    )
    threading.Timer(1.5, signals.stop, args=(signals.terminate,)).start()
    assert worker.run().reason == StreamReason.STOPPING
    entry = checkpoint.clients()["acme-recruiting"]
    assert entry["state"] == "Pending"
    assert entry["tasks"]["lead_scoring"]["state"] == "Pending"
    assert entry["tasks"]["lead_scoring"]["examined"] == 2, "the wrapped-up task's work is kept"
