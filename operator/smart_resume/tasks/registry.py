"""Which callable runs each task name, checked before any work starts.

The three built-in tasks are imported by name; ``SMART_RESUME_JOB_TASK_PLUGINS`` (operator
configuration, never the SmartResumeRun) may name ``module:function`` hooks that register other
implementations — the tests use it to run the orchestration with tasks that sleep or hang.
The old system found a missing function only at run time; here an unknown task, a module that
does not import or a hook that does not exist is a ``ConfigurationError`` at start-up.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from smart_resume.core.errors import ConfigurationError
from smart_resume.core.spec import TASK_ORDER
from smart_resume.tasks.base import Task

BUILTIN_MODULES = {name: f"smart_resume.tasks.{name}" for name in TASK_ORDER}


class TaskRegistry:
    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def register(self, name: str, task: Task) -> None:
        if not callable(task):
            raise ConfigurationError(f"task {name!r} is not callable: {task!r}")
        self._tasks[name] = task

    def resolve(self, names: Iterable[str]) -> dict[str, Task]:
        """The tasks for ``names``, importing built-ins as needed; every problem named at once."""
        resolved: dict[str, Task] = {}
        problems: list[str] = []
        for name in names:
            task = self._tasks.get(name) or self._builtin(name, problems)
            if task is not None:
                resolved[name] = task
        if problems:
            raise ConfigurationError("invalid task registry: " + "; ".join(problems))
        return resolved

    def _builtin(self, name: str, problems: list[str]) -> Task | None:
        module_name = BUILTIN_MODULES.get(name)
        if module_name is None:
            problems.append(f"unknown task {name!r} (known: {', '.join(TASK_ORDER)})")
            return None
        try:
            task = importlib.import_module(module_name).run
        except (ImportError, AttributeError) as exc:
            problems.append(f"task {name!r} cannot be loaded from {module_name}: {exc}")
            return None
        self._tasks[name] = task
        return task  # type: ignore[no-any-return]


def load_registry(plugins: str) -> TaskRegistry:
    """A registry with the hooks of ``plugins`` (comma-separated ``module:function``) applied."""
    registry = TaskRegistry()
    for hook in filter(None, (part.strip() for part in plugins.split(","))):
        module_name, _, function_name = hook.partition(":")
        try:
            register = getattr(importlib.import_module(module_name), function_name or "register")
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(f"task plugin {hook!r} cannot be loaded: {exc}") from exc
        register(registry)
    return registry
