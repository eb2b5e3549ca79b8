"""The ``smart-resume`` command refuses to start on bad configuration, naming the variable."""

from __future__ import annotations

import pytest

from smart_resume.cli import main
from smart_resume.exit_codes import EXIT_CONFIGURATION


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        pytest.param(
            "SMART_RESUME_AI_MODLE",
            "gpt",
            "SMART_RESUME_AI_MODLE is not a known setting",
            id="typo",
        ),
        pytest.param(
            "SMART_RESUME_LEASE_DURATION_SECONDS",
            "5 minutes",
            "SMART_RESUME_LEASE_DURATION_SECONDS='5 minutes' is not a valid int",
            id="unparseable",
        ),
    ],
)
def test_operator__refuses_to_start_on_bad_configuration(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    shown: str,
) -> None:
    """`smart-resume operator` exits with the configuration code before connecting anywhere,
    and says which variable is wrong."""
    monkeypatch.setenv(variable, value)

    assert main(["operator"]) == EXIT_CONFIGURATION

    assert shown in capsys.readouterr().err
