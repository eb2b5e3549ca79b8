"""``smart-resume report RUN``: fetch a run and its streams' checkpoints, print the run report.

Also a kubectl plugin (``kubectl smart-resume report RUN``: the console script
``kubectl-smart_resume``). ``--watch`` prints the report again whenever the run changes, until
the run has ended, following the run with a watch rather than polling.
"""

from __future__ import annotations

import datetime
import json
import sys
from typing import Any, TextIO

from kubernetes import client, watch

from smart_resume import resource
from smart_resume.core.report import RunReport, as_json, render_text
from smart_resume.core.status import is_terminal
from smart_resume.kube.reports import report_of as kube_report_of
from smart_resume.kube.runs import Runs
from smart_resume.kube.streams import Checkpoints

WATCH_TIMEOUT_SECONDS = 300
READER = "smart-resume-report"
"""The field manager the report would write as; it only ever reads."""


def report_of(api: client.ApiClient, run: dict[str, Any]) -> RunReport:
    """The report of ``run``, with the checkpoint of each stream it started."""
    checkpoints = Checkpoints(api, field_manager=READER)
    return kube_report_of(checkpoints, run, now=datetime.datetime.now(datetime.UTC))


def print_report(
    api: client.ApiClient,
    namespace: str,
    name: str,
    *,
    output: str = "text",
    follow: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Print the report of run ``name`` (``output``: text or json); 1 if there is no such run."""
    try:
        run = Runs(api, field_manager=READER).get(namespace, name)
    except client.ApiException as exc:
        if exc.status == 404:
            print(f"error: no SmartResumeRun {name!r} in namespace {namespace!r}", file=sys.stderr)
            return 1
        raise
    _emit(report_of(api, run), output, out)
    while follow and not is_terminal((run.get("status") or {}).get("phase", "")):
        # kubernetes.watch has no annotations.
        for event in watch.Watch().stream(  # type: ignore[no-untyped-call]
            client.CustomObjectsApi(api).list_namespaced_custom_object,
            resource.GROUP,
            resource.VERSION,
            namespace,
            resource.PLURAL,
            field_selector=f"metadata.name={name}",
            resource_version=run["metadata"]["resourceVersion"],
            timeout_seconds=WATCH_TIMEOUT_SECONDS,
        ):
            if event["type"] == "DELETED":
                out.write(f"run {name} was deleted\n")
                return 0
            run = event["object"]
            _emit(report_of(api, run), output, out)
            if is_terminal((run.get("status") or {}).get("phase", "")):
                break
        else:  # the watch timed out: start over from the run as it is now
            run = Runs(api, field_manager=READER).get(namespace, name)
    return 0


def _emit(report: RunReport, output: str, out: TextIO) -> None:
    if output == "json":
        out.write(json.dumps(as_json(report), indent=2) + "\n")
    else:
        out.write(render_text(report) + "\n")
    out.flush()
