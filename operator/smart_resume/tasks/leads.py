"""What the three lead tasks share: selecting leads, writing them back in batches, judging them.

- ``lead_pages``: the client's Leads records that match a formula, with only the fields a task
  reads, one page at a time (a client's memory does not grow with its leads); ``nonempty``
  tells whether there are any; ``is_blank`` builds the one emptiness test those formulas need.
- ``LeadWriter``: buffers updates and sends each 10 as one request (Airtable's maximum), so a
  task that is cut off loses at most one unsent batch; in a dry run it sends nothing.
- ``map_bounded``: runs a function over items on at most N threads and yields results as they
  complete; it stops taking new items once the task is cancelled or a call failed.
- ``judge_leads``: the loop both AI tasks run: prompts out with bounded concurrency, judgements
  counted into the ``TaskOutcome`` and written back, except when the AI gave no answer (an
  outage is not a verdict: the lead stays selected for the next attempt). ``judge`` turns the AI
  endpoint's failures for one lead into a ``Failure`` value, and raises only for failures of the
  whole task.

Deliberately not here: which leads a task selects, which fields it writes (each task module's
pure functions) and any HTTP detail (the adapters in ``integrations``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import itertools
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

from pyairtable.api.types import RecordDict, UpdateRecordDict
from pyairtable.formulas import EQ, LEN, Formula, field_name

from smart_resume.core.clients import Client
from smart_resume.core.errors import ConfigurationError, PermanentError, TransientError
from smart_resume.integrations.ai import SERVICE as AI_SERVICE
from smart_resume.integrations.ai import Prompt
from smart_resume.integrations.airtable_fields import ClientsTable, LeadsTable
from smart_resume.integrations.verdicts import Rejection, Verdict
from smart_resume.tasks.base import TaskContext, TaskOutcome

if TYPE_CHECKING:
    from smart_resume.integrations.ai import ChatClient
    from smart_resume.integrations.airtable import AirtableGateway

__all__ = [
    "MAX_CONSECUTIVE_FAILURES",
    "RECORDS_PER_REQUEST",
    "Failure",
    "Fields",
    "Judgement",
    "Lead",
    "LeadWriter",
    "client_text",
    "count",
    "is_blank",
    "judge",
    "judge_leads",
    "lead_pages",
    "map_bounded",
    "nonempty",
]

Lead: TypeAlias = RecordDict
Fields: TypeAlias = dict[str, Any]

RECORDS_PER_REQUEST: Final = 10
"""Airtable's maximum per create/update request."""
MAX_CONSECUTIVE_FAILURES: Final = 5
"""AI failures in a row after which the endpoint counts as down and the task stops, rather than
marking every remaining lead Failed during an outage."""
PER_LEAD_STATUSES: Final = frozenset({400, 413, 422})
"""AI answers that reject one request (e.g. a prompt too long) rather than the whole task."""
CANCEL_POLL_SECONDS: Final = 0.1
"""How often ``map_bounded`` looks at the cancel event while calls are running."""

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclasses.dataclass(frozen=True)
class Failure:
    """A lead that could not be judged, unlike a ``Rejection`` of an answer the AI did give.

    Codes from ``judge``: ``ai_unavailable`` (429/5xx after the retries) and ``ai_no_answer``
    (timeout or dropped connection), both ``transient``; ``ai_bad_request`` (400/413/422 for
    this lead's prompt). A task may add its own, e.g. post scoring's unreadable posts.
    """

    code: str
    detail: str
    transient: bool = False
    """No answer this time (an outage): not a verdict, so nothing is written for the lead."""


Judgement: TypeAlias = Verdict | Rejection | Failure
"""What one AI call for one lead came to: a score, an unusable answer, or no answer."""


# -- selecting --------------------------------------------------------------------------------


def is_blank(name: str) -> Formula:
    """``LEN({name}&'')=0``: true for an empty field only.

    Airtable's ``{Score}=BLANK()`` is also true for the number 0, which would rescore every lead
    scored 0; concatenating ``''`` turns 0 into "0" first.
    """
    return EQ(LEN(Formula(f"{field_name(name)}&''")), 0)


def lead_pages(
    ctx: TaskContext, formula: Formula, fields: Sequence[str], *, limit: int | None = None
) -> Iterator[list[Lead]]:
    """The client's Leads records matching ``formula``, with only ``fields``, at most ``limit``,
    a page at a time; the next page is read when the previous one has been consumed.

    Raises:
        ConfigurationError: the client has no Airtable base id (raised here, not on iteration).
    """
    if not ctx.client.base_id:
        raise ConfigurationError(
            f"client {ctx.client.client_id}: {ClientsTable.AIRTABLE_BASE_ID!r} is empty"
        )
    airtable: AirtableGateway = ctx.services.airtable
    return airtable.pages(
        ctx.client.base_id, LeadsTable.TABLE, formula=formula, fields=fields, max_records=limit
    )


def nonempty(items: Iterable[_T]) -> Iterator[_T] | None:
    """An iterator over ``items``, or None when there are none (reads only the first item)."""
    remaining = iter(items)
    for first in remaining:
        return itertools.chain((first,), remaining)
    return None


def client_text(client: Client, field: str) -> str:
    """A required text field of the client's master record (e.g. its scoring criteria).

    Raises:
        ConfigurationError: the field is empty; without it no lead can be judged.
    """
    value = str(client.fields.get(field) or "").strip()
    if not value:
        raise ConfigurationError(
            f"client {client.client_id}: {field!r} is empty in the {ClientsTable.TABLE} table"
        )
    return value


# -- writing ----------------------------------------------------------------------------------


class LeadWriter:
    """Updates Leads records of one base, ``RECORDS_PER_REQUEST`` per request; use with ``with``.

    Leaving the block sends what is still buffered, also when the block raised (those leads
    were judged and paid for); a failure of that last send is then logged, not raised over the
    original error.
    """

    def __init__(self, ctx: TaskContext) -> None:
        self._airtable: AirtableGateway | None = None if ctx.dry_run else ctx.services.airtable
        self._base_id = ctx.client.base_id
        self._logger = ctx.logger
        self._pending: list[UpdateRecordDict] = []

    def add(self, record_id: str, fields: Mapping[str, Any]) -> None:
        self._pending.append({"id": record_id, "fields": dict(fields)})
        if len(self._pending) == RECORDS_PER_REQUEST:
            self.flush()

    def flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch and self._airtable is not None:
            self._airtable.batch_update(self._base_id, LeadsTable.TABLE, batch)

    def __enter__(self) -> LeadWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.flush()
            return
        try:
            self.flush()
        except Exception:
            self._logger.exception("could not write the last leads after the task failed")


# -- judging ----------------------------------------------------------------------------------


def map_bounded(
    function: Callable[[_T], _R],
    items: Iterable[_T],
    *,
    concurrency: int,
    cancelled: threading.Event,
    finish_running: bool = True,
) -> Generator[tuple[_T, _R], None, None]:
    """Call ``function`` on each item on at most ``concurrency`` threads; yield in completion order.

    Once ``cancelled`` is set no further item starts. Calls already running then finish and are
    yielded, or, with ``finish_running=False``, are left to end on their own threads unwaited (for
    calls that cannot be interrupted, so that what is done can be written at once). An exception
    from ``function`` also stops further starts; the calls still running are yielded, then the
    first exception is raised. Close the iterator (``contextlib.closing``) when leaving it early.

    Raises:
        ValueError: ``concurrency`` is below 1.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    remaining = iter(items)
    running: dict[concurrent.futures.Future[_R], _T] = {}
    error: BaseException | None = None
    pool = concurrent.futures.ThreadPoolExecutor(concurrency, thread_name_prefix="lead")
    try:
        while True:
            if cancelled.is_set() or error is not None:
                _drop_queued(running)
                if cancelled.is_set() and not finish_running:
                    running = {future: item for future, item in running.items() if future.done()}
            else:
                # Twice the threads are queued, so no thread idles while the caller writes.
                for item in itertools.islice(remaining, 2 * concurrency - len(running)):
                    running[pool.submit(function, item)] = item
            if not running:
                break
            done, _ = concurrent.futures.wait(
                running, timeout=CANCEL_POLL_SECONDS, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in done:
                item = running.pop(future)
                if future.exception() is not None:
                    error = error or future.exception()
                    continue
                yield item, future.result()
        if error is not None:
            raise error
    finally:
        _drop_queued(running)
        pool.shutdown(wait=finish_running or not cancelled.is_set(), cancel_futures=True)


def _drop_queued(running: dict[concurrent.futures.Future[_R], _T]) -> None:
    for future in [future for future in running if future.cancel()]:
        del running[future]


def judge(ai: ChatClient, prompt: Prompt) -> Judgement:
    """Ask the AI endpoint; a failure for this lead alone becomes a ``Failure`` value.

    Raises:
        PermanentError: a failure of the whole endpoint: 401/403/404, or an answer that is not
            JSON (e.g. an HTML sign-in page): every other lead would fail the same way.
    """
    try:
        return ai.judge(prompt)
    except TransientError as exc:
        code = "ai_no_answer" if exc.status is None else "ai_unavailable"
        return Failure(code, str(exc), transient=True)
    except PermanentError as exc:
        if exc.status in PER_LEAD_STATUSES:
            return Failure("ai_bad_request", str(exc))
        raise


def count(outcome: TaskOutcome, judgement: Judgement) -> None:
    """Count one examined lead: a verdict succeeded, a rejection skipped, a failure failed."""
    outcome.examined += 1
    if isinstance(judgement, Verdict):
        outcome.succeeded += 1
    elif isinstance(judgement, Rejection):
        outcome.skip(judgement.code)
    else:
        outcome.failed += 1


def judge_leads(
    ctx: TaskContext,
    prompts: Iterable[tuple[Lead, Prompt]],
    writer: LeadWriter,
    outcome: TaskOutcome,
    *,
    fields_for: Callable[[Lead, Judgement], Fields],
) -> None:
    """Judge each lead's prompt with ``settings.ai.concurrency`` calls in flight; write and count.

    A lead that got no answer (a transient ``Failure``) is counted failed and not written. Once
    ``ctx.cancelled`` is set the calls in flight are not waited for: what was judged is written.

    Raises:
        PermanentError: the AI endpoint refuses the task as a whole (see ``judge``).
        TransientError: ``MAX_CONSECUTIVE_FAILURES`` leads in a row got no answer.
    """
    ai: ChatClient = ctx.services.ai  # built here, not lazily on a pool thread

    def judge_one(job: tuple[Lead, Prompt]) -> Judgement:
        return judge(ai, job[1])

    results = map_bounded(
        judge_one,
        prompts,
        concurrency=ctx.settings.ai.concurrency,
        cancelled=ctx.cancelled,
        finish_running=False,
    )
    failures_in_a_row = 0
    with contextlib.closing(results):
        for (lead, _), judgement in results:
            count(outcome, judgement)
            if not (isinstance(judgement, Failure) and judgement.transient):
                writer.add(lead["id"], fields_for(lead, judgement))
            if isinstance(judgement, Verdict):
                failures_in_a_row = 0
                continue
            ctx.logger.warning(
                "lead %s not judged: %s %s", lead["id"], judgement.code, judgement.detail
            )
            failures_in_a_row = failures_in_a_row + 1 if isinstance(judgement, Failure) else 0
            if failures_in_a_row == MAX_CONSECUTIVE_FAILURES:
                raise TransientError(
                    f"the AI endpoint failed for {failures_in_a_row} leads in a row; "
                    f"last: {judgement.detail}",
                    service=AI_SERVICE,
                )
