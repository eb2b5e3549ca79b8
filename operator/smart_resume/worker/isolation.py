"""Run one client's tasks in a child process, so that the per-client timeout always holds.

A task that hangs inside a remote call cannot be interrupted from another thread in Python; a
child process can always be killed. The child runs the client's remaining tasks in order and
reports each start and end over a pipe; the parent turns those reports into checkpoints and kills
the child when the client's time is up or the worker must stop.

Shortly before the timeout (``WRAP_UP_FRACTION`` of it, at most ``WRAP_UP_MAX_SECONDS``) the child
sets the task's ``cancelled`` event, so a well-behaved task writes what it has and returns; its
counts are kept and the task stays unfinished, to be continued on the client's next attempt.

Two ways to stop early: ``wrap_up`` (SIGTERM: the pod is going away) asks the child to wrap up the
same way and waits up to ``wrap_up_seconds`` for it, so work already paid for is written; ``stop``
(the worker is fenced: its Lease may be taken over) kills the child at once, so that no write of
it can land after another worker took the stream.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.synchronize
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from smart_resume.config import Settings
from smart_resume.core.clients import Client

log = logging.getLogger("smart_resume.worker")

_CONTEXT = multiprocessing.get_context("spawn")  # no threads or sockets inherited from the parent
_POLL_SECONDS = 0.2
WRAP_UP_FRACTION = 0.1
WRAP_UP_MAX_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class ClientJob:
    """Everything the child needs; picklable."""

    client: Client
    run_id: str
    tasks: tuple[str, ...]
    settings: Settings
    lead_scoring_limit: int | None = None
    dry_run: bool = False
    log_format: str = "json"
    wrap_up_at: float = float("inf")
    """``time.monotonic()`` value (system-wide on Linux) at which the tasks are asked to wrap up."""


class Ending(enum.StrEnum):
    COMPLETED = "Completed"  # every task reported done
    FAILED = "Failed"  # a task raised, or the child died
    TIMED_OUT = "TimedOut"  # the per-client timeout passed
    INTERRUPTED = "Interrupted"  # the worker was asked to stop (SIGTERM, lost lock)


@dataclasses.dataclass(frozen=True)
class TaskReport:
    """One message from the child: a task started (``outcome`` None) or ended."""

    task: str
    started: bool
    outcome: dict[str, Any] | None = None
    error: str | None = None
    duration_seconds: float = 0.0
    cut: bool = False
    """The task returned early because the client's time was nearly up: counts kept, unfinished."""


@dataclasses.dataclass(frozen=True)
class ClientEnd:
    """The child's last message: how the client ended."""

    ending: Ending
    message: str = ""


ClientRunner = Callable[..., tuple["Ending", str]]
"""``run_client``'s signature: the worker takes it as a parameter (benchmarks run in-process)."""


def run_client(
    job: ClientJob,
    *,
    timeout_seconds: float,
    stop: threading.Event,
    wrap_up: threading.Event,
    wrap_up_seconds: float,
    on_report: Callable[[TaskReport], None],
) -> tuple[Ending, str]:
    """Run ``job`` in a child process; return how it ended and a message for humans."""
    margin = min(timeout_seconds * WRAP_UP_FRACTION, WRAP_UP_MAX_SECONDS)
    job = dataclasses.replace(job, wrap_up_at=time.monotonic() + timeout_seconds - margin)
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    asked_to_wrap_up = _CONTEXT.Event()
    child = _CONTEXT.Process(
        target=_child_main,
        args=(job, sender, asked_to_wrap_up),
        name=f"client-{job.client.client_id}",
        daemon=True,
    )
    child.start()
    sender.close()
    ended = threading.Event()
    # Kills the child on ``stop`` even while this thread is busy (say, in a checkpoint write
    # retried against an unreachable API server): a fenced worker's client stops at once.
    threading.Thread(
        target=_kill_on_stop, args=(child, stop, ended), name="fence", daemon=True
    ).start()
    deadline = time.monotonic() + timeout_seconds
    try:
        while True:
            if stop.is_set():
                child.kill()
                return Ending.INTERRUPTED, "the worker was fenced and killed the client"
            if wrap_up.is_set() and not asked_to_wrap_up.is_set():
                asked_to_wrap_up.set()
                deadline = min(deadline, time.monotonic() + wrap_up_seconds)
            remaining = deadline - time.monotonic()
            if remaining <= 0 and asked_to_wrap_up.is_set() and wrap_up.is_set():
                return Ending.INTERRUPTED, "the worker was asked to stop"
            if remaining <= 0:
                return Ending.TIMED_OUT, f"client timeout of {timeout_seconds:.0f}s reached"
            if not receiver.poll(min(remaining, _POLL_SECONDS)):
                continue
            try:
                report: TaskReport | ClientEnd = receiver.recv()
            except EOFError:
                child.join(5)
                return (
                    Ending.FAILED,
                    f"the client process exited unexpectedly (exit code {child.exitcode})",
                )
            if isinstance(report, ClientEnd):
                if wrap_up.is_set() and report.ending is Ending.TIMED_OUT:
                    return Ending.INTERRUPTED, "the worker was asked to stop; work done is kept"
                return report.ending, report.message
            on_report(report)
            if report.error is not None:
                return Ending.FAILED, f"{report.task} failed: {report.error}"
    finally:
        ended.set()
        receiver.close()
        _end(child)


def _kill_on_stop(
    child: multiprocessing.process.BaseProcess, stop: threading.Event, ended: threading.Event
) -> None:
    while not ended.is_set():
        if stop.wait(_POLL_SECONDS):
            child.kill()
            return


def _end(child: multiprocessing.process.BaseProcess) -> None:
    child.join(0.5)
    if child.is_alive():
        child.kill()
        child.join(5)


def _child_main(
    job: ClientJob,
    sender: multiprocessing.connection.Connection,
    asked_to_wrap_up: multiprocessing.synchronize.Event,
) -> None:
    # Imported here: the child is a fresh interpreter (spawn) and only it needs the integrations.
    from smart_resume.logs import bind, configure_logging
    from smart_resume.tasks.base import TaskContext
    from smart_resume.tasks.registry import load_registry
    from smart_resume.tasks.services import Services

    configure_logging(job.log_format)
    bind(run=job.run_id, stream=job.client.stream, client=job.client.client_id)
    tasks = load_registry(job.settings.job.task_plugins).resolve(job.tasks)
    context = TaskContext(
        client=job.client,
        run_id=job.run_id,
        settings=job.settings,
        services=Services(job.settings),
        lead_scoring_limit=job.lead_scoring_limit,
        dry_run=job.dry_run,
    )
    wrap_up = threading.Timer(max(0.0, job.wrap_up_at - time.monotonic()), context.cancelled.set)
    wrap_up.daemon = True
    wrap_up.start()

    # Asked by the parent (which got SIGTERM), or by SIGTERM itself where it reaches the whole
    # process group: either way the task is asked to write what it has and return.
    def forward_wrap_up() -> None:
        asked_to_wrap_up.wait()
        context.cancelled.set()

    threading.Thread(target=forward_wrap_up, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: context.cancelled.set())
    for name in job.tasks:
        sender.send(TaskReport(name, started=True))
        began = time.monotonic()
        try:
            outcome = tasks[name](context)
        except Exception as exc:  # reported to the parent, which records it and retries later
            log.exception("task failed", extra={"task": name})
            sender.send(
                TaskReport(
                    name,
                    started=False,
                    error=_describe(exc),
                    duration_seconds=time.monotonic() - began,
                )
            )
            return
        cut = context.cancelled.is_set()
        sender.send(
            TaskReport(
                name,
                started=False,
                outcome=dataclasses.asdict(outcome),
                duration_seconds=time.monotonic() - began,
                cut=cut,
            )
        )
        if cut:
            sender.send(
                ClientEnd(Ending.TIMED_OUT, "client timeout reached; the work done is kept")
            )
            return
    sender.send(ClientEnd(Ending.COMPLETED))


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"
