"""Every Airtable table name, field name and single-select value the project reads or writes.

This is the one module that spells them; everything else refers to these constants, so a renamed
column in Airtable is a one-line change here. A table is a small class of ``Final`` string
constants: ``TABLE`` is the table's name and every other upper-case constant is one of its
fields (``field_names()`` lists them, e.g. to declare a fake's schema). Single-select values are
``StrEnum`` members, so they compare equal to and serialize as the plain strings Airtable holds.

Tables:
    master base: ``ClientsTable``, ``JobTrackingTable``, ``ClientRunResultsTable``
    each client's base: ``LeadsTable``

This module deliberately holds no I/O and no record mapping, only names (``JobStatus``, the
Job Status options, is defined with the mapping that chooses them, in ``core.records``).
"""

from __future__ import annotations

import dataclasses
import enum
import types
from collections.abc import Mapping
from typing import Final

from smart_resume.core.records import JobStatus

__all__ = [
    "ClientRunResultsTable",
    "ClientStatus",
    "ClientsTable",
    "HarvestStatus",
    "JobStatus",
    "JobTrackingTable",
    "LeadsTable",
    "ScoringStatus",
    "TaskFields",
]


class _Table:
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Every field this table class declares, in declaration order."""
        return tuple(
            value
            for name, value in vars(cls).items()
            if name.isupper() and name != "TABLE" and isinstance(value, str)
        )


class ClientStatus(enum.StrEnum):
    """``Clients.Status``: only Active clients are processed by the scheduled streams."""

    ACTIVE = "Active"
    PAUSED = "Paused"


@dataclasses.dataclass(frozen=True)
class TaskFields:
    """The five master-record fields one task reports into after each client run."""

    job_status: str
    job_id: str
    last_run_date: str
    last_run_time: str
    count_last_run: str
    """How many items the task handled for the client in its last run."""

    @classmethod
    def for_task(cls, label: str, *, count_last_run: str) -> TaskFields:
        return cls(
            job_status=f"{label} Job Status",
            job_id=f"{label} Job ID",
            last_run_date=f"{label} Last Run Date",
            last_run_time=f"{label} Last Run Time",
            count_last_run=count_last_run,
        )

    def names(self) -> tuple[str, ...]:
        return dataclasses.astuple(self)


class ClientsTable(_Table):
    """Master base: one record per agency client (tenant), which the worker of its stream reads.

    The per-task report fields are in ``TASKS``, keyed by the task names of the run spec
    (``core.spec.TASK_ORDER``: ``lead_scoring``, ``post_harvesting``, ``post_scoring``).
    """

    TABLE: Final = "Clients"
    CLIENT_ID: Final = "Client ID"
    CLIENT_NAME: Final = "Client Name"
    STATUS: Final = "Status"
    """Single select, ``ClientStatus``."""
    PROCESSING_STREAM: Final = "Processing Stream"
    """Number: the stream (shard) whose worker processes this client."""
    AIRTABLE_BASE_ID: Final = "Airtable Base ID"
    """The client's own base, where its ``Leads`` table lives."""
    SCORING_CRITERIA: Final = "Scoring Criteria"
    """Long text: what the AI scores each lead against."""
    POST_TOPICS: Final = "Post Topics"
    """Long text: what makes a lead's LinkedIn post relevant."""

    TASKS: Final[Mapping[str, TaskFields]] = types.MappingProxyType(
        {
            "lead_scoring": TaskFields.for_task(
                "Lead Scoring", count_last_run="Leads Scored Last Run"
            ),
            "post_harvesting": TaskFields.for_task(
                "Post Harvesting", count_last_run="Posts Harvested Last Run"
            ),
            "post_scoring": TaskFields.for_task(
                "Post Scoring", count_last_run="Posts Scored Last Run"
            ),
        }
    )

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        task_fields = (name for task in cls.TASKS.values() for name in task.names())
        return (*super().field_names(), *task_fields)


class JobTrackingTable(_Table):
    """Master base: one record per run (key: Run ID) with the run's aggregates.

    Written by the operator only (``controller.records``), always as an upsert on ``RUN_ID``.
    """

    TABLE: Final = "Job Tracking"
    RUN_ID: Final = "Run ID"
    STATUS: Final = "Status"
    """The run's phase (Running, Succeeded, PartiallySucceeded, TimedOut, Failed, ...)."""
    STREAMS: Final = "Streams"
    """Text: the run's stream numbers, e.g. "1, 2"."""
    START_TIME: Final = "Start Time"
    END_TIME: Final = "End Time"
    DURATION: Final = "Duration"
    """Text, e.g. "2.5 minutes"."""
    DURATION_SECONDS: Final = "Duration Seconds"
    CLIENTS_PROCESSED: Final = "Clients Processed"
    CLIENTS_COMPLETED: Final = "Clients Completed"
    CLIENTS_TIMED_OUT: Final = "Clients Timed Out"
    CLIENTS_FAILED: Final = "Clients Failed"
    CLIENTS_QUARANTINED: Final = "Clients Quarantined"
    LEADS_EXAMINED: Final = "Leads Examined"
    LEADS_SCORED: Final = "Leads Scored"
    POSTS_HARVESTED: Final = "Posts Harvested"
    POSTS_SCORED: Final = "Posts Scored"
    SUCCESS_RATE: Final = "Success Rate"
    """Percent, 0-100: clients completed over clients processed (README)."""
    RUN_NAMESPACE: Final = "Run Namespace"
    RUN_NAME: Final = "Run Name"
    NOTES: Final = "Notes"


class ClientRunResultsTable(_Table):
    """Master base: one record per client per run, linked to its Job Tracking record.

    Written by the operator only, always as an upsert on ``RUN_CLIENT_KEY``
    (``SR-261201-003-S1-Cacme-recruiting``: run ID, stream, client ID).
    """

    TABLE: Final = "Client Run Results"
    RUN_CLIENT_KEY: Final = "Run Client Key"
    JOB_TRACKING: Final = "Job Tracking"
    """Link to the run's Job Tracking record (a list of one record id)."""
    RUN_ID: Final = "Run ID"
    CLIENT_ID: Final = "Client ID"
    STREAM: Final = "Stream"
    STATE: Final = "State"
    """The client's state in the cycle: Completed, TimedOut, Failed, Quarantined, Pending."""
    ATTEMPTS: Final = "Attempts"
    TASK_STATES: Final = "Task States"
    """Text, e.g. "lead scoring: Completed; post harvesting: TimedOut"."""
    LEADS_EXAMINED: Final = "Leads Examined"
    LEADS_SCORED: Final = "Leads Scored"
    POSTS_HARVESTED: Final = "Posts Harvested"
    POSTS_SCORED: Final = "Posts Scored"
    LEAD_SCORING_SECONDS: Final = "Lead Scoring Seconds"
    POST_HARVESTING_SECONDS: Final = "Post Harvesting Seconds"
    POST_SCORING_SECONDS: Final = "Post Scoring Seconds"
    DURATION: Final = "Duration"
    """Text: all tasks together, e.g. "42 s"."""
    ERROR: Final = "Error"


class ScoringStatus(enum.StrEnum):
    """``Leads.Scoring Status``: lead scoring selects "To Be Scored" leads only."""

    TO_BE_SCORED = "To Be Scored"
    SCORED = "Scored"
    SKIPPED = "Skipped"
    FAILED = "Failed"


class HarvestStatus(enum.StrEnum):
    """``Leads.Posts Harvest Status``."""

    PENDING = "Pending"
    DONE = "Done"
    FAILED = "Failed"


class LeadsTable(_Table):
    """Client base: one record per LinkedIn lead, with its profile, score and posts."""

    TABLE: Final = "Leads"

    # profile
    LINKEDIN_PROFILE_URL: Final = "LinkedIn Profile URL"
    """The lead's natural key (unique per base)."""
    FIRST_NAME: Final = "First Name"
    LAST_NAME: Final = "Last Name"
    HEADLINE: Final = "Headline"
    JOB_TITLE: Final = "Job Title"
    COMPANY_NAME: Final = "Company Name"
    ABOUT: Final = "About"
    LOCATION: Final = "Location"

    # lead scoring
    SCORING_STATUS: Final = "Scoring Status"
    """Single select, ``ScoringStatus``."""
    AI_SCORE: Final = "AI Score"
    """Number, 0-100."""
    AI_ASSESSMENT: Final = "AI Assessment"
    SCORE_REASON_CODE: Final = "Score Reason Code"
    """Why a lead was skipped or failed (e.g. ``ai_refusal``); empty when scored."""
    DATE_SCORED: Final = "Date Scored"

    # post harvesting
    POSTS_HARVEST_STATUS: Final = "Posts Harvest Status"
    """Single select, ``HarvestStatus``."""
    LAST_POST_CHECK_AT: Final = "Last Post Check At"
    POSTS_JSON: Final = "Posts JSON"
    """Long text: a JSON list of the lead's recent posts."""
    POSTS_HARVESTED_COUNT: Final = "Posts Harvested Count"

    # post scoring
    POSTS_RELEVANCE_STATUS: Final = "Posts Relevance Status"
    POSTS_RELEVANCE_SCORE: Final = "Posts Relevance Score"
    TOP_SCORING_POST: Final = "Top Scoring Post"
    DATE_POSTS_SCORED: Final = "Date Posts Scored"
