"""The operator's Prometheus metrics, on their own registry, served over HTTP at ``/metrics``.

Names follow Prometheus' conventions: the ``smart_resume_`` prefix, base units (seconds),
``_total`` on counters (added by ``prometheus_client``), and bounded label sets only: phases,
states, task names and handler ids, never run names or client IDs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from smart_resume.core.status import Phase

REGISTRY = CollectorRegistry(auto_describe=True)

HANDLER_DURATION = Histogram(
    "smart_resume_reconcile_duration_seconds",
    "Time one operator handler took to act on a SmartResumeRun.",
    ["handler"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
LEASE_TAKEOVERS = Counter(
    "smart_resume_lease_takeovers",
    "Stream Leases taken over from a run that stopped renewing them.",
    registry=REGISTRY,
)
CLIENTS_PROCESSED = Counter(
    "smart_resume_clients_processed",
    "Client tasks of closed cycles, by the state they ended in (counted when the cycle closes).",
    ["task", "state"],
    registry=REGISTRY,
)
CLIENT_TASK_DURATION = Histogram(
    "smart_resume_client_task_duration_seconds",
    "How long one task of one client took over its cycle (counted when the cycle closes).",
    ["task"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800),
    registry=REGISTRY,
)


def observe_closed_cycle(clients: Mapping[str, Mapping[str, Any]]) -> None:
    """Count the tasks of a cycle that just closed (decoded checkpoint entries, by client ID)."""
    for entry in clients.values():
        for task, progress in (entry.get("tasks") or {}).items():
            CLIENTS_PROCESSED.labels(task=task, state=progress.get("state", "")).inc()
            if progress.get("durationSeconds"):
                CLIENT_TASK_DURATION.labels(task=task).observe(progress["durationSeconds"])


AIRTABLE_REQUESTS = Counter(
    "smart_resume_airtable_requests",
    "Requests the operator sent to the master base for run records, by HTTP status class.",
    ["status"],
    registry=REGISTRY,
)
EMAILS_SENT = Counter(
    "smart_resume_emails_sent",
    "Alert and report e-mails handed to the mail service, by kind.",
    ["kind"],
    registry=REGISTRY,
)
EMAILS_FAILED = Counter(
    "smart_resume_emails_failed",
    "Failed sends of alert and report e-mails, by kind (each retry counts).",
    ["kind"],
    registry=REGISTRY,
)


def status_class(status: int) -> str:
    """``2xx``, ``4xx``, ``5xx``, with 429 on its own: a bounded label for HTTP statuses."""
    return "429" if status == 429 else f"{status // 100}xx"


class RunPhases(Collector):
    """The gauge ``smart_resume_runs{phase}``: SmartResumeRuns the operator sees, by phase.

    Fed from the runs' watch events (``observe`` / ``forget``), so a scrape costs no API call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phases: dict[tuple[str, str], str] = {}

    def observe(self, namespace: str, name: str, phase: str) -> None:
        with self._lock:
            self._phases[(namespace, name)] = phase or Phase.PENDING

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._phases.pop((namespace, name), None)

    def counts(self) -> Mapping[str, int]:
        with self._lock:
            seen = list(self._phases.values())
        return {phase.value: seen.count(phase.value) for phase in Phase}

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "smart_resume_runs", "SmartResumeRuns seen by the operator, by phase.", labels=["phase"]
        )
        for phase, count in self.counts().items():
            family.add_metric([phase], count)
        yield family


RUN_PHASES = RunPhases()
REGISTRY.register(RUN_PHASES)


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` on ``address:port`` from a daemon thread."""
    start_http_server(port, addr=address, registry=REGISTRY)
