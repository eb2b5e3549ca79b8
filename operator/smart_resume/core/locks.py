"""PURE decisions about a stream's Lease: may this run take it, renew it, or must it stay away?

A Lease is advisory (Kubernetes does not fence its holders): the decision here is made on a
Lease as read, and the replace that follows carries the read ``resourceVersion``, so when two runs
race for a stale Lease the API server's 409 picks exactly one winner.
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
    HELD = "Held"  # held by another live run: keep away


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

    def expires_at(self) -> datetime.datetime | None:
        if self.renew_time is None:
            return None
        return self.renew_time + datetime.timedelta(seconds=self.duration_seconds)

    def is_stale(self, now: datetime.datetime) -> bool:
        """Not renewed within its own ``leaseDurationSeconds`` (the record's, not ours)."""
        expires = self.expires_at()
        return expires is None or now >= expires


def decide(lease: LeaseView | None, *, holder: str, now: datetime.datetime) -> LeaseDecision:
    if lease is None:
        return LeaseDecision.CREATE
    if lease.holder == holder:
        return LeaseDecision.OURS
    if not lease.holder or lease.is_stale(now):
        return LeaseDecision.TAKE_OVER
    return LeaseDecision.HELD


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
