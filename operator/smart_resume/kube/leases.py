"""One Lease per stream as the stream's lock: acquire (with stale takeover), renew, release.

The decisions are made by ``core.locks``; this module only reads and writes Leases. Every write
carries the ``resourceVersion`` it was decided on, so concurrent runs cannot both win: the loser
gets a 409 Conflict, reads the Lease again and sees the winner as a live holder.

Leases go through the generic object API as plain dicts: the typed client turns MicroTime strings
into datetimes and back with ``isoformat()``, which drops the fraction when the microseconds are
zero, and the API server rejects a MicroTime without exactly six fractional digits.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from smart_resume import resource
from smart_resume.core.locks import (
    LeaseDecision,
    LeaseObservations,
    LeaseView,
    decide,
    lease_spec,
)

_ATTEMPTS = 3
_LEASES = ("coordination.k8s.io", "v1", "leases")


@dataclasses.dataclass(frozen=True)
class Acquisition:
    acquired: bool
    decision: LeaseDecision
    """What was found: Create/Ours/TakeOver when acquired; Held or Wait when another run has
    it."""
    previous: LeaseView | None = None
    """The Lease as found before our write (the stale holder on a takeover, the live one when
    held)."""
    version: str = ""
    """The Lease's resourceVersion after our write, when acquired."""


class StreamLock:
    """The Lease ``smart-resume-stream-<n>`` in a namespace, held on behalf of one run."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        stream: int,
        holder: str,
        duration_seconds: int,
        owner: dict[str, Any] | None = None,
    ) -> None:
        self._objects = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.stream = stream
        self.name = resource.lease_name(stream)
        self.key = f"{namespace}/{self.name}"
        """What ``LeaseObservations`` know this Lease by."""
        self.holder = holder
        self.duration_seconds = duration_seconds
        self._owner = owner
        self.version = ""
        """The Lease's resourceVersion after this object's last write ("" once released)."""

    def acquire(
        self,
        now: datetime.datetime,
        *,
        observations: LeaseObservations,
        monotonic_now: float,
    ) -> Acquisition:
        """Take the Lease for our holder; another run's only once ``observations`` say it is
        stale (unchanged for its duration on this process's monotonic clock)."""
        key = self.key
        for _ in range(_ATTEMPTS):
            current, version = self._read()
            observation = (
                observations.observe(
                    key,
                    holder=current.holder,
                    version=version,
                    duration_seconds=current.duration_seconds,
                    now=monotonic_now,
                )
                if current is not None and current.holder not in ("", self.holder)
                else None
            )
            decision = decide(current, holder=self.holder, observation=observation)
            if decision in (LeaseDecision.HELD, LeaseDecision.WAIT):
                return Acquisition(False, decision, current)
            try:
                if decision is LeaseDecision.CREATE:
                    written = self._create(now)
                elif decision is LeaseDecision.OURS:
                    written = self._replace(
                        version, current, now, acquired=current.renew_time if current else None
                    )
                else:
                    written = self._replace(
                        version,
                        current,
                        now,
                        acquired=now,
                        transitions=(current.transitions + 1) if current else 1,
                    )
            except ApiException as exc:
                if exc.status == 409:  # someone wrote first: decide again on what they wrote
                    continue
                raise
            observations.forget(key)
            return Acquisition(True, decision, current, written)
        current, _ = self._read()
        return Acquisition(False, LeaseDecision.HELD, current)

    def create(self, now: datetime.datetime) -> str | None:
        """Create the Lease for our holder in one request: its resourceVersion; ``None`` when it
        exists already (ours, live or stale: ``acquire`` then reads and decides)."""
        try:
            return self._create(now)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

    def renew(self, now: datetime.datetime) -> bool | None:
        """Renew our hold; ``False`` when another run holds the Lease now, ``None`` when it is
        gone (deleted by the run's delete handler, or by hand to force an unlock): not renewed,
        but nobody else holds it either, so the renew deadline and the cycle's owner fence the
        worker, not the missing Lease itself (a worker about to get SIGTERM still wraps up)."""
        for _ in range(_ATTEMPTS):
            current, version = self._read()
            if current is None:
                return None
            if current.holder != self.holder:
                return False
            try:
                self.version = self._replace(version, current, now, acquired=None)
                return True
            except ApiException as exc:
                if exc.status != 409:
                    raise
        return False

    def release(self, version: str = "") -> bool:
        """Delete the Lease if we hold it; ``True`` when it was ours and is now gone.

        With the ``version`` of our last write, in one request while nobody wrote since (404:
        the worker released it already); it is read and decided on only after a 409.
        """
        deleted = self._delete(version) if version else None
        if deleted is None:
            current, version = self._read()
            if current is None or current.holder != self.holder:
                return False
            deleted = bool(self._delete(version))
        self.version = ""
        return deleted

    def _delete(self, version: str) -> bool | None:
        """Delete the Lease at ``version``: ``True``; ``False`` when gone; ``None`` on a 409."""
        try:
            self._objects.delete_namespaced_custom_object(
                *_LEASES[:2],
                self.namespace,
                _LEASES[2],
                self.name,
                body=client.V1DeleteOptions(
                    preconditions=client.V1Preconditions(resource_version=version)
                ),
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            if exc.status == 409:
                return None
            raise
        return True

    def holder_now(self) -> LeaseView | None:
        return self._read()[0]

    # -- plumbing -----------------------------------------------------------------------------

    def _read(self) -> tuple[LeaseView | None, str]:
        try:
            lease = cast(
                dict[str, Any],
                self._objects.get_namespaced_custom_object(
                    *_LEASES[:2], self.namespace, _LEASES[2], self.name
                ),
            )
        except ApiException as exc:
            if exc.status == 404:
                return None, ""
            raise
        return LeaseView.from_spec(lease.get("spec") or {}), lease["metadata"]["resourceVersion"]

    def _create(self, now: datetime.datetime) -> str:
        """Create the Lease for our holder: its resourceVersion."""
        created = self._objects.create_namespaced_custom_object(
            *_LEASES[:2],
            self.namespace,
            _LEASES[2],
            self._body(
                lease_spec(
                    holder=self.holder,
                    now=now,
                    duration_seconds=self.duration_seconds,
                    transitions=0,
                )
            ),
        )
        return _version(created)

    def _replace(
        self,
        version: str,
        current: LeaseView | None,
        now: datetime.datetime,
        *,
        acquired: datetime.datetime | None,
        transitions: int | None = None,
    ) -> str:
        """Write the Lease for our holder if it is still at ``version``: its new version."""
        spec = lease_spec(
            holder=self.holder,
            now=now,
            duration_seconds=self.duration_seconds,
            transitions=transitions
            if transitions is not None
            else (current.transitions if current else 0),
            acquired=acquired,
        )
        if acquired is None and current is not None:  # a renewal keeps the original acquireTime
            spec.pop("acquireTime")
            return _version(
                self._objects.patch_namespaced_custom_object(
                    *_LEASES[:2],
                    self.namespace,
                    _LEASES[2],
                    self.name,
                    {"metadata": {"resourceVersion": version}, "spec": spec},
                    _content_type="application/merge-patch+json",
                )
            )
        body = self._body(spec)
        body["metadata"]["resourceVersion"] = version
        return _version(
            self._objects.replace_namespaced_custom_object(
                *_LEASES[:2], self.namespace, _LEASES[2], self.name, body
            )
        )

    def _body(self, spec: dict[str, Any]) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self.name,
            "labels": {resource.LABEL_STREAM: str(self.stream)},
        }
        if self._owner:
            metadata["ownerReferences"] = [self._owner]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }


def _version(lease: object) -> str:
    return str(cast(dict[str, Any], lease)["metadata"]["resourceVersion"])
