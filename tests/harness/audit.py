"""Reading the local control plane's audit log: the requests one window of time received.

The apiserver writes one event per request when its response is complete (``AUDIT_POLICY`` of
``harness.controlplane``), so a request received just before a window ends may be logged a
moment later; ``AuditWindow.events`` takes the events received inside the window from what the
log holds when it is called.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from kubernetes import client

from harness.waiting import wait_for

MARKER_AGENT = "smart-resume-audit-marker"


class AuditWindow:
    """The audit events of requests received between construction and ``end()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.start = datetime.datetime.now(datetime.UTC)
        self.stop: datetime.datetime | None = None

    @property
    def seconds(self) -> float:
        return ((self.stop or datetime.datetime.now(datetime.UTC)) - self.start).total_seconds()

    def end(self) -> None:
        self.stop = datetime.datetime.now(datetime.UTC)

    def events(self) -> list[dict[str, Any]]:
        """The events logged so far of requests received in the window (to its end, or now)."""
        stop = self.stop or datetime.datetime.now(datetime.UTC)
        found = []
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            for line in log:
                if not line.endswith(b"\n"):
                    break  # still being written
                event = json.loads(line)
                received = datetime.datetime.fromisoformat(event["requestReceivedTimestamp"])
                if self.start <= received <= stop:
                    found.append(event)
        return found


def verb_of(event: dict[str, Any]) -> str:
    """``get smartresumeruns``, ``patch smartresumeruns/status``, ``list jobs``, ..."""
    ref = event.get("objectRef") or {}
    what = ref.get("resource", event.get("requestURI", ""))
    if ref.get("subresource"):
        what += "/" + ref["subresource"]
    return f"{event['verb']} {what}"


def wait_logged(window: AuditWindow, api: client.ApiClient, *, timeout: float = 10) -> None:
    """End ``window``, then make one request through ``api`` (an audited user) and wait until
    the log holds it: every short request received in the window is logged by then."""
    window.end()
    api.user_agent = MARKER_AGENT
    try:
        client.VersionApi(api).get_code()
    except client.ApiException:
        pass  # a refusal is logged as well
    wait_for(
        lambda: _marker_logged(window),
        timeout=timeout,
        what="the audit log to hold a request made after the window",
    )


def _marker_logged(window: AuditWindow) -> bool:
    with open(window.path, "rb") as log:
        log.seek(window.offset)
        return any(MARKER_AGENT.encode() in line for line in log if line.endswith(b"\n"))
