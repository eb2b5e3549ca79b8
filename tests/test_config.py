"""Settings come from SMART_RESUME_* variables, reject bad values at once, and never show
secrets."""

from __future__ import annotations

import pytest

from smart_resume.config import Secret, Settings, forwardable_env, secret_env_names
from smart_resume.core.errors import ConfigurationError


def test_from_env__parses_types_by_field() -> None:
    """Numbers, booleans, tuples and secrets are parsed according to each field's type."""
    settings = Settings.from_env(
        {
            "SMART_RESUME_LEASE_DURATION_SECONDS": "420",
            "SMART_RESUME_AI_CONCURRENCY": "8",
            "SMART_RESUME_EMAIL_SMTP_STARTTLS": "yes",
            "SMART_RESUME_EMAIL_RECIPIENTS": "ops@example.com, lead@example.com",
            "SMART_RESUME_AI_API_KEY": "sk-very-secret",
        }
    )
    assert settings.lease.duration_seconds == 420
    assert settings.ai.concurrency == 8
    assert settings.email.smtp_starttls is True
    assert settings.email.recipients == ("ops@example.com", "lead@example.com")
    assert settings.ai.api_key.reveal() == "sk-very-secret"


def test_from_env__names_every_bad_variable() -> None:
    """All invalid values are reported together, and a bad secret's value is not echoed."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(
            {"SMART_RESUME_LEASE_DURATION_SECONDS": "soon", "SMART_RESUME_AI_CONCURRENCY": "four"}
        )
    message = str(caught.value)
    assert "SMART_RESUME_LEASE_DURATION_SECONDS='soon'" in message
    assert "SMART_RESUME_AI_CONCURRENCY='four'" in message


def test_secret__hidden_in_repr_and_str() -> None:
    """A settings object can be logged: secrets print as ***."""
    settings = Settings.from_env({"SMART_RESUME_AIRTABLE_API_KEY": "patSECRET"})
    assert "patSECRET" not in repr(settings)
    assert "patSECRET" not in str(settings.airtable.api_key)
    assert repr(Secret("")) == "Secret('')"


def test_forwardable_env__hands_on_settings_but_no_secrets() -> None:
    """Workers inherit the operator's non-secret settings; secrets only ever come from the
    Secret."""
    environ = {"SMART_RESUME_AI_MODEL": "m", "SMART_RESUME_AI_API_KEY": "k", "PATH": "/bin"}
    assert forwardable_env(environ) == {"SMART_RESUME_AI_MODEL": "m"}
    assert {
        "SMART_RESUME_AI_API_KEY",
        "SMART_RESUME_AIRTABLE_API_KEY",
        "SMART_RESUME_APIFY_TOKEN",
    } <= set(secret_env_names())


@pytest.mark.parametrize(
    ("interval", "deadline", "duration"),
    [("60", "60", "300"), ("10", "300", "300"), ("10", "400", "300")],
)
def test_from_env__renew_deadline_must_fall_between_interval_and_duration(
    interval: str, deadline: str, duration: str
) -> None:
    """A worker must get a renewal in before its renew deadline, and stop before observers may
    judge its Lease stale: interval < renew deadline < duration, or no start."""
    with pytest.raises(ConfigurationError, match="renew interval < renew deadline < duration"):
        Settings.from_env(
            {
                "SMART_RESUME_LEASE_RENEW_INTERVAL_SECONDS": interval,
                "SMART_RESUME_LEASE_RENEW_DEADLINE_SECONDS": deadline,
                "SMART_RESUME_LEASE_DURATION_SECONDS": duration,
            }
        )
