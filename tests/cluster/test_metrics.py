"""The operator's Prometheus endpoint, scraped while a run goes from Running to Succeeded."""

from __future__ import annotations

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from cluster.conftest import Airtable
from harness.operator import OperatorProcess
from harness.waiting import wait_for
from support.runs import create_run, wait_phase

pytestmark = pytest.mark.cluster


def _samples(operator: OperatorProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(operator.scrape())
        for sample in family.samples
    }


def _value(operator: OperatorProcess, name: str, **labels: str) -> float:
    return _samples(operator).get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics__move_with_a_run(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
) -> None:
    """Runs by phase follow the run; its closed cycle counts each client task once, with its
    duration; handler latencies count the start and the reconciles."""
    # Slow enough to be seen Running: the operator writes mere progress at most every 5 s.
    airtable.add_client("acme-recruiting", 1, task_seconds=3.0)
    assert _value(operator, "smart_resume_runs", phase="Running") == 0
    create_run(api_client, run_namespace, "scraped", streams=[1])

    wait_for(
        lambda: _value(operator, "smart_resume_runs", phase="Running") == 1,
        timeout=30,
        what="smart_resume_runs{phase=Running} to be 1",
    )
    wait_phase(api_client, run_namespace, "scraped", {"Succeeded"})
    wait_for(
        lambda: _value(operator, "smart_resume_runs", phase="Succeeded") == 1,
        timeout=30,
        what="smart_resume_runs{phase=Succeeded} to be 1",
    )

    assert _value(operator, "smart_resume_runs", phase="Running") == 0
    for task in ("lead_scoring", "post_harvesting", "post_scoring"):
        processed = "smart_resume_clients_processed_total"
        assert _value(operator, processed, task=task, state="Completed") == 1, task
        durations = "smart_resume_client_task_duration_seconds_count"
        assert _value(operator, durations, task=task) == 1, task
    count = "smart_resume_reconcile_duration_seconds_count"
    assert _value(operator, count, handler="start") == 1
    assert _value(operator, count, handler="reconcile") >= 1
