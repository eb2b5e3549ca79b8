"""What the recorder and the notifier share: looking at runs one at a time from the indices,
remembering their own status field as last written, and writing it conditioned on the run's
resourceVersion.

Both act on the events of a run, of its Jobs and of its checkpoints (``controller.handlers``),
each in a thread of its own (``OneAtATime``), so neither ever holds up a run's reconcile, with
the run and its checkpoints as the kopf indices hold them: no read of the API server. A
run's copy in the index may predate this process's own last write to it (the watch event of
that write arrives later), so each remembers per run what it last wrote of the status field it
owns (``Written``) and trusts that over the copy: it is that field's one writer.

They write ``status.conditions`` as a whole list (a merge patch replaces lists), so every such
write carries the resourceVersion it was derived from and is derived again on a 409 (the one
read they make): neither overwrites a condition another writer set meanwhile.
"""

from __future__ import annotations

import contextvars
import datetime
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client

from smart_resume.controller.known import Known
from smart_resume.core.report import RunReport, report_from
from smart_resume.core.status import set_condition
from smart_resume.kube.runs import Runs

CONFLICT_ATTEMPTS = 5

log = logging.getLogger("smart_resume.projection")

Look = Callable[[Mapping[str, Any], Known], None]


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def is_after(moment: str | None, now: datetime.datetime) -> bool:
    """Whether the status time ``moment`` (RFC 3339, or empty) is later than ``now``."""
    if not moment:
        return False
    return datetime.datetime.fromisoformat(moment.replace("Z", "+00:00")) > now


def indexed_report(run: Mapping[str, Any], known: Known, now: datetime.datetime) -> RunReport:
    """The report of ``run`` from the checkpoints in the operator's index."""
    namespace = run["metadata"]["namespace"]
    return report_from(run, lambda name: known.checkpoint(namespace, name), now=now)


class OneAtATime:
    """Looks at runs one at a time, in a thread of its own (``name``), never in a handler's.

    A handler only asks: the run is looked at soon, from the index as it is then, in the context
    of the handler that asked (kopf's Event queue, for the Events a look posts). A run asked for
    again before its look is looked at once, no look is lost, and a slow service (Airtable, the
    mail server) holds this thread only: neither kopf's handler threads nor a run's other events
    wait for it.
    """

    def __init__(self, look: Look, *, name: str) -> None:
        self._look = look
        self._asked_for: dict[tuple[str, str], tuple[Known, contextvars.Context]] = {}
        self._changed = threading.Condition()
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def ask(self, namespace: str, name: str, known: Known) -> None:
        with self._changed:
            self._asked_for[(namespace, name)] = (known, contextvars.copy_context())
            self._changed.notify()

    def _work(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._asked_for))
                (namespace, name), (known, context) = next(iter(self._asked_for.items()))
                del self._asked_for[(namespace, name)]
            run = known.run_named(namespace, name)
            if run is None:
                continue  # deleted meanwhile
            try:
                context.run(self._look, run, known)
            except Exception:  # the next event, or the retry timer, looks again
                log.exception("look at run %s/%s failed", namespace, name)


class Written:
    """What this process last wrote of the status field ``field`` it owns, per run uid."""

    def __init__(self, field: str) -> None:
        self._field = field
        self._by_uid: dict[str, Mapping[str, Any]] = {}

    def of(self, run: Mapping[str, Any]) -> Mapping[str, Any]:
        """The field as this process last wrote it, else as the run's copy has it."""
        uid = run["metadata"]["uid"]
        if uid in self._by_uid:
            return self._by_uid[uid]
        return (run.get("status") or {}).get(self._field) or {}

    def status(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """The run's status with the field as ``of`` has it."""
        return {**(run.get("status") or {}), self._field: self.of(run)}

    def remember(self, written: Mapping[str, Any]) -> None:
        """Keep the field of ``written``, a run as a write returned it."""
        self._by_uid[written["metadata"]["uid"]] = (written.get("status") or {}).get(
            self._field
        ) or {}

    def forget(self, uid: str) -> None:
        self._by_uid.pop(uid, None)


def write_status(
    runs: Runs,
    run: Mapping[str, Any],
    changes: Callable[[Mapping[str, Any]], Mapping[str, Any]],
    *,
    condition: tuple[str, str, str, str] | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    """Merge ``changes(status)`` and the ``condition`` (type, status, reason, message) into the
    run's status, conditioned on its resourceVersion; re-read and derive again on a 409.

    Returns the run as written."""
    meta = run["metadata"]
    for attempt in range(CONFLICT_ATTEMPTS):
        if attempt:
            run = runs.get(meta["namespace"], meta["name"])
        status = run.get("status") or {}
        patch = dict(changes(status))
        if condition is not None:
            kind, state, reason, message = condition
            patch["conditions"] = set_condition(
                status.get("conditions") or [],
                type=kind,
                status=state,
                reason=reason,
                message=message,
                now=now,
                observed_generation=run["metadata"].get("generation", 1),
            )
        try:
            return runs.patch_status(
                meta["namespace"],
                meta["name"],
                patch,
                resource_version=run["metadata"]["resourceVersion"],
            )
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    raise RuntimeError(f"run {meta['namespace']}/{meta['name']} kept changing")


class Projection:
    """A projection of runs (Airtable records, e-mails): each run looked at one at a time in a
    thread of its own (``OneAtATime``), writing the one status field it owns (``Written``)."""

    def __init__(self, field: str, *, thread: str) -> None:
        self._written = Written(field)
        self._looks = OneAtATime(self._project, name=thread)

    def look(self, namespace: str, name: str, known: Known) -> None:
        """Look at the run soon, from the index as it is then."""
        self._looks.ask(namespace, name, known)

    def forget(self, uid: str) -> None:
        """Drop what this process remembers of a deleted run."""
        self._written.forget(uid)

    def _project(self, run: Mapping[str, Any], known: Known) -> None:
        raise NotImplementedError
