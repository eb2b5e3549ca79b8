"""What the operator knows from its watches, so that no handler lists a namespace.

Four kopf indices, kept current by kopf from its watch streams with no API call of their own:
the runs by namespace (run-ID assignment, history pruning, following a run from its Jobs, the
runs whose cycles a run continues), the Jobs of runs by namespace and run label, the stream
checkpoints by namespace and name (a run's progress, and the report its records and e-mails are
built from), and the checkpoints' resourceVersions (claims conditioned on them, a worker's last
words). Each holds a small copy of what the operator reads, never whole objects with their
managed fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

from smart_resume import resource
from smart_resume.core.reasons import StreamReason

RunKey = tuple[str, str]
"""``(namespace, run label)``: the run label is the run's name, shortened as Job names are."""


@dataclasses.dataclass(frozen=True)
class JobState:
    name: str
    stream: int
    ended: str | None
    """Why the Job ended (``Complete``, ``DeadlineExceeded``, ...); ``None`` while it runs."""


def run_entry(body: Mapping[str, Any]) -> dict[str, Any]:
    """The copy of a run the index holds: what the lifecycle reads, without managed fields."""
    metadata = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": metadata,
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


def job_state(name: str, labels: Mapping[str, str], status: Mapping[str, Any]) -> JobState:
    return JobState(name, int(labels[resource.LABEL_STREAM]), job_ended(status))


def job_ended(status: Mapping[str, Any]) -> str | None:
    """``None`` while the Job runs; else the reason it ended (``Complete``,
    ``DeadlineExceeded``, ...)."""
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return StreamReason.COMPLETE
        if condition.get("type") == "Failed":
            return str(condition.get("reason") or StreamReason.FAILED)
    return None


@dataclasses.dataclass(frozen=True)
class Known:
    """Read access to the operator's indices (kopf passes them to handlers by name)."""

    runs_index: Mapping[str, Collection[Mapping[str, Any]]]
    jobs_index: Mapping[RunKey, Collection[JobState]]
    checkpoints_index: Mapping[tuple[str, str], Collection[Mapping[str, Any]]]
    checkpoint_versions_index: Mapping[tuple[str, str], Collection[str]] = dataclasses.field(
        default_factory=dict
    )

    def runs(self, namespace: str) -> list[Mapping[str, Any]]:
        return list(self.runs_index.get(namespace, ()))

    def run_named(
        self, namespace: str, name: str, *, uid: str | None = None
    ) -> Mapping[str, Any] | None:
        """The run ``name``; with ``uid``, only if it is still that run (not one re-created under
        the same name)."""
        run = next((run for run in self.runs(namespace) if run["metadata"]["name"] == name), None)
        if run is None or uid not in (None, run["metadata"]["uid"]):
            return None
        return run

    def run(self, namespace: str, run_label: str) -> Mapping[str, Any] | None:
        for run in self.runs(namespace):
            if resource.labels(run["metadata"]["name"])[resource.LABEL_RUN] == run_label:
                return run
        return None

    def jobs(self, namespace: str, run_name: str) -> dict[int, JobState]:
        key = (namespace, resource.labels(run_name)[resource.LABEL_RUN])
        return {job.stream: job for job in self.jobs_index.get(key, ())}

    def checkpoint(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """A checkpoint's status, if the index has seen the checkpoint."""
        return next(iter(self.checkpoints_index.get((namespace, name), ())), None)

    def with_checkpoints(
        self, namespace: str, checkpoints: Collection[Mapping[str, Any] | None]
    ) -> Known:
        """These indices, with ``checkpoints`` (as just read) instead of what the index shows."""
        found = [c for c in checkpoints if c]
        keys = [(namespace, c["metadata"]["name"]) for c in found]
        return dataclasses.replace(
            self,
            checkpoints_index={
                **self.checkpoints_index,
                **{k: [dict(c.get("status") or {})] for k, c in zip(keys, found, strict=True)},
            },
            checkpoint_versions_index={
                **self.checkpoint_versions_index,
                **{k: [c["metadata"]["resourceVersion"]] for k, c in zip(keys, found, strict=True)},
            },
        )

    def checkpoint_version(self, namespace: str, name: str) -> str | None:
        return next(iter(self.checkpoint_versions_index.get((namespace, name), ())), None)

    def checkpoint_object(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The checkpoint as the index saw it, enough to replace its status on that version (a
        409 if it changed since)."""
        status = self.checkpoint(namespace, name)
        version = self.checkpoint_version(namespace, name)
        if status is None or not version:
            return None
        return {
            "apiVersion": resource.API_VERSION,
            "kind": resource.STREAM_KIND,
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": version},
            "status": dict(status),
        }
