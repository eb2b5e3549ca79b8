"""The spec of a SmartResumeRun as a typed, immutable value.

``RunSpec.from_body`` reads a custom resource body, applies the same defaults as the CRD and
rejects what the CRD rejects, so the operator and the worker behave the same on input the API
server never validated (a unit test, an old object, a CRD installed without its schema). It reads
nothing else: which clients a stream has, and whether a run resumes, are decided elsewhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Final

from smart_resume.core.errors import SmartResumeError

TASK_ORDER: Final = ("lead_scoring", "post_harvesting", "post_scoring")
"""Every task, in the order they always run for a client."""

MAX_STREAM: Final = 64
DEFAULT_CLIENT_TIMEOUT_SECONDS: Final = 600
MAX_CLIENT_TIMEOUT_SECONDS: Final = 86_400
DEFAULT_DEADLINE_SECONDS: Final = 7200
MIN_DEADLINE_SECONDS: Final = 10
MAX_DEADLINE_SECONDS: Final = 604_800
"""A week: far beyond any run, and below the integer sizes every consumer of the number uses."""
MAX_LEAD_SCORING_LIMIT: Final = 1_000_000
DEFAULT_MAX_ATTEMPTS: Final = 3
MAX_ATTEMPTS_LIMIT: Final = 10


class ResumeMode(StrEnum):
    AUTO = "Auto"  # continue the stream's latest unfinished cycle, if any
    FRESH = "Fresh"  # start a new cycle whatever earlier runs left


class InvalidSpecError(SmartResumeError, ValueError):
    """Raised when a run's spec breaks a rule of the CRD schema."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
    streams: tuple[int, ...]
    tasks: tuple[str, ...] = TASK_ORDER
    """Always in ``TASK_ORDER``, whatever order the CR lists them in."""
    clients: tuple[str, ...] | None = None
    """``None``: every active client of each stream; otherwise an ad-hoc run of just these."""
    lead_scoring_limit: int | None = None
    client_timeout_seconds: int = DEFAULT_CLIENT_TIMEOUT_SECONDS
    deadline_seconds: int = DEFAULT_DEADLINE_SECONDS
    """Becomes the stream Jobs' ``activeDeadlineSeconds``."""
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    """Attempts per client per cycle before it is quarantined."""
    resume: ResumeMode = ResumeMode.AUTO
    suspend: bool = False
    dry_run: bool = False

    @property
    def is_ad_hoc(self) -> bool:
        return self.clients is not None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> RunSpec:
        """The spec of the custom resource ``body``, with the CRD's defaults.

        Raises:
            InvalidSpecError: naming every rule the spec breaks.
        """
        spec = body.get("spec") or {}
        problems: list[str] = []
        streams = _unique_list(spec, "streams", int, problems, required=True)
        tasks = _unique_list(spec, "tasks", str, problems, allowed=TASK_ORDER) or TASK_ORDER
        clients = _unique_list(spec, "clients", str, problems)
        result = cls(
            streams=tuple(streams or ()),
            tasks=ordered_tasks(tasks),
            clients=None if clients is None else tuple(clients),
            lead_scoring_limit=_optional_int(
                spec, "leadScoringLimit", problems, minimum=1, maximum=MAX_LEAD_SCORING_LIMIT
            ),
            client_timeout_seconds=_int(
                spec,
                "clientTimeoutSeconds",
                DEFAULT_CLIENT_TIMEOUT_SECONDS,
                problems,
                minimum=1,
                maximum=MAX_CLIENT_TIMEOUT_SECONDS,
            ),
            deadline_seconds=_int(
                spec,
                "deadlineSeconds",
                DEFAULT_DEADLINE_SECONDS,
                problems,
                minimum=MIN_DEADLINE_SECONDS,
                maximum=MAX_DEADLINE_SECONDS,
            ),
            max_attempts=_int(
                spec,
                "maxAttempts",
                DEFAULT_MAX_ATTEMPTS,
                problems,
                minimum=1,
                maximum=MAX_ATTEMPTS_LIMIT,
            ),
            resume=_resume(spec, problems),
            suspend=_bool(spec, "suspend", problems),
            dry_run=_bool(spec, "dryRun", problems),
        )
        problems += _semantic_problems(result)
        if problems:
            raise InvalidSpecError("invalid spec: " + "; ".join(problems))
        return result


def ordered_tasks(tasks: Iterable[str]) -> tuple[str, ...]:
    """``tasks`` in the canonical ``TASK_ORDER``; names outside it are dropped."""
    wanted = set(tasks)
    return tuple(task for task in TASK_ORDER if task in wanted)


def _semantic_problems(spec: RunSpec) -> list[str]:
    problems = [
        f"streams: {stream} must be between 1 and {MAX_STREAM}"
        for stream in spec.streams
        if not 1 <= stream <= MAX_STREAM
    ]
    if spec.clients is not None and not all(spec.clients):
        problems.append("clients: a client ID must not be empty")
    if spec.client_timeout_seconds >= spec.deadline_seconds:
        problems.append("clientTimeoutSeconds must be less than deadlineSeconds")
    return problems


def _unique_list(
    spec: Mapping[str, Any],
    field: str,
    item_type: type,
    problems: list[str],
    *,
    required: bool = False,
    allowed: tuple[str, ...] | None = None,
) -> list[Any] | None:
    value = spec.get(field)
    if value is None:
        if required:
            problems.append(f"{field}: required")
        return None
    if not isinstance(value, list) or not value:
        problems.append(f"{field}: must be a non-empty list")
        return None
    if not all(_is_type(item, item_type) for item in value):
        problems.append(f"{field}: every item must be a {item_type.__name__}")
        return None
    unknown = [item for item in value if allowed is not None and item not in allowed]
    if unknown:
        expected = ", ".join(allowed or ())
        problems.append(f"{field}: unsupported value {unknown[0]!r}, expected one of {expected}")
        return None
    duplicates = sorted({str(item) for item in value if value.count(item) > 1})
    if duplicates:
        problems.append(f"{field}: duplicate value {', '.join(duplicates)}")
    return value


def _int(
    spec: Mapping[str, Any],
    field: str,
    default: int,
    problems: list[str],
    *,
    minimum: int,
    maximum: int,
) -> int:
    value = _optional_int(spec, field, problems, minimum=minimum, maximum=maximum)
    return default if value is None else value


def _optional_int(
    spec: Mapping[str, Any],
    field: str,
    problems: list[str],
    *,
    minimum: int,
    maximum: int,
) -> int | None:
    value = spec.get(field)
    if value is None:
        return None
    if not _is_type(value, int):
        problems.append(f"{field}: must be an integer")
        return None
    if not minimum <= value <= maximum:
        problems.append(f"{field}: {value} must be between {minimum} and {maximum}")
        return None
    return int(value)


def _bool(spec: Mapping[str, Any], field: str, problems: list[str]) -> bool:
    value = spec.get(field, False)
    if not isinstance(value, bool):
        problems.append(f"{field}: must be true or false")
        return False
    return value


def _resume(spec: Mapping[str, Any], problems: list[str]) -> ResumeMode:
    value = spec.get("resume", ResumeMode.AUTO)
    try:
        return ResumeMode(value)
    except ValueError:
        problems.append(f"resume: unsupported value {value!r}, expected Auto or Fresh")
        return ResumeMode.AUTO


def _is_type(value: object, item_type: type) -> bool:
    # bool is an int subclass, but `true` is not a stream number or a timeout.
    return isinstance(value, item_type) and not (item_type is int and isinstance(value, bool))
