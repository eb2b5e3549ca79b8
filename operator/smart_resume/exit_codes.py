"""The worker's exit codes; the Job's podFailurePolicy relies on ``EXIT_CONFIGURATION``."""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
"""Something may pass (Airtable unreachable): the Job's backoffLimit allows another pod."""
EXIT_CONFIGURATION: Final = 2
"""Retrying cannot help (bad settings or task registry, Lease not ours): the Job fails at once."""
EXIT_TERMINATED: Final = 143
"""Stopped by SIGTERM (deletion, suspension, deadline), like a shell reports it."""
