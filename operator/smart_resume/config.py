"""Operator and worker configuration: the one place that reads the environment.

Settings are grouped, frozen dataclasses with units in their names. ``Settings.from_env()`` is
called once at start-up (operator or worker) and the result is passed explicitly. Secrets (API
keys, tokens, SMTP passwords) arrive as environment variables that Kubernetes fills from a
Secret; they are held in ``Secret`` values whose ``repr`` never shows the value, so a settings
object can be logged safely.

This module deliberately knows nothing about Kubernetes, kopf or HTTP.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, Final

from smart_resume.core.errors import ConfigurationError

ENV_PREFIX: Final = "SMART_RESUME_"


class Secret(str):
    """A string whose repr and str hide the value; use ``.reveal()`` where it is really needed."""

    def reveal(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return "Secret('***')" if self.reveal() else "Secret('')"

    def __str__(self) -> str:
        return "***" if self.reveal() else ""


@dataclasses.dataclass(frozen=True)
class OperatorSettings:
    metrics_port: int = 9090
    """Port of the operator's Prometheus endpoint (``/metrics``); 0 turns it off."""


@dataclasses.dataclass(frozen=True)
class LeaseSettings:
    duration_seconds: int = 300
    """A Lease not renewed for this long is stale and may be taken over by another run."""
    renew_interval_seconds: int = 60
    """How often the worker renews its stream's Lease (the heartbeat)."""
    renew_deadline_seconds: int = 200
    """A worker that has not renewed its Lease for this long kills its client in flight and
    stops, before observers (waiting ``duration_seconds``) may take the Lease over."""


@dataclasses.dataclass(frozen=True)
class JobSettings:
    image: str = "smart-resume-operator:latest"
    image_pull_policy: str = "IfNotPresent"
    service_account: str = "smart-resume-worker"
    credentials_secret: str = "smart-resume-credentials"
    """Secret whose keys become the worker's credential environment variables."""
    backoff_limit: int = 1
    termination_grace_period_seconds: int = 30
    history_limit: int = 10
    """Finished runs kept per namespace; older ones are pruned (their progress is carried
    forward)."""
    scheduler_name: str = ""
    """The scheduler the worker pods ask for; empty: the cluster's default scheduler."""
    task_plugins: str = ""
    """Comma-separated ``module:function`` hooks that may register extra task implementations."""


@dataclasses.dataclass(frozen=True)
class AirtableSettings:
    api_key: Secret = Secret("")
    endpoint_url: str = "https://api.airtable.com"
    master_base_id: str = ""
    requests_per_second_per_base: float = 5.0
    rate_limit_penalty_seconds: float = 30.0
    timeout_seconds: float = 30.0


@dataclasses.dataclass(frozen=True)
class AISettings:
    api_key: Secret = Secret("")
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    concurrency: int = 8
    """AI calls in flight at once for one client (the per-client throughput lever)."""
    timeout_seconds: float = 60.0


@dataclasses.dataclass(frozen=True)
class ApifySettings:
    token: Secret = Secret("")
    base_url: str = "https://api.apify.com"
    actor_id: str = ""
    max_posts_per_lead: int = 10
    timeout_seconds: float = 330.0


@dataclasses.dataclass(frozen=True)
class EmailSettings:
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: Secret = Secret("")
    smtp_starttls: bool = False
    sendgrid_api_key: Secret = Secret("")
    sendgrid_url: str = "https://api.sendgrid.com"
    sender: str = ""
    recipients: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Settings:
    operator: OperatorSettings = OperatorSettings()
    lease: LeaseSettings = LeaseSettings()
    job: JobSettings = JobSettings()
    airtable: AirtableSettings = AirtableSettings()
    ai: AISettings = AISettings()
    apify: ApifySettings = ApifySettings()
    email: EmailSettings = EmailSettings()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``SMART_RESUME_<GROUP>_<FIELD>`` variables, e.g.
        ``SMART_RESUME_AI_MODEL``.

        Raises:
            ConfigurationError: naming every variable that does not parse, before any work starts.
        """
        env = os.environ if environ is None else environ
        problems: list[str] = []
        groups: dict[str, Any] = {
            group.name: _load_group(group.default, group.name, env, problems)
            for group in dataclasses.fields(cls)
        }
        lease = groups["lease"]
        if not lease.renew_interval_seconds < lease.renew_deadline_seconds < lease.duration_seconds:
            problems.append(
                "SMART_RESUME_LEASE_*: need renew interval < renew deadline < duration, got "
                f"{lease.renew_interval_seconds} / {lease.renew_deadline_seconds} / "
                f"{lease.duration_seconds} seconds"
            )
        if problems:
            raise ConfigurationError("invalid configuration: " + "; ".join(problems))
        return cls(**groups)


def secret_env_names() -> list[str]:
    """The variables that carry secrets; workers get them from the credentials Secret, never
    inline."""
    return [
        env_name(group.name, field.name)
        for group in dataclasses.fields(Settings)
        for field in dataclasses.fields(group.default)  # type: ignore[arg-type]
        if isinstance(getattr(group.default, field.name), Secret)
    ]


def forwardable_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The operator's non-secret ``SMART_RESUME_*`` settings, to hand on to the workers it
    starts."""
    secrets = set(secret_env_names())
    return {
        k: v for k, v in sorted(environ.items()) if k.startswith(ENV_PREFIX) and k not in secrets
    }


def env_name(group: str, field: str) -> str:
    """The environment variable that sets ``group.field``: ``env_name("ai", "model")`` ->
    ``SMART_RESUME_AI_MODEL``."""
    return f"{ENV_PREFIX}{group}_{field}".upper()


def _load_group(default: object, group: str, env: Mapping[str, str], problems: list[str]) -> object:
    values: dict[str, object] = {}
    for field in dataclasses.fields(default):  # type: ignore[arg-type]
        name = env_name(group, field.name)
        if name not in env:
            continue
        raw = env[name]
        current = getattr(default, field.name)
        try:
            values[field.name] = _parse(raw, current)
        except ValueError:
            shown = "***" if isinstance(current, Secret) else repr(raw)
            problems.append(f"{name}={shown} is not a valid {type(current).__name__}")
    return dataclasses.replace(default, **values)  # type: ignore[type-var]


def _parse(raw: str, current: object) -> object:
    if isinstance(current, Secret):
        return Secret(raw)
    if isinstance(current, bool):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(raw)
    if isinstance(current, int):
        return int(raw)
    if isinstance(current, float):
        return float(raw)
    if isinstance(current, tuple):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw
