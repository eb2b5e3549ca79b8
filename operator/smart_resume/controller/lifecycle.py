"""What the operator does to a SmartResumeRun: start its streams, follow them, suspend, terminate.

Each method reads the run, decides with the pure ``core`` functions and acts on Leases, stream
checkpoints (SmartResumeStreams) and Jobs. Order matters where a worker reads: the run ID, the
stream's cycle and the checkpoint's ownership are written straight to the API server (not into
kopf's ``patch``, which lands only after the handler returns) *before* the Job is created, in one
write for all the run's streams, which names their Jobs too: a Job that then cannot be created is
written over at once, and when every Job was created kopf's ``patch`` is left with nothing to
write.

Every step is idempotent: after an operator restart kopf re-runs an unfinished handler, which then
finds its Lease already held (``Ours``), its cycle already claimed (``Ours``) and its Job already
there (409), and changes nothing twice.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import dataclasses
import datetime
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import kopf
from kubernetes import client

from smart_resume import resource
from smart_resume.config import Settings, forwardable_env
from smart_resume.controller import metrics
from smart_resume.controller.known import JobState, Known
from smart_resume.controller.later import Later
from smart_resume.core.checkpoint import (
    ClaimDecision,
    claim_cycle,
    cycle_counts,
    decode_clients,
    owns_cycle,
)
from smart_resume.core.history import runs_to_prune
from smart_resume.core.locks import LeaseDecision, LeaseObservations
from smart_resume.core.reasons import StreamReason, job_end_reason
from smart_resume.core.spec import ResumeMode, RunSpec
from smart_resume.core.status import (
    ConditionType,
    Phase,
    client_counts,
    format_time,
    is_terminal,
    run_phase,
    set_condition,
    stream_phase,
    succeeded_condition_for,
    summarize,
)
from smart_resume.kube.jobs import Jobs, build_job_manifest, owner_reference
from smart_resume.kube.leases import Acquisition, StreamLock
from smart_resume.kube.runids import RunIdCounter
from smart_resume.kube.runs import Runs
from smart_resume.kube.streams import FIELD_MANAGER_OPERATOR, Checkpoints
from smart_resume.resource import holder_identity

Body = kopf.Body
_T = TypeVar("_T")
START_ATTEMPTS = 5
"""Tries to create a stream's Job (a quota, an admission denial) before the stream fails."""
START_RETRY_SECONDS = 2.0
PROBLEMS_SHOWN = 20
"""Problem clients listed in a run's status, over all its streams."""
PARALLEL_STARTS = 16
"""Streams started (and runs followed later) at once, over all runs."""
SAFETY_NET_SECONDS = 300.0
"""A followed run is followed again at the latest this long after its last event."""
LAST_WORDS_SECONDS = 1.0
"""How long a stream's end waits for its worker's last words (``workerReason``) to be seen."""
PROGRESS_WRITE_SECONDS = 5.0
"""A run's status takes its streams' progress at most this often (their ends at once)."""


@dataclasses.dataclass(frozen=True)
class _Opened:
    """A stream as opened for a start: its status update, and its Lease once held and its cycle
    claimed (``None`` when it waits or is skipped)."""

    update: dict[str, Any]
    lock: StreamLock | None


class RetryLater(Exception):
    """Some streams wait for a Lease or a Job creation: run the handler again after ``delay``."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


class RunLifecycle:
    def __init__(
        self, api: client.ApiClient, settings: Settings, environ: Mapping[str, str] | None = None
    ) -> None:
        self._api = api
        self._settings = settings
        self._forwarded = forwardable_env(os.environ if environ is None else environ)
        self._jobs = Jobs(api)
        self._runs = Runs(api, field_manager=FIELD_MANAGER_OPERATOR)
        self._checkpoints = Checkpoints(api, field_manager=FIELD_MANAGER_OPERATOR)
        self._run_ids = RunIdCounter(
            api, namespace=settings.operator.namespace, today=lambda: _now().date()
        )
        self._observations = LeaseObservations()
        self._observations_lock = threading.Lock()
        self._starts = concurrent.futures.ThreadPoolExecutor(
            PARALLEL_STARTS, thread_name_prefix="stream-start"
        )
        self._following: dict[str, threading.Lock] = {}
        self._following_lock = threading.Lock()
        # What this process already folded: an event from a run copy older than its own write
        # must not end a stream (or the run) twice. Forgotten when the run is deleted.
        self._ended: dict[tuple[str, str], dict[str, Any]] = {}
        self._finished: set[str] = set()
        self._progress_due: dict[str, float] = {}
        self.later = Later(self._starts)
        """The one clock for calls due later, for all runs."""
        self._words_due: dict[str, float] = {}
        """Per run: when its Jobs' ends awaiting their workers' last words are folded anyway
        (one clock per run, so that ends close together are folded in one write)."""
        self._created: set[tuple[str, str]] = set()
        self._lease_versions: dict[tuple[str, str], str] = {}
        """``(Lease, holder)``: the resourceVersion of this process's last write of the Lease."""
        """Jobs this process created: not yet in the Jobs index is no reason to look them up."""

    # -- create -------------------------------------------------------------------------------

    def start(
        self, body: Body, patch: kopf.Patch, logger: kopf.Logger, known: Known, *, retry: int
    ) -> None:
        """Plan every stream: take its Lease, claim its cycle, create its Job; streams start
        concurrently.

        Raises:
            RetryLater: when a stream waits for another run's Lease to be seen live or stale, or
                its Job could not be created yet; the streams already started stay started.
        """
        spec = RunSpec.from_body(body)
        now = _now()
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        # A retry reads again: earlier attempts wrote straight to the API server, and kopf's body
        # may predate that. A first attempt's body is the run as listed or created.
        current = self._runs.get(namespace, name) if retry else body
        status = dict(current.get("status") or {})
        streams: dict[str, dict[str, Any]] = {
            key: dict(value) for key, value in (status.get("streams") or {}).items() if value
        }
        undecided = [
            stream
            for stream in spec.streams
            if not self._decided(body, streams.get(str(stream), {}), known)
        ]
        first: dict[str, Any] = {}
        if not status.get("runId"):
            first = {"runId": self._run_ids.take(), "startTime": format_time(now)}
            status.update(first)
        if spec.suspend:
            updates = [
                {
                    "phase": Phase.SUSPENDED,
                    "reason": StreamReason.SUSPENDED,
                    "message": "created suspended",
                    "lease": resource.lease_name(stream),
                }
                for stream in undecided
            ]
            patch.status.update(first)
        else:
            updates = self._start_streams(
                body, spec, undecided, status, streams, logger, known, first, now
            )
        waiting: list[str] = []
        for stream, update in zip(undecided, updates, strict=True):
            key = str(stream)
            if update.get("phase") == Phase.PENDING:
                waiting.append(key)
            changed = {k: v for k, v in update.items() if streams.get(key, {}).get(k) != v}
            streams[key] = {**streams.get(key, {}), **update}
            if changed:
                patch.status.setdefault("streams", {})[key] = changed
        self._write_summary(body, status, spec, streams, patch, now, known)
        if waiting:
            raise RetryLater(f"streams {', '.join(waiting)} wait", self._retry_delay())

    def _decided(self, body: Body, entry: Mapping[str, Any], known: Known) -> bool:
        """Whether an earlier attempt of the start handler decided this stream already: it was
        skipped or failed, or its Job exists (or is being created by this process)."""
        if entry.get("phase") in (Phase.SKIPPED, Phase.FAILED):
            return True
        job = entry.get("job")
        if not job:
            return False
        meta = body["metadata"]
        with self._following_lock:
            if (meta["uid"], job) in self._created:
                return True
        return any(j.name == job for j in known.jobs(meta["namespace"], meta["name"]).values())

    def _start_streams(
        self,
        body: Body,
        spec: RunSpec,
        streams: list[int],
        status: dict[str, Any],
        entries: dict[str, dict[str, Any]],
        logger: kopf.Logger,
        known: Known,
        first: Mapping[str, Any],
        now: datetime.datetime,
    ) -> list[dict[str, Any]]:
        """Open the streams (Lease, cycle claim) concurrently; write to the run in one request
        what their workers read (the run ID, each stream's cycle and checkpoint), naming each
        stream's Job as if created already; then create the Jobs concurrently.

        Returns each stream's status update; ``status`` and ``entries`` become what was written,
        so that the caller writes only what differs: nothing, when every Job was created.
        """
        meta = body["metadata"]
        opened = dict(
            zip(
                streams,
                self._concurrently(
                    lambda stream: self._open_stream(
                        body, spec, stream, status["runId"], entries.get(str(stream), {}), known
                    ),
                    streams,
                ),
                strict=True,
            )
        )
        claimed: dict[str, dict[str, Any]] = {}
        for stream, one in opened.items():
            if one.lock is not None:
                job = resource.job_name(meta["name"], stream)
                with self._following_lock:  # so that following waits for its first event
                    self._created.add((meta["uid"], job))
                claimed[str(stream)] = {**one.update, **_job_created(job)}
        if claimed:
            written = {**entries, **{k: {**entries.get(k, {}), **v} for k, v in claimed.items()}}
            summary = _summary(body, status, spec, written, now)
            changes = {**first, "streams": claimed, **summary}
            self._runs.patch_status(meta["namespace"], meta["name"], changes)
            status.update(summary)
            entries.update(written)
        elif first:
            self._runs.patch_status(meta["namespace"], meta["name"], dict(first))
        return self._concurrently(
            lambda stream: self._create_job(
                body, spec, stream, opened[stream], entries.get(str(stream), {}), logger
            ),
            streams,
        )

    def _open_stream(
        self,
        body: Body,
        spec: RunSpec,
        stream: int,
        run_id: str,
        entry: Mapping[str, Any],
        known: Known,
    ) -> _Opened:
        lock = self._lock(body, stream)
        acquisition = self._acquire(lock)
        if not acquisition.acquired:
            return _Opened(self._not_acquired(body, stream, lock, acquisition), None)
        update = self._claim(body, spec, stream, run_id, lock, entry, known)
        if acquisition.decision is LeaseDecision.TAKE_OVER and acquisition.previous:
            metrics.LEASE_TAKEOVERS.inc()
            kopf.warn(
                body,
                reason="StaleLockTakenOver",
                message=(
                    f"stream {stream}: took over Lease {lock.name} from "
                    f"{acquisition.previous.holder}: unchanged for its "
                    f"{acquisition.previous.duration_seconds}s as seen by the operator"
                ),
            )
            # Written with the claim, so that a Job creation that fails still keeps it (notifier).
            update["takenOverFrom"] = acquisition.previous.holder
        return _Opened(update, lock)

    def _create_job(
        self,
        body: Body,
        spec: RunSpec,
        stream: int,
        opened: _Opened,
        entry: Mapping[str, Any],
        logger: kopf.Logger,
    ) -> dict[str, Any]:
        if opened.lock is None:
            return opened.update
        manifest = build_job_manifest(
            run=body,
            spec=spec,
            stream=stream,
            settings=self._settings.job,
            forwarded_env=self._forwarded,
        )
        job = manifest["metadata"]["name"]
        try:
            self._jobs.ensure(manifest)
        except client.ApiException as exc:
            with self._following_lock:
                self._created.discard((body["metadata"]["uid"], job))
            failed = self._start_failed(body, stream, opened.lock, entry, exc)
            return {**opened.update, "job": None, **failed}
        started = opened.update
        resumed = (
            f", continuing cycle {started['cycle']} of {started['resumedFrom']}"
            if started.get("resumedFrom")
            else ""
        )
        post_normal(
            body, reason="StreamStarted", message=f"stream {stream}: Job {job} created{resumed}"
        )
        logger.info("stream %s started (job %s%s)", stream, job, resumed)
        return {**started, **_job_created(job)}

    def _claim(
        self,
        body: Body,
        spec: RunSpec,
        stream: int,
        run_id: str,
        lock: StreamLock,
        entry: Mapping[str, Any],
        known: Known,
    ) -> dict[str, Any]:
        """Claim the stream's cycle, on the checkpoint as the index shows it (a write on an older
        version gets a 409, and the claim is decided again on what is read then).

        Returns what the run's status is to say of the stream, which the caller writes before
        the Job exists."""
        meta = body["metadata"]
        name = resource.checkpoint_name(stream, ad_hoc_run=meta["name"] if spec.is_ad_hoc else None)
        owner = owner_reference(body) if spec.is_ad_hoc else None
        checkpoint = known.checkpoint_object(meta["namespace"], name) or self._checkpoints.create(
            meta["namespace"], name, stream=stream, owner=owner
        )
        for _ in range(3):
            claim = claim_cycle(
                checkpoint.get("status") or {},
                run_name=meta["name"],
                run_uid=meta["uid"],
                run_id=run_id,
                continue_unfinished=spec.resume == ResumeMode.AUTO and not spec.is_ad_hoc,
            )
            if claim.decision is ClaimDecision.OURS:
                break
            try:
                checkpoint = self._checkpoints.replace_status(checkpoint, claim.status)
                break
            except client.ApiException as exc:
                if exc.status != 409:
                    raise
                checkpoint = self._checkpoints.get(
                    meta["namespace"], name
                ) or self._checkpoints.create(meta["namespace"], name, stream=stream, owner=owner)
        else:
            raise kopf.TemporaryError(f"checkpoint {name} keeps changing", delay=1)
        claimed = checkpoint.get("status") or {}
        started: dict[str, Any] = {
            "checkpoint": name,
            "lease": lock.name,
            "cycle": claimed["cycle"],
            "phase": Phase.PENDING,
            "reason": StreamReason.STARTING,
            "message": None,
            **_progress(claimed),
        }
        if claim.decision is ClaimDecision.CONTINUE and claim.previous_owner:
            started["resumedFrom"] = claim.previous_owner
        elif entry.get("resumedFrom"):
            started["resumedFrom"] = entry["resumedFrom"]
        return started

    def _acquire(self, lock: StreamLock) -> Acquisition:
        # Created first, outside the lock: a free stream costs one request and waits for nobody.
        created = lock.create(_now())
        with self._observations_lock:
            if created:
                self._observations.forget(lock.key)
                acquisition = Acquisition(True, LeaseDecision.CREATE, version=created)
            else:
                acquisition = lock.acquire(
                    _now(), observations=self._observations, monotonic_now=time.monotonic()
                )
            if acquisition.acquired:
                self._lease_versions[(lock.key, lock.holder)] = acquisition.version
        return acquisition

    def _release(self, lock: StreamLock, version: str = "") -> None:
        """Release the Lease, in one request when nobody wrote it since ``version`` (its worker's
        last renewal) or else since this process's own last write."""
        with self._observations_lock:
            written = self._lease_versions.pop((lock.key, lock.holder), "")
        lock.release(version or written)

    def _not_acquired(
        self, body: Body, stream: int, lock: StreamLock, acquisition: Acquisition
    ) -> dict[str, Any]:
        holder = acquisition.previous.holder if acquisition.previous else "another run"
        duration = acquisition.previous.duration_seconds if acquisition.previous else 0
        if acquisition.decision is LeaseDecision.WAIT:
            return {
                "phase": Phase.PENDING,
                "reason": StreamReason.WAITING_FOR_LOCK,
                "message": f"stream {stream} is locked by {holder}; taken over if its Lease "
                f"stays unchanged for {duration}s",
                "lease": lock.name,
            }
        message = f"stream {stream} is locked by {holder}"
        kopf.warn(body, reason="LockHeld", message=message)
        return {
            "phase": Phase.SKIPPED,
            "reason": StreamReason.LOCK_HELD,
            "message": message,
            "lease": lock.name,
        }

    def _start_failed(
        self,
        body: Body,
        stream: int,
        lock: StreamLock,
        entry: Mapping[str, Any],
        exc: client.ApiException,
    ) -> dict[str, Any]:
        attempts = int(entry.get("startAttempts") or 0) + 1
        message = (
            f"cannot create the Job of stream {stream} (attempt {attempts}): {_api_error(exc)}"
        )
        if attempts < START_ATTEMPTS:
            return {
                "phase": Phase.PENDING,
                "reason": StreamReason.STARTING,
                "message": message,
                "startAttempts": attempts,
            }
        self._release(lock)
        kopf.warn(body, reason="StartFailed", message=f"{message}; giving up")
        return {
            "phase": Phase.FAILED,
            "reason": StreamReason.START_FAILED,
            "message": f"{message}; gave up after {attempts} attempts, Lease released",
            "startAttempts": attempts,
        }

    def _retry_delay(self) -> float:
        return float(min(self._settings.lease.renew_interval_seconds, START_RETRY_SECONDS))

    def _concurrently(self, start: Callable[[int], _T], streams: list[int]) -> list[_T]:
        """``start`` for each stream in the shared pool; each call in a copy of this context, so
        that the Events posted from the pool reach kopf's queue."""
        if len(streams) <= 1:
            return [start(stream) for stream in streams]
        futures = [
            self._starts.submit(contextvars.copy_context().run, start, stream) for stream in streams
        ]
        return [future.result() for future in futures]

    # -- follow -------------------------------------------------------------------------------

    def follow(self, body: Mapping[str, Any], known: Known) -> None:
        """Bring the run's status up to what its Jobs and checkpoints say.

        Called on every event of the run, of its Jobs and of its streams' checkpoints (and, for
        a followed run, at the latest ``SAFETY_NET_SECONDS`` after the last call), with the run
        as last seen: possibly older than this process's
        own last write, which ``_ended`` and ``_finished`` make harmless. A stream's or the run's
        end is written at once; mere progress at most every ``PROGRESS_WRITE_SECONDS`` per run
        (the run's status is no per-client log), the last of it when that interval is over.
        """
        uid = body["metadata"]["uid"]
        with self._following_lock:
            lock = self._following.setdefault(uid, threading.Lock())
        with lock:
            meta = body["metadata"]
            status = body.get("status") or {}
            if meta.get("deletionTimestamp") or is_terminal(status.get("phase", "")):
                return  # being deleted (its Jobs go away on purpose), or finished
            if not (body.get("spec") or {}).get("suspend"):
                self._follow_later(uid, meta["namespace"], meta["name"], known, SAFETY_NET_SECONDS)
            if meta.get("generation", 1) != status.get("observedGeneration"):
                return  # not started yet, or a spec change (suspend) its handler decides first
            if self._late_last_words(body, known):
                # Waited for them long enough: read the run, and the checkpoints its last words
                # name a version of that the index has not shown.
                try:
                    body = self._runs.get(meta["namespace"], meta["name"])
                except client.ApiException as exc:
                    if exc.status == 404:
                        return
                    raise
                behind = self._late_last_words(body, known)
                known = known.with_checkpoints(
                    meta["namespace"],
                    [
                        self._checkpoints.get(meta["namespace"], entry["checkpoint"])
                        for entry in behind
                        if entry.get("workerReason") and entry.get("checkpoint")
                    ],
                )
            patch = kopf.Patch()
            self._reconcile(kopf.Body(cast(kopf.RawBody, dict(body))), patch, known)
            changes = patch.get("status")
            if not changes:
                return
            if _ends_something(changes):
                with self._following_lock:  # the ends awaited are folded: a later end waits anew
                    self._words_due.pop(uid, None)
            now = time.monotonic()
            wait = self._progress_due.get(uid, 0.0) - now
            if wait > 0 and not _ends_something(changes):
                self._follow_later(uid, meta["namespace"], meta["name"], known, wait)
                return
            self._write(body, changes, known)
            self._progress_due[uid] = now + PROGRESS_WRITE_SECONDS

    def _write(self, body: Mapping[str, Any], changes: dict[str, Any], known: Known) -> None:
        """Write what following decided. The conditions are a list that a merge patch replaces
        whole, and the recorder and the notifier write conditions of their own: a write of them
        is conditioned on the copy it was derived from, and decided again on a 409."""
        meta = body["metadata"]
        if "conditions" not in changes:
            self._runs.patch_status(meta["namespace"], meta["name"], changes)
            return
        try:
            self._runs.patch_status(
                meta["namespace"], meta["name"], changes, resource_version=meta["resourceVersion"]
            )
            return
        except client.ApiException as exc:
            if exc.status != 409:
                raise
        fresh = self._runs.get(meta["namespace"], meta["name"])
        patch = kopf.Patch()
        self._reconcile(kopf.Body(cast(kopf.RawBody, fresh)), patch, known)
        if patch.get("status"):
            self._runs.patch_status(
                meta["namespace"],
                meta["name"],
                dict(patch["status"]),
                resource_version=fresh["metadata"]["resourceVersion"],
            )

    def _follow_later(
        self, uid: str, namespace: str, name: str, known: Known, delay: float
    ) -> None:
        """One more ``follow`` of the run after ``delay`` (or sooner, if one is due sooner), from
        the index as it is then."""

        def again() -> None:
            run = known.run_named(namespace, name, uid=uid)
            if run is not None:
                self.follow(run, known)

        self.later.call(uid, delay, again)

    def forget(self, uid: str) -> None:
        """Drop what this process remembers of a deleted run."""
        self.later.cancel(uid)
        with self._following_lock:
            self._following.pop(uid, None)
            self._finished.discard(uid)
            self._progress_due.pop(uid, None)
            for key in [key for key in list(self._ended) if key[0] == uid]:
                del self._ended[key]
            self._words_due.pop(uid, None)
            self._created = {key for key in self._created if key[0] != uid}
        with self._observations_lock:
            for key in [key for key in self._lease_versions if key[1].endswith(f"/{uid}")]:
                del self._lease_versions[key]

    def _reconcile(self, body: Body, patch: kopf.Patch, known: Known) -> None:
        """Copy each stream's cycle counts from its checkpoint, fold finished Jobs into stream
        phases, release their Leases, and summarise the run."""
        status = body.get("status") or {}
        if not status.get("runId"):
            return  # the start handler has not written anything yet
        spec = RunSpec.from_body(body)
        now = _now()
        namespace = body["metadata"]["namespace"]
        jobs = known.jobs(namespace, body["metadata"]["name"])
        streams = {
            key: dict(value) for key, value in (status.get("streams") or {}).items() if value
        }
        problems: list[dict[str, Any]] = []
        for key, stream_status in streams.items():
            phase = stream_status.get("phase", "")
            if not stream_status.get("job"):
                continue
            update = self._cycle_progress(body, stream_status, known, problems, int(key))
            if is_terminal(phase):
                continue  # its counts were final when it ended; only its problems are listed
            before = dict(stream_status)
            stream_status.update(update)
            if phase != Phase.SUSPENDED:
                ended = self._follow_job(
                    body,
                    int(key),
                    stream_status,
                    jobs.get(int(key)),
                    known,
                    alone=len(streams) == 1,
                )
                update.update(ended)
                stream_status.update(ended)
                if ended.get("phase") in (Phase.SUCCEEDED, Phase.PARTIALLY_SUCCEEDED):
                    checkpoint = known.checkpoint(namespace, stream_status["checkpoint"])
                    metrics.observe_closed_cycle(decode_clients(checkpoint or {}))

            changed = {k: v for k, v in update.items() if before.get(k) != v}
            if changed:
                patch.status.setdefault("streams", {})[key] = changed
        if problems != (status.get("problemClients") or []):
            patch.status["problemClients"] = problems
        self._write_summary(body, status, spec, streams, patch, now, known)

    def _cycle_progress(
        self,
        body: Body,
        stream_status: Mapping[str, Any],
        known: Known,
        problems: list[dict[str, Any]],
        stream: int,
    ) -> dict[str, Any]:
        namespace = body["metadata"]["namespace"]
        checkpoint = known.checkpoint(namespace, stream_status.get("checkpoint", ""))
        if not checkpoint or not owns_cycle(
            checkpoint, run_uid=body["metadata"]["uid"], cycle=stream_status.get("cycle")
        ):
            return {"current": None}  # another run continues the cycle: what we had stays
        for client_id, message in sorted((checkpoint.get("problems") or {}).items()):
            if message and len(problems) < PROBLEMS_SHOWN:
                problems.append({"stream": stream, "client": client_id, "message": message})
        return _progress(checkpoint)

    def _late_last_words(self, body: Mapping[str, Any], known: Known) -> list[Mapping[str, Any]]:
        """The streams whose Job ended, not folded yet, whose worker's last words did not show
        up in the watches within ``LAST_WORDS_SECONDS``."""
        meta = body["metadata"]
        streams = (body.get("status") or {}).get("streams") or {}
        late = []
        for job in known.jobs(meta["namespace"], meta["name"]).values():
            entry = streams.get(str(job.stream)) or {}
            if (
                job.ended
                and entry.get("job") == job.name
                and (meta["uid"], job.name) not in self._ended
                and not is_terminal(entry.get("phase", ""))
                and not last_words_seen(meta["namespace"], entry, known)
                and self._last_words_due(meta["uid"]) <= 0
            ):
                late.append(entry)
        return late

    def _last_words_due(self, uid: str) -> float:
        """Seconds still to wait for the last words of the workers of the run's ended Jobs."""
        with self._following_lock:
            due = self._words_due.setdefault(uid, time.monotonic() + LAST_WORDS_SECONDS)
        return due - time.monotonic()

    def _follow_job(
        self,
        body: Body,
        stream: int,
        stream_status: dict[str, Any],
        job: JobState | None,
        known: Known,
        *,
        alone: bool,
    ) -> dict[str, Any]:
        meta = body["metadata"]
        ended = self._ended.get((meta["uid"], stream_status["job"]))
        if ended is not None:
            return ended  # folded already; the run copy at hand predates that write
        if job is not None:
            job_reason = job.ended
        elif (
            (meta["uid"], stream_status["job"]) in self._created
            # The start handler names the Jobs before it creates them; until it finished (an
            # operator restart in between) a Job not seen yet is still to be created.
            or resource.HANDLED not in (meta.get("annotations") or {})
            or self._jobs.exists(meta["namespace"], stream_status["job"])
        ):
            return {}  # created a moment ago; its first event is on its way
        else:
            job_reason = StreamReason.JOB_MISSING
        if job_reason is None:
            return {}
        worker_reason = stream_status.get("workerReason", "")
        if not last_words_seen(meta["namespace"], stream_status, known):
            wait = self._last_words_due(meta["uid"])
            if wait > 0:
                # The worker writes its last words before it exits, so they are on their way
                # in the watches unless it was killed: fold the end once they are here.
                self._follow_later(meta["uid"], meta["namespace"], meta["name"], known, wait)
                return {}
        phase = stream_phase(
            stream_status,
            job_finished=True,
            terminated=False,
            deadline_exceeded=job_reason == StreamReason.DEADLINE_EXCEEDED
            or worker_reason == StreamReason.DEADLINE_NEAR,
        )
        reason = job_end_reason(
            job_reason,
            worker_reason,
            cycle_closed=phase in (Phase.SUCCEEDED, Phase.PARTIALLY_SUCCEEDED),
            checkpointed="clientsTotal" in stream_status,
        )
        self._release(self._lock(body, stream), stream_status.get("workerLease", ""))
        message = stream_status.get("workerMessage") or reason
        if not alone:  # else the run's end, a moment later, tells it (one Event, not two)
            event = post_normal if phase == Phase.SUCCEEDED else kopf.warn
            event(
                body,
                reason=f"Stream{phase}",
                message=f"stream {stream}: {phase} ({reason}): {message}",
            )
        update = {"phase": phase, "reason": str(reason), "message": message, "current": None}
        self._ended[(meta["uid"], stream_status["job"])] = update
        return update

    # -- suspend ------------------------------------------------------------------------------

    def set_suspended(
        self, body: Body, patch: kopf.Patch, suspended: bool, logger: kopf.Logger, known: Known
    ) -> None:
        """Stop (keeping progress and releasing Leases) or continue every unfinished stream.

        Continuing never continues a cycle that another run claimed meanwhile: the checkpoint's
        owner decides, whatever happened to the Lease.
        """
        spec = RunSpec.from_body(body)
        status = body.get("status") or {}
        now = _now()
        namespace = body["metadata"]["namespace"]
        streams = {
            key: dict(value) for key, value in (status.get("streams") or {}).items() if value
        }
        waiting: list[str] = []
        updates: dict[str, dict[str, Any]] = {}
        created_suspended: list[int] = []
        for key, stream_status in streams.items():
            stream = int(key)
            if is_terminal(stream_status.get("phase", "")):
                continue
            if suspended:
                # The worker releases the Lease itself once it has wrapped up its client (or
                # the Lease goes stale): until then no other worker may start on the stream.
                if stream_status.get("job"):
                    self._jobs.set_suspended(namespace, stream_status["job"], True)
                else:
                    self._release(self._lock(body, stream))
                update: dict[str, Any] = {
                    "phase": Phase.SUSPENDED,
                    "reason": StreamReason.SUSPENDED,
                    "message": "spec.suspend is true; progress is kept",
                    "current": None,
                }
            elif not stream_status.get("job"):  # the run was created suspended
                created_suspended.append(stream)
                continue
            else:
                update = self._continue_stream(body, stream, stream_status)
            updates[key] = update
        started = self._start_streams(
            body, spec, created_suspended, dict(status), streams, logger, known, {}, now
        )
        updates.update(zip(map(str, created_suspended), started, strict=True))
        for key, update in updates.items():
            if update.get("phase") == Phase.PENDING:
                waiting.append(key)
            streams[key].update(update)
            patch.status.setdefault("streams", {})[key] = update
        if not waiting:
            post_normal(
                body,
                reason="Suspended" if suspended else "Resumed",
                message="run suspended; progress kept" if suspended else "run continues",
            )
        self._write_summary(body, status, spec, streams, patch, now, known)
        if waiting:
            raise RetryLater(f"streams {', '.join(waiting)} wait", self._retry_delay())

    def _continue_stream(
        self, body: Body, stream: int, stream_status: Mapping[str, Any]
    ) -> dict[str, Any]:
        lock = self._lock(body, stream)
        namespace = body["metadata"]["namespace"]
        acquisition = self._acquire(lock)
        if not acquisition.acquired:
            update = self._not_acquired(body, stream, lock, acquisition)
            if update["phase"] == Phase.SKIPPED:
                self._jobs.delete(namespace, stream_status["job"])
            return update
        checkpoint = self._checkpoints.get(namespace, stream_status.get("checkpoint", "")) or {}
        if not owns_cycle(
            checkpoint.get("status") or {},
            run_uid=body["metadata"]["uid"],
            cycle=stream_status.get("cycle"),
        ):
            self._jobs.delete(namespace, stream_status["job"])
            self._release(lock)
            owner = (checkpoint.get("status") or {}).get("owner", "another run")
            message = f"stream {stream}: its cycle was taken over by {owner} while suspended"
            kopf.warn(body, reason="CycleTakenOver", message=message)
            return {
                "phase": Phase.SKIPPED,
                "reason": StreamReason.CYCLE_TAKEN_OVER,
                "message": message,
            }
        self._jobs.set_suspended(namespace, stream_status["job"], False)
        return {"phase": Phase.RUNNING, "reason": StreamReason.RESUMED, "message": None}

    # -- delete -------------------------------------------------------------------------------

    def terminate(self, body: Body, logger: kopf.Logger) -> None:
        """Stop the stream Jobs (their pods get SIGTERM) and release the run's Leases.

        The streams' checkpoints stay: the next run continues their cycles.
        """
        status = body.get("status") or {}
        namespace = body["metadata"]["namespace"]
        stopped = []
        for key, stream_status in (status.get("streams") or {}).items():
            if not stream_status:
                continue
            if stream_status.get("job"):
                self._jobs.delete(namespace, stream_status["job"])
            self._release(self._lock(body, int(key)))
            if not is_terminal(stream_status.get("phase", "")):
                stopped.append(key)
        if stopped:
            kopf.warn(
                body,
                reason="Terminated",
                message=f"run deleted; stopped stream(s) {', '.join(sorted(stopped))}",
            )
        logger.info("run terminated; stopped streams: %s", stopped or "none")

    # -- shared -------------------------------------------------------------------------------

    def _write_summary(
        self,
        body: Body,
        status: Mapping[str, Any],
        spec: RunSpec,
        streams: Mapping[str, Mapping[str, Any]],
        patch: kopf.Patch,
        now: datetime.datetime,
        known: Known,
    ) -> None:
        changes = _summary(body, status, spec, streams, now)
        phase, summary = changes["phase"], changes
        uid = body["metadata"]["uid"]
        if is_terminal(phase) and not status.get("completionTime") and uid not in self._finished:
            changes["completionTime"] = format_time(now)
        for key, value in changes.items():
            if status.get(key) != value:
                patch.status[key] = value
        if (
            is_terminal(phase)
            and not is_terminal(status.get("phase", ""))
            and uid not in self._finished
        ):
            self._finished.add(uid)
            event = post_normal if phase == Phase.SUCCEEDED else kopf.warn
            told = ""
            if len(streams) == 1:  # its stream's end has no Event of its own
                ((key, last),) = streams.items()
                reason, message = last.get("reason", ""), last.get("message") or ""
                told = f"; stream {key}: {reason}" + (f": {message}" if message != reason else "")
            event(
                body,
                reason=f"Run{phase}",
                message=f"run {status.get('runId', '')} {phase}: "
                f"{summary['progress']} clients done{told}",
            )
            self._prune_history(body, known)

    def _prune_history(self, body: Body, known: Known) -> None:
        namespace = body["metadata"]["namespace"]
        for name in runs_to_prune(
            known.runs(namespace),
            keep=self._settings.job.history_limit,
            current=body["metadata"]["name"],
        ):
            try:
                self._runs.delete(namespace, name)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise

    def _lock(self, body: Body, stream: int) -> StreamLock:
        return StreamLock(
            self._api,
            namespace=body["metadata"]["namespace"],
            stream=stream,
            holder=holder_identity(dict(body)),
            duration_seconds=self._settings.lease.duration_seconds,
            owner=owner_reference(body),
        )


def _summary(
    body: Body,
    status: Mapping[str, Any],
    spec: RunSpec,
    streams: Mapping[str, Mapping[str, Any]],
    now: datetime.datetime,
) -> dict[str, Any]:
    """The run's summary fields (totals, phase, the Succeeded condition) for these streams."""
    phase = run_phase(
        [s.get("phase", Phase.PENDING) for s in streams.values()],
        suspended=spec.suspend,
        terminated=False,
    )
    condition = succeeded_condition_for(phase)
    generation = body["metadata"].get("generation", 1)
    conditions = set_condition(
        status.get("conditions") or [],
        type=ConditionType.SUCCEEDED,
        status=condition.status,
        reason=condition.reason,
        message=condition.message,
        now=now,
        observed_generation=generation,
    )
    return {
        **summarize({"streams": streams}),
        "phase": phase,
        "conditions": conditions,
        "observedGeneration": generation,
    }


def last_words_seen(namespace: str, stream_status: Mapping[str, Any], known: Known) -> bool:
    """Whether a stream's worker's last words are at hand: its reason in the run, and its
    checkpoint at the version those words name (the two watches are not ordered with each
    other)."""
    if not stream_status.get("workerReason"):
        return False
    version = stream_status.get("workerCheckpoint")
    return (
        not version
        or known.checkpoint_version(namespace, stream_status.get("checkpoint", "")) == version
    )


def _progress(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """A stream's progress in the run's status, from the status of the checkpoint it owns."""
    counts = cycle_counts(checkpoint)
    progress: dict[str, Any] = {
        "clientsDone": counts.done,
        "counts": client_counts(counts.by_state),
        "current": checkpoint.get("current"),
    }
    if counts.total is not None:
        progress["clientsTotal"] = counts.total
    return progress


def _job_created(job: str) -> dict[str, Any]:
    return {"job": job, "phase": Phase.RUNNING, "reason": StreamReason.JOB_CREATED, "message": None}


def _ends_something(status: Mapping[str, Any]) -> bool:
    """A status change that moves a phase (a stream's or the run's), not just progress."""
    return "phase" in status or any(
        "phase" in stream for stream in (status.get("streams") or {}).values()
    )


def post_normal(body: Body, *, reason: str, message: str) -> None:
    """A ``Normal`` Event on the run, whatever kopf's posting level (which keeps kopf's own log
    lines out of Events)."""
    kopf.event(body, type="Normal", reason=reason, message=message)


def _api_error(exc: client.ApiException) -> str:
    """The API server's message of a Status error (e.g. a quota or an admission denial)."""
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return f"{exc.status} {exc.reason}"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
