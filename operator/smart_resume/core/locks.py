"""PURE decisions about a stream's Lease: may this run take it, renew it, or must it stay away?

A Lease is advisory (Kubernetes does not fence its holders): the decision here is made on a
Lease as read, and the replace that follows carries the read ``resourceVersion``, so when two runs
race for a stale Lease the API server's 409 picks exactly one winner.

Staleness is judged as client-go's leader election judges it: on the observer's own clock. The
``renewTime`` in a Lease was written by another machine's clock and is never compared with ours;
instead ``LeaseObservations`` remembers when this process first saw each Lease record (holder and
resourceVersion) on its monotonic clock, and a record is stale only once it stayed unchanged for
its ``leaseDurationSeconds`` measured here. A restarted observer starts counting afresh, so it
waits a full duration before it takes a Lease over: late, never wrong. The holder's side of the
bargain is its renew deadline (``worker.heartbeat``): it stops working before that can happen.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping
from typing import Any

MICROTIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""Lease timestamps are MicroTime: the API server accepts exactly six fractional digits."""


class LeaseDecision(enum.StrEnum):
    CREATE = "Create"  # no Lease yet: create it
    OURS = "Ours"  # already held by this run (a restarted operator or worker): renew
    TAKE_OVER = "TakeOver"  # held by another run that stopped renewing it: replace it
    HELD = "Held"  # held by another live run (seen renewing): keep away
    WAIT = "Wait"  # held by another run, not yet seen renewing nor stale: look again later


@dataclasses.dataclass(frozen=True)
class LeaseView:
    """The parts of a Lease's spec that the decision needs."""

    holder: str
    renew_time: datetime.datetime | None
    duration_seconds: int
    transitions: int = 0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> LeaseView:
        return cls(
            holder=spec.get("holderIdentity") or "",
            renew_time=_parse_time(spec.get("renewTime") or spec.get("acquireTime")),
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            transitions=int(spec.get("leaseTransitions") or 0),
        )


@dataclasses.dataclass(frozen=True)
class Observation:
    """What the observer knows of a Lease record from its own clock."""

    unchanged_seconds: float
    """How long this record (holder and resourceVersion) has been seen unchanged, locally."""
    seen_renewed: bool
    """Whether the observer has seen this Lease change while held by the same holder."""


class LeaseObservations:
    """When this process first saw each Lease record, on a monotonic clock passed in.

    A changed record shows a live holder only if the observer had looked less than a Lease
    duration before: a change found after a long absence may be the holder's last renewal.
    Bounded: one entry per Lease key, replaced when its record changes.
    """

    def __init__(self) -> None:
        self._seen: dict[str, _Seen] = {}

    def observe(
        self, key: str, *, holder: str, version: str, duration_seconds: float, now: float
    ) -> Observation:
        record = (holder, version)
        previous = self._seen.get(key)
        if previous is not None and previous.record == record:
            self._seen[key] = dataclasses.replace(previous, last_look=now)
            return Observation(now - previous.first_seen, previous.renewed)
        renewed = (
            previous is not None
            and previous.record[0] == holder
            and now - previous.last_look < duration_seconds
        )
        self._seen[key] = _Seen(record, first_seen=now, last_look=now, renewed=renewed)
        return Observation(0.0, renewed)

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)


@dataclasses.dataclass(frozen=True)
class _Seen:
    record: tuple[str, str]
    first_seen: float
    last_look: float
    renewed: bool


def decide(
    lease: LeaseView | None, *, holder: str, observation: Observation | None
) -> LeaseDecision:
    """What to do with a Lease as read; ``observation`` is needed when another run holds it."""
    if lease is None:
        return LeaseDecision.CREATE
    if lease.holder == holder:
        return LeaseDecision.OURS
    if not lease.holder:
        return LeaseDecision.TAKE_OVER
    if observation is None:
        return LeaseDecision.WAIT
    if observation.unchanged_seconds >= lease.duration_seconds:
        return LeaseDecision.TAKE_OVER
    return LeaseDecision.HELD if observation.seen_renewed else LeaseDecision.WAIT


def lease_spec(
    *,
    holder: str,
    now: datetime.datetime,
    duration_seconds: int,
    transitions: int,
    acquired: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The Lease spec a holder writes when it acquires (``acquired`` = now) or renews a Lease."""
    return {
        "holderIdentity": holder,
        "leaseDurationSeconds": duration_seconds,
        "acquireTime": format_microtime(acquired or now),
        "renewTime": format_microtime(now),
        "leaseTransitions": transitions,
    }


def format_microtime(moment: datetime.datetime) -> str:
    """Always six fractional digits, also when ``microsecond == 0`` (isoformat() would drop
    them)."""
    return moment.astimezone(datetime.UTC).strftime(MICROTIME_FORMAT)


def _parse_time(value: Any) -> datetime.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
