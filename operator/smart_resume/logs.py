"""Structured logs for the worker: one JSON object per line, a fixed message plus context fields.

Context that holds for a whole worker process (``run``, ``stream``, and in a client's child
process ``client``) is bound once with ``bind()`` and added to every record of every thread;
per-event values go in ``extra=``.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({})))
_CONTEXT: dict[str, Any] = {}


def bind(**fields: Any) -> None:
    """Add ``fields`` to every record this process logs from now on."""
    _CONTEXT.update(fields)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _CONTEXT.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            {k: v for k, v in vars(record).items() if k not in _STANDARD and k != "message"}
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(log_format: str = "json", *, verbose: bool = False) -> None:
    """Root logging for the worker processes: ``json`` (default) or ``plain`` lines on stderr."""
    handler = logging.StreamHandler()
    handler.addFilter(_ContextFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True
    )
