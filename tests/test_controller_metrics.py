"""The operator's metrics: names, units and label sets as Prometheus' conventions want them."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from smart_resume.controller.metrics import REGISTRY, RunPhases

FORBIDDEN_LABELS = {"client", "client_id", "run", "name", "namespace"}


def test_registry__names_are_prefixed_with_bounded_labels() -> None:
    """Every family is ``smart_resume_*``; counters end in ``_total``; no per-object labels."""
    families = list(text_string_to_metric_families(generate_latest(REGISTRY).decode()))
    assert families
    for family in families:
        assert family.name.startswith("smart_resume_"), family.name
        for sample in family.samples:
            assert not FORBIDDEN_LABELS & set(sample.labels), sample
            if family.type == "counter":
                assert sample.name.endswith(("_total", "_created")), sample.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name


def test_run_phases__counts_each_run_once_in_its_latest_phase() -> None:
    """A run counts once, under its latest phase; a deleted run not at all."""
    phases = RunPhases()
    registry = CollectorRegistry()
    registry.register(phases)
    phases.observe("ns", "a", "Running")
    phases.observe("ns", "b", "")
    phases.observe("other", "a", "Running")
    phases.observe("ns", "a", "Succeeded")
    phases.forget("other", "a")

    value = registry.get_sample_value
    assert value("smart_resume_runs", {"phase": "Succeeded"}) == 1
    assert value("smart_resume_runs", {"phase": "Pending"}) == 1
    assert value("smart_resume_runs", {"phase": "Running"}) == 0
    assert value("smart_resume_runs", {"phase": "TimedOut"}) == 0
