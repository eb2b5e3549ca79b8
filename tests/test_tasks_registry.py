"""The task registry fails at start-up, naming every problem, before any work is done."""

from __future__ import annotations

import pytest

from smart_resume.core.errors import ConfigurationError
from smart_resume.tasks.base import TaskOutcome
from smart_resume.tasks.registry import TaskRegistry, load_registry


def test_resolve__unknown_task_is_named() -> None:
    """An unknown task name is a ConfigurationError listing the known ones."""
    with pytest.raises(ConfigurationError, match="unknown task 'magic'.*lead_scoring"):
        TaskRegistry().resolve(["magic"])


def test_load_registry__missing_plugin_module() -> None:
    """A plugin hook whose module does not import is reported with its name."""
    with pytest.raises(ConfigurationError, match="support.no_such_module:register"):
        load_registry("support.no_such_module:register")


def test_load_registry__plugin_overrides_a_task() -> None:
    """A plugin's registration wins over the built-in implementation of the same name."""
    registry = load_registry("support.fake_tasks:register")
    tasks = registry.resolve(["lead_scoring"])
    assert tasks["lead_scoring"].func.__module__ == "support.fake_tasks"  # type: ignore[attr-defined]


def test_register__rejects_non_callables() -> None:
    """Registering something that cannot be called fails at once."""
    with pytest.raises(ConfigurationError, match="not callable"):
        TaskRegistry().register("lead_scoring", TaskOutcome())  # type: ignore[arg-type]
