"""Human-readable run IDs: ``SR-YYMMDD-NNN``, the NNN-th run of that day.

The run ID keys a run's Airtable records (Job Tracking, Client Run Results), so it must be unique;
this module only computes the next free ID from those already taken. Making the choice atomic
(no two runs numbered at once) is the caller's job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Final

PREFIX: Final = "SR"
_RUN_ID = re.compile(rf"^{PREFIX}-(\d{{6}})-(\d{{3,}})$")


def next_run_id(existing_run_ids: Iterable[str], today: date) -> str:
    """The ID after the highest one of ``today`` in ``existing_run_ids``; malformed IDs are ignored.

    >>> next_run_id(["SR-251122-007", "SR-251121-020", "bogus"], date(2025, 11, 22))
    'SR-251122-008'
    """
    day = today.strftime("%y%m%d")
    taken = (_RUN_ID.match(run_id) for run_id in existing_run_ids)
    highest = max((int(m[2]) for m in taken if m and m[1] == day), default=0)
    return f"{PREFIX}-{day}-{highest + 1:03d}"
