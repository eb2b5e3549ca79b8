"""The worker's loop over its stream's clients, checkpointing into the stream's SmartResumeStream.

The worker writes the cycle's progress (per client a compact entry, see ``core.checkpoint``) and
returns why it stopped; the operator alone decides the stream's ``phase`` once the Job has ended.

Order of work (decided by ``core.resume.plan_cycle``): pending and interrupted clients in load
order, then clients that timed out or failed, until every client is done or quarantined; each
client continues at its first unfinished task. Before a client starts, its ``attempts`` is
counted, so a client that kills its worker every time still ends up quarantined.

At most three checkpoint writes per client: one when it starts (carrying the end of the client
before it, and for the first client the cycle's size), one after each task but the last (so a
resumed client never repeats a finished task); the last task's end and the client's end are
written with the next client's start, or when the loop stops: 3 writes per client plus one per
cycle. Task counts accumulate over the attempts of the cycle.

The loop stops taking new clients when the run's deadline is too near to give one a full
per-client timeout, when it is asked to stop (SIGTERM: the client in flight is asked to wrap up),
or when it is fenced (Lease lost, renew deadline passed, or the cycle claimed by another run: the
client in flight is killed).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from smart_resume.config import Settings
from smart_resume.core.checkpoint import PROBLEM_MAX_CHARS, encode_client, progress_text
from smart_resume.core.clients import Client
from smart_resume.core.reasons import StreamReason
from smart_resume.core.resume import plan_cycle
from smart_resume.core.spec import RunSpec
from smart_resume.core.status import DONE_CLIENT_STATES, ClientState, TaskState
from smart_resume.worker.isolation import ClientJob, ClientRunner, Ending, TaskReport, run_client

log = logging.getLogger("smart_resume.worker")

CheckpointWriter = Callable[[dict[str, Any]], None]
"""Writes a merge patch into the status of the stream's checkpoint; raises ``CycleLost``."""


class CycleLost(Exception):
    """Raised by a checkpoint writer when another run claimed the cycle: stop at once."""


@dataclasses.dataclass
class StopSignals:
    """Why the worker should stop taking clients; set from signal handlers and the heartbeat."""

    terminate: threading.Event = dataclasses.field(default_factory=threading.Event)
    fenced: threading.Event = dataclasses.field(default_factory=threading.Event)
    """The worker may no longer write: kill the client in flight."""
    any: threading.Event = dataclasses.field(default_factory=threading.Event)
    fenced_because: list[StreamReason] = dataclasses.field(default_factory=list)

    def stop(self, reason: threading.Event) -> None:
        reason.set()
        self.any.set()

    def fence(self, why: StreamReason) -> None:
        if not self.fenced_because:
            self.fenced_because.append(why)
        self.stop(self.fenced)


@dataclasses.dataclass(frozen=True)
class StreamResult:
    """Why the loop ended, as recorded in ``status.streams.<n>.workerReason`` of the run."""

    reason: StreamReason
    message: str


class StreamWorker:
    def __init__(
        self,
        *,
        run_id: str,
        spec: RunSpec,
        stream: int,
        settings: Settings,
        clients: list[Client],
        carried: Mapping[str, Mapping[str, Any]],
        checkpoint: CheckpointWriter,
        signals: StopSignals,
        deadline: float,
        wrap_up_seconds: float = 5.0,
        client_runner: ClientRunner = run_client,
    ) -> None:
        self._run_id = run_id
        self._spec = spec
        self._stream = stream
        self._settings = settings
        self._clients = {client.client_id: client for client in clients}
        self._entries: dict[str, dict[str, Any]] = {k: _copy(v) for k, v in carried.items()}
        self._write = checkpoint
        self._signals = signals
        self._deadline = deadline
        self._wrap_up_seconds = wrap_up_seconds
        self._run_client = client_runner
        self._unwritten: dict[str, Any] = {}

    def run(self) -> StreamResult:
        try:
            return self._loop()
        except CycleLost:
            self._signals.fence(StreamReason.LOCK_LOST)
            why = self._signals.fenced_because[0]
            return StreamResult(why, _FENCED_MESSAGES[why])

    def _loop(self) -> StreamResult:
        self._start_cycle()
        while True:
            plan = self._plan()
            self._quarantine(plan.quarantine)
            if not plan.order:
                return self._finish()
            for client_id in plan.order:
                stopped = self._should_stop()
                if stopped is not None:
                    self._flush()
                    return stopped
                self._process(self._clients[client_id], plan.remaining_tasks(client_id))

    # -- steps --------------------------------------------------------------------------------

    def _plan(self) -> Any:
        return plan_cycle(
            self._clients,
            self._entries,
            tasks=self._spec.tasks,
            max_attempts=self._spec.max_attempts,
        )

    def _start_cycle(self) -> None:
        plan = self._plan()
        for client_id in plan.dropped:
            self._entries.pop(client_id, None)
        # Written with the first client's start (or the cycle's end): no write of its own.
        self._unwritten = {
            "clientsTotal": len(self._clients),
            "current": None,
            "clients": dict.fromkeys(plan.dropped),
            "problems": dict.fromkeys(plan.dropped),
        }

    def _quarantine(self, client_ids: tuple[str, ...]) -> None:
        if not client_ids:
            return
        for client_id in client_ids:
            attempts = self._entries[client_id].get("attempts", 0)
            log.warning("client quarantined", extra={"client": client_id, "attempts": attempts})
            self._entries[client_id]["state"] = ClientState.QUARANTINED.value
            self._stage(client_id, f"quarantined after {attempts} attempts in this cycle")
        self._flush()

    def _process(self, client: Client, tasks: list[str]) -> None:
        client_id = client.client_id
        entry = self._entries.setdefault(client_id, {"attempts": 0, "tasks": {}})
        entry["attempts"] = int(entry.get("attempts", 0)) + 1
        entry["state"] = ClientState.RUNNING.value
        log.info(
            "client started",
            extra={"client": client_id, "attempt": entry["attempts"], "tasks": tasks},
        )
        self._stage(client_id, None)
        self._unwritten["current"] = client_id
        self._flush()
        job = ClientJob(
            client=client,
            run_id=self._run_id,
            tasks=tuple(tasks),
            settings=self._settings,
            lead_scoring_limit=self._spec.lead_scoring_limit,
            dry_run=self._spec.dry_run,
        )
        running: list[str] = []

        def on_report(report: TaskReport) -> None:
            task = entry.setdefault("tasks", {}).setdefault(report.task, {})
            if report.started:
                running.append(report.task)
                task["state"] = TaskState.RUNNING.value
                return
            running.remove(report.task)
            _accumulate(task, report.outcome or {})
            if report.error is not None:
                task["state"] = TaskState.FAILED.value
            elif report.cut:
                task["state"] = (
                    TaskState.PENDING if self._signals.terminate.is_set() else TaskState.TIMED_OUT
                ).value
            else:
                task["state"] = TaskState.COMPLETED.value
            self._stage(client_id, None)
            if task["state"] == TaskState.COMPLETED and report.task != tasks[-1]:
                self._flush()  # the client's end follows the last task at once: written with it

        ending, message = self._run_client(
            job,
            timeout_seconds=self._spec.client_timeout_seconds,
            stop=self._signals.fenced,
            wrap_up=self._signals.terminate,
            wrap_up_seconds=self._wrap_up_seconds,
            on_report=on_report,
        )
        self._end_client(client_id, ending, message, running)

    def _end_client(self, client_id: str, ending: Ending, message: str, running: list[str]) -> None:
        entry = self._entries[client_id]
        task_state = {
            Ending.TIMED_OUT: TaskState.TIMED_OUT,
            Ending.FAILED: TaskState.FAILED,
            Ending.INTERRUPTED: TaskState.PENDING,
        }.get(ending)
        for name in running if task_state else ():
            entry["tasks"][name]["state"] = task_state.value  # type: ignore[union-attr]
        entry["state"] = {
            Ending.COMPLETED: ClientState.COMPLETED,
            Ending.TIMED_OUT: ClientState.TIMED_OUT,
            Ending.FAILED: ClientState.FAILED,
            Ending.INTERRUPTED: ClientState.PENDING,
        }[ending].value
        log.info("client ended", extra={"client": client_id, "ending": ending, "detail": message})
        problem = message if ending in (Ending.TIMED_OUT, Ending.FAILED) else None
        self._stage(client_id, problem)
        self._unwritten["current"] = None

    def _should_stop(self) -> StreamResult | None:
        if self._signals.fenced.is_set():
            why = (self._signals.fenced_because or [StreamReason.LOCK_LOST])[0]
            return StreamResult(why, _FENCED_MESSAGES[why])
        if self._signals.terminate.is_set():
            # Whoever sent SIGTERM (deletion, suspension, the Job deadline) records why.
            return StreamResult(StreamReason.STOPPING, "the worker received SIGTERM")
        if time.monotonic() + self._spec.client_timeout_seconds > self._deadline:
            return StreamResult(
                StreamReason.DEADLINE_NEAR,
                "stopped taking clients: the deadline leaves less than one client timeout",
            )
        return None

    def _finish(self) -> StreamResult:
        self._flush()
        all_completed = all(
            self._entries[client_id].get("state") == ClientState.COMPLETED
            for client_id in self._clients
        )
        reason = (
            StreamReason.CYCLE_COMPLETED
            if all_completed
            else StreamReason.CYCLE_FINISHED_WITH_PROBLEMS
        )
        return StreamResult(reason, f"{self._done_count()}/{len(self._clients)} clients done")

    # -- checkpoint plumbing ------------------------------------------------------------------

    def _stage(self, client_id: str, problem: str | None) -> None:
        """Put the client's entry (and its problem, or none) into the next write."""
        self._unwritten.setdefault("clients", {})[client_id] = encode_client(
            self._entries[client_id]
        )
        self._unwritten.setdefault("problems", {})[client_id] = (
            problem[:PROBLEM_MAX_CHARS] if problem else None
        )

    def _flush(self) -> None:
        if not self._unwritten:
            return
        patch = {**self._unwritten, **self._progress()}
        self._unwritten = {}
        if self._signals.fenced.is_set():
            raise CycleLost  # fenced: not one more write
        self._write(patch)

    def _progress(self) -> dict[str, Any]:
        done = self._done_count()
        return {"clientsDone": done, "progress": progress_text(done, len(self._clients))}

    def _done_count(self) -> int:
        return sum(
            1
            for cid in self._clients
            if self._entries.get(cid, {}).get("state") in DONE_CLIENT_STATES
        )


_FENCED_MESSAGES = {
    StreamReason.LOCK_LOST: "another run took over this stream's Lease or cycle",
    StreamReason.RENEW_DEADLINE_PASSED: (
        "the Lease was not renewed within the renew deadline; stopped before it could go stale"
    ),
}


def _accumulate(task: dict[str, Any], outcome: Mapping[str, Any]) -> None:
    for key in ("examined", "succeeded", "failed"):
        task[key] = int(task.get(key, 0)) + int(outcome.get(key, 0))
    task["skipped"] = int(task.get("skipped", 0)) + sum((outcome.get("skipped") or {}).values())


def _copy(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "state": entry.get("state", ClientState.PENDING),
        "attempts": int(entry.get("attempts", 0)),
        "tasks": {name: dict(task) for name, task in (entry.get("tasks") or {}).items()},
    }
