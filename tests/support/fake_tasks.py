"""Test-only task implementations, registered through the worker's task-plugin hook.

They let the orchestration be under test: each client's Clients-table field ``Test Behaviour``
says what its tasks do (``hang:<task>`` sleeps for an hour in that task, ``wrap-up:<task>``
works until asked to wrap up, ``fail:<task>`` raises; every task takes ``Test Task Seconds`` unless
asked to wrap up first, when it stops unfinished), and every start, cut and completion is
appended to the
file named by ``SMART_RESUME_PLUGIN_TEST_TASK_LOG`` so that tests can prove nothing ran twice.
"""

from __future__ import annotations

import collections
import functools
import os
import time

from smart_resume.core.spec import TASK_ORDER
from smart_resume.tasks.base import TaskContext, TaskOutcome
from smart_resume.tasks.registry import TaskRegistry

BEHAVIOUR_FIELD = "Test Behaviour"
SECONDS_FIELD = "Test Task Seconds"
LOG_ENV = "SMART_RESUME_PLUGIN_TEST_TASK_LOG"


def register(registry: TaskRegistry) -> None:
    for name in TASK_ORDER:
        registry.register(name, functools.partial(_task, name))


def _task(name: str, ctx: TaskContext) -> TaskOutcome:
    behaviour = str(ctx.client.fields.get(BEHAVIOUR_FIELD, ""))
    _record("started", ctx, name)
    if behaviour == f"hang:{name}":
        time.sleep(3600)
    if (
        behaviour == f"wrap-up:{name}"
    ):  # a well-behaved long task: stops when asked, reports progress
        ctx.cancelled.wait(3600)
        return TaskOutcome(examined=2, succeeded=2)
    if ctx.cancelled.wait(float(ctx.client.fields.get(SECONDS_FIELD, 0.05))):
        _record("cut", ctx, name)  # asked to wrap up before its work was done: unfinished
        return TaskOutcome(examined=1)
    if behaviour == f"fail:{name}":
        raise RuntimeError(f"{name} failed on purpose for {ctx.client.client_id}")
    _record("completed", ctx, name)
    return TaskOutcome(examined=2, succeeded=1, failed=0, skipped={"already_done": 1})


def _record(event: str, ctx: TaskContext, task: str) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    line = f"{event} {ctx.run_id} {ctx.client.client_id} {task}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(
            fd, line.encode()
        )  # one write with O_APPEND: lines from parallel workers never mix
    finally:
        os.close(fd)


def read_log(path: str) -> list[tuple[str, str, str, str]]:
    """(event, run_id, client_id, task) per line of a task log."""
    try:
        with open(path) as handle:
            return [tuple(line.split()) for line in handle if line.strip()]  # type: ignore[misc]
    except FileNotFoundError:
        return []


def completions(task_log: object) -> collections.Counter[tuple[str, str]]:
    """How often each (client, task) completed, from the task log."""
    return collections.Counter(
        (c, t) for event, _, c, t in read_log(str(task_log)) if event == "completed"
    )
