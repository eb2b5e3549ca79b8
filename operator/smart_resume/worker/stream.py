"""The worker's loop over its stream's clients, checkpointing every step into the run's status.

The worker writes progress (clients, tasks, counters) and why it stopped (``reason``); the
operator alone decides the stream's ``phase`` once the Job has ended.

Order of work (decided by ``core.resume.plan_cycle``): pending and interrupted clients in load
order, then clients that timed out or failed, until every client is done or quarantined; each
client continues at its first unfinished task. Before a client starts, its ``attempts`` is
counted, so a client that kills its worker every time still ends up quarantined.

The loop stops taking new clients when the run's deadline is too near to give one a full
per-client timeout, when it is asked to stop (SIGTERM), or when its Lease was lost.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from smart_resume.config import Settings
from smart_resume.core.clients import Client
from smart_resume.core.resume import plan_cycle
from smart_resume.core.spec import RunSpec
from smart_resume.core.status import ClientState, TaskState, format_time
from smart_resume.worker.isolation import ClientJob, Ending, TaskReport, run_client

log = logging.getLogger("smart_resume.worker")

StreamPatcher = Callable[[dict[str, Any]], None]
"""Writes a merge patch into ``status.streams.<n>`` of the run."""


@dataclasses.dataclass
class StopSignals:
    """Why the worker should stop taking clients; set from signal handlers and the heartbeat."""

    terminate: threading.Event = dataclasses.field(default_factory=threading.Event)
    lock_lost: threading.Event = dataclasses.field(default_factory=threading.Event)
    any: threading.Event = dataclasses.field(default_factory=threading.Event)

    def stop(self, reason: threading.Event) -> None:
        reason.set()
        self.any.set()


@dataclasses.dataclass(frozen=True)
class StreamResult:
    """Why the loop ended, as recorded in ``status.streams.<n>.reason`` and ``message``."""

    reason: str
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
        patch: StreamPatcher,
        signals: StopSignals,
        deadline: float,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self._run_id = run_id
        self._spec = spec
        self._stream = stream
        self._settings = settings
        self._clients = {client.client_id: client for client in clients}
        self._statuses: dict[str, dict[str, Any]] = {k: _plain(v) for k, v in carried.items()}
        self._patch = patch
        self._signals = signals
        self._deadline = deadline
        self._now = clock or (lambda: datetime.datetime.now(datetime.UTC))

    def run(self) -> StreamResult:
        self._start_cycle()
        while True:
            plan = plan_cycle(
                self._clients,
                self._statuses,
                tasks=self._spec.tasks,
                max_attempts=self._spec.max_attempts,
            )
            self._quarantine(plan.quarantine)
            if not plan.order:
                return self._finish()
            for client_id in plan.order:
                stopped = self._should_stop()
                if stopped is not None:
                    return stopped
                self._process(self._clients[client_id], plan.remaining_tasks(client_id))

    # -- steps --------------------------------------------------------------------------------

    def _start_cycle(self) -> None:
        plan = plan_cycle(
            self._clients,
            self._statuses,
            tasks=self._spec.tasks,
            max_attempts=self._spec.max_attempts,
        )
        for client_id in plan.dropped:
            self._statuses.pop(client_id, None)
        patch: dict[str, Any] = {
            "reason": "Processing",
            "message": None,
            "clientsTotal": len(self._clients),
            "clientsDone": self._done_count(),
            "clients": {client_id: None for client_id in plan.dropped},
        }
        for client_id, client in self._clients.items():
            if client_id not in self._statuses:
                entry = {"name": client.name, "state": ClientState.PENDING, "attempts": 0}
                self._statuses[client_id] = entry
                patch["clients"][client_id] = entry
        self._patch(patch)

    def _quarantine(self, client_ids: tuple[str, ...]) -> None:
        for client_id in client_ids:
            attempts = self._statuses[client_id].get("attempts", 0)
            log.warning("client quarantined", extra={"client": client_id, "attempts": attempts})
            self._update_client(
                client_id,
                {
                    "state": ClientState.QUARANTINED,
                    "message": f"quarantined after {attempts} attempts in this cycle",
                },
            )

    def _process(self, client: Client, tasks: list[str]) -> None:
        client_id = client.client_id
        if client.problem:  # no attempt can fix the record: say why once, for a person to fix
            log.warning(
                "client record unusable", extra={"client": client_id, "detail": client.problem}
            )
            fields = {
                "name": client.name,
                "state": ClientState.QUARANTINED,
                "message": client.problem,
            }
            self._update_client(client_id, fields)
            return
        attempts = int(self._statuses[client_id].get("attempts", 0)) + 1
        log.info("client started", extra={"client": client_id, "attempt": attempts, "tasks": tasks})
        self._update_client(
            client_id,
            {
                "name": client.name,
                "state": ClientState.RUNNING,
                "attempts": attempts,
                "message": None,
            },
            extra={"currentClient": client_id},
        )
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
            if report.started:
                running.append(report.task)
                self._update_task(
                    client_id, report.task, {"state": TaskState.RUNNING, "error": None}
                )
                return
            running.remove(report.task)
            fields: dict[str, Any] = {"durationSeconds": round(report.duration_seconds, 3)}
            if report.error is not None:
                fields.update(state=TaskState.FAILED, error=report.error)
            elif report.cut:
                fields.update(
                    state=TaskState.TIMED_OUT,
                    error="cut by the client timeout; work done is kept",
                    **_counts(report.outcome or {}),
                )
            else:
                fields.update(
                    state=TaskState.COMPLETED, error=None, **_counts(report.outcome or {})
                )
            self._update_task(client_id, report.task, fields)

        ending, message = run_client(
            job,
            timeout_seconds=self._spec.client_timeout_seconds,
            stop=self._signals.any,
            on_report=on_report,
        )
        self._end_client(client_id, ending, message, running)

    def _end_client(self, client_id: str, ending: Ending, message: str, running: list[str]) -> None:
        task_state = {
            Ending.TIMED_OUT: TaskState.TIMED_OUT,
            Ending.FAILED: TaskState.FAILED,
            Ending.INTERRUPTED: TaskState.PENDING,
        }.get(ending)
        tasks = (
            {name: {"state": task_state, "error": message or None} for name in running}
            if task_state
            else {}
        )
        state = {
            Ending.COMPLETED: ClientState.COMPLETED,
            Ending.TIMED_OUT: ClientState.TIMED_OUT,
            Ending.FAILED: ClientState.FAILED,
            Ending.INTERRUPTED: ClientState.PENDING,
        }[ending]
        log.info("client ended", extra={"client": client_id, "ending": ending, "detail": message})
        fields: dict[str, Any] = {"state": state, "message": message or None}
        if tasks:
            fields["tasks"] = tasks
        self._update_client(client_id, fields, extra={"currentClient": None})

    def _should_stop(self) -> StreamResult | None:
        if self._signals.terminate.is_set():
            # Whoever sent SIGTERM (deletion, suspension, the Job deadline) records why.
            return StreamResult("Stopping", "the worker received SIGTERM")
        if self._signals.lock_lost.is_set():
            result = StreamResult("LockLost", "another run took over this stream's Lease")
        elif time.monotonic() + self._spec.client_timeout_seconds > self._deadline:
            result = StreamResult(
                "DeadlineNear",
                "stopped taking clients: the deadline leaves less than one client timeout",
            )
        else:
            return None
        self._patch({"reason": result.reason, "message": result.message, "currentClient": None})
        return result

    def _finish(self) -> StreamResult:
        all_completed = all(
            self._statuses[client_id].get("state") == ClientState.COMPLETED
            for client_id in self._clients
        )
        reason = "CycleCompleted" if all_completed else "CycleFinishedWithProblems"
        done = self._done_count()
        message = f"{done}/{len(self._clients)} clients done"
        self._patch(
            {"reason": reason, "message": message, "currentClient": None, "clientsDone": done}
        )
        return StreamResult(reason, message)

    # -- checkpoint plumbing ------------------------------------------------------------------

    def _update_client(
        self, client_id: str, fields: dict[str, Any], *, extra: dict[str, Any] | None = None
    ) -> None:
        entry = self._statuses.setdefault(client_id, {})
        _merge(entry, fields)
        patch: dict[str, Any] = {
            "clients": {client_id: fields},
            "clientsDone": self._done_count(),
            "heartbeatTime": format_time(self._now()),
        }
        patch.update(extra or {})
        self._patch(patch)

    def _update_task(self, client_id: str, task: str, fields: dict[str, Any]) -> None:
        self._update_client(client_id, {"tasks": {task: fields}})

    def _done_count(self) -> int:
        done = (ClientState.COMPLETED, ClientState.QUARANTINED)
        return sum(1 for cid in self._clients if self._statuses.get(cid, {}).get("state") in done)


def _counts(outcome: Mapping[str, Any]) -> dict[str, Any]:
    return {key: outcome.get(key, 0) for key in ("examined", "succeeded", "failed")} | {
        "skipped": dict(outcome.get("skipped") or {})
    }


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """Apply a JSON merge patch (RFC 7386) to ``target`` in place, as the API server will."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping):
            child = target.get(key)
            if not isinstance(child, dict):
                child = target[key] = {}
            _merge(child, value)
        else:
            target[key] = value


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    _merge(result, value)
    return result
