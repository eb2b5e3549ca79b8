"""Lead scoring: the AI scores each lead that still needs a score against the client's criteria.

A lead needs a score when its Scoring Status is "To Be Scored", or when the status is blank and
it has no AI Score (a lead scored by hand or by the old system keeps its score). Every judged lead
leaves that set, whatever the outcome, so a rerun or resumed run never asks twice:

- a verdict -> Scored, with AI Score, AI Assessment and Date Scored;
- an unusable answer (refusal, truncation, no JSON, missing or out-of-range score) -> Skipped;
- a request the endpoint rejects for this lead (400/413/422) -> Failed;

the last two with the reason code in Score Reason Code. No answer at all (5xx or 429 after the
retries, a timeout, a dropped connection) is not a verdict: the lead is left as it was and scored
on the next attempt. To retry Skipped or Failed leads, set them back to "To Be Scored".
``leadScoringLimit`` caps the leads selected per run (oldest first).

This module deliberately does not retry a lead within a run (the HTTP retry policy already did),
and does not score leads of other clients: one client, one base, per call.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Final

from pyairtable.formulas import AND, EQ, OR, Field, Formula

from smart_resume.integrations.ai import lead_scoring_prompt
from smart_resume.integrations.airtable_fields import ClientsTable, LeadsTable, ScoringStatus
from smart_resume.integrations.verdicts import Rejection, Verdict
from smart_resume.tasks.base import TaskContext, TaskOutcome
from smart_resume.tasks.leads import (
    Fields,
    Judgement,
    LeadWriter,
    client_text,
    is_blank,
    judge_leads,
    lead_pages,
    nonempty,
)

__all__ = ["PROFILE_FIELDS", "needs_scoring", "run", "scoring_fields"]

PROFILE_FIELDS: Final = (
    LeadsTable.LINKEDIN_PROFILE_URL,
    LeadsTable.FIRST_NAME,
    LeadsTable.LAST_NAME,
    LeadsTable.HEADLINE,
    LeadsTable.JOB_TITLE,
    LeadsTable.COMPANY_NAME,
    LeadsTable.ABOUT,
    LeadsTable.LOCATION,
)
"""What the AI sees of a lead (and all the task reads)."""


def needs_scoring() -> Formula:
    """The leads still to score (see the module docstring)."""
    status = Field(LeadsTable.SCORING_STATUS)
    return OR(
        EQ(status, ScoringStatus.TO_BE_SCORED),
        AND(is_blank(LeadsTable.SCORING_STATUS), is_blank(LeadsTable.AI_SCORE)),
    )


def scoring_fields(judgement: Judgement, *, today: dt.date) -> Fields:
    """The Leads fields to write for one lead's judgement."""
    if isinstance(judgement, Verdict):
        return {
            LeadsTable.SCORING_STATUS: ScoringStatus.SCORED,
            LeadsTable.AI_SCORE: judgement.score,
            LeadsTable.AI_ASSESSMENT: judgement.assessment,
            LeadsTable.SCORE_REASON_CODE: "",
            LeadsTable.DATE_SCORED: today.isoformat(),
        }
    status = ScoringStatus.SKIPPED if isinstance(judgement, Rejection) else ScoringStatus.FAILED
    return {LeadsTable.SCORING_STATUS: status, LeadsTable.SCORE_REASON_CODE: str(judgement.code)}


def run(ctx: TaskContext) -> TaskOutcome:
    """Score the client's leads that need it; see the module docstring."""
    outcome = TaskOutcome()
    if ctx.lead_scoring_limit == 0:
        return outcome
    pages = lead_pages(ctx, needs_scoring(), PROFILE_FIELDS, limit=ctx.lead_scoring_limit)
    leads = nonempty(itertools.chain.from_iterable(pages))
    if leads is None:
        return outcome
    criteria = client_text(ctx.client, ClientsTable.SCORING_CRITERIA)
    prompts = ((lead, lead_scoring_prompt(criteria, lead["fields"])) for lead in leads)
    today = dt.datetime.now(dt.UTC).date()
    with LeadWriter(ctx) as writer:
        judge_leads(
            ctx,
            prompts,
            writer,
            outcome,
            fields_for=lambda _lead, judgement: scoring_fields(judgement, today=today),
        )
    return outcome
