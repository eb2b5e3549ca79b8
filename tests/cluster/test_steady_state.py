"""The operator's API requests while nothing changes: a Running run costs none (issue 11)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from cluster.conftest import Airtable
from harness.audit import AuditWindow, verb_of, wait_logged
from harness.operator import OperatorProcess
from harness.waiting import wait_for
from smart_resume import resource
from support.runs import create_run, get_run

pytestmark = pytest.mark.cluster

WINDOW_SECONDS = 8.0
"""Longer than two looks of a 3 s timer, the poll the records and the notifier once had."""
READS = ("get", "list")
RUN_RESOURCES = (resource.PLURAL, resource.STREAM_PLURAL)


def _settled_running(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    """The run once it is Running on its client and its Running records are written."""
    status = get_run(api, namespace, name).get("status") or {}
    stream = (status.get("streams") or {}).get("1") or {}
    synced = (status.get("airtable") or {}).get("syncedPhase") == "Running"
    return status if status.get("phase") == "Running" and synced and stream.get("current") else None


def test_operator__reads_no_run_or_checkpoint_while_a_running_run_does_not_change(
    api_client: client.ApiClient,
    run_namespace: str,
    airtable: Airtable,
    operator: OperatorProcess,
    operator_kubeconfig: Path,
    audit_log: Path,
) -> None:
    """A run Running on a client that hangs, its records synced: over a window of quiet, the
    operator GETs and LISTs no run and no checkpoint (records and notifications read the
    watches' indices and act on events, not on a poll)."""
    airtable.add_client("acme-recruiting", 1, behaviour="hang:lead_scoring")
    create_run(api_client, run_namespace, "steady", streams=[1])
    before = wait_for(
        lambda: _settled_running(api_client, run_namespace, "steady"),
        timeout=60,
        what="run steady Running on its client, its records synced",
    )
    window = AuditWindow(audit_log)
    time.sleep(WINDOW_SECONDS)  # the measured interval itself, not a wait for a state
    wait_logged(window, config.new_client_from_config(config_file=str(operator_kubeconfig)))

    events = window.events()
    reads = [
        verb_of(e)
        for e in events
        if e["verb"] in READS and (e.get("objectRef") or {}).get("resource") in RUN_RESOURCES
    ]
    assert reads == [], f"the operator read {reads} in {window.seconds:.1f} s of quiet"
    after = get_run(api_client, run_namespace, "steady")["status"]
    assert after["phase"] == "Running"
    assert after["streams"]["1"]["current"] == before["streams"]["1"]["current"]
