"""Worker logs are JSON lines carrying the bound context and per-event fields, nothing else."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from smart_resume import logs


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logs._CONTEXT.clear()


def test_json_logs__bound_context_and_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    """A record carries the process-wide context (run, stream) and its own extra fields."""
    logs.configure_logging("json")
    logs.bind(run="nightly", stream=2)
    logging.getLogger("smart_resume.worker").info("client started", extra={"client": "acme"})
    entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert entry["message"] == "client started"
    assert (entry["run"], entry["stream"], entry["client"], entry["level"]) == (
        "nightly",
        2,
        "acme",
        "info",
    )
