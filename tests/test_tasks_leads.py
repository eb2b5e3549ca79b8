"""The pieces the lead tasks share: formulas, batched writes, bounded concurrency, AI failures."""

from __future__ import annotations

import logging
import threading
import types
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from fakes.fake_airtable import parse_formula
from smart_resume.config import Settings
from smart_resume.core.clients import Client
from smart_resume.core.errors import ConfigurationError, PermanentError, TransientError
from smart_resume.integrations.ai import LEAD_SCHEMA, Prompt
from smart_resume.integrations.airtable_fields import ClientsTable, LeadsTable
from smart_resume.integrations.verdicts import Reason, Rejection, Verdict
from smart_resume.tasks.base import TaskContext, TaskOutcome
from smart_resume.tasks.leads import (
    Failure,
    LeadWriter,
    client_text,
    count,
    is_blank,
    judge,
    map_bounded,
)

pytestmark = pytest.mark.timeout(10)

PROMPT = Prompt("system", "user", LEAD_SCHEMA)
CLIENT = Client(client_id="acme", name="Acme", base_id="appAcme0000000001", stream=1)


class RecordingAirtable:
    """Stands in for the gateway: records each batch_update, optionally failing."""

    def __init__(self, *, fail: bool = False) -> None:
        self.batches: list[list[Mapping[str, Any]]] = []
        self.fail = fail

    def batch_update(self, base_id: str, table: str, updates: Sequence[Mapping[str, Any]]) -> None:
        if self.fail:
            raise TransientError("airtable is down", service="airtable", status=503)
        assert (base_id, table) == (CLIENT.base_id, LeadsTable.TABLE)
        self.batches.append(list(updates))


def context(airtable: RecordingAirtable, *, dry_run: bool = False) -> TaskContext:
    services = types.SimpleNamespace(airtable=airtable)
    return TaskContext(CLIENT, "SR-1", Settings(), services, dry_run=dry_run)


class StubAI:
    """``judge`` returns or raises what it was given."""

    def __init__(self, result: Verdict | Rejection | Exception) -> None:
        self.result = result

    def judge(self, prompt: Prompt) -> Verdict | Rejection:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


# -- formulas -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "blank"),
    [({}, True), ({"AI Score": ""}, True), ({"AI Score": 0}, False), ({"AI Score": 7}, False)],
)
def test_is_blank__true_only_for_an_empty_field(fields: dict[str, Any], blank: bool) -> None:
    """A score of 0 is not blank (Airtable's `=BLANK()` would say it is)."""
    formula = is_blank(LeadsTable.AI_SCORE)
    assert str(formula) == "LEN({AI Score}&'')=0"
    assert parse_formula(str(formula)).matches(fields) is blank


def test_client_text__names_client_and_field_when_empty() -> None:
    """A required client field that is empty is a configuration error naming both."""
    with pytest.raises(ConfigurationError, match=r"acme: 'Scoring Criteria' is empty"):
        client_text(CLIENT, ClientsTable.SCORING_CRITERIA)
    filled = Client("acme", "Acme", "app1", 1, fields={ClientsTable.SCORING_CRITERIA: " CTOs "})
    assert client_text(filled, ClientsTable.SCORING_CRITERIA) == "CTOs"


# -- LeadWriter ---------------------------------------------------------------------------------


def test_lead_writer__sends_ten_records_per_request() -> None:
    """23 updates go out as 10, 10 and, when the block ends, 3."""
    airtable = RecordingAirtable()
    with LeadWriter(context(airtable)) as writer:
        for n in range(23):
            writer.add(f"rec{n:014d}", {LeadsTable.AI_SCORE: n})
        assert [len(batch) for batch in airtable.batches] == [10, 10]
    assert [len(batch) for batch in airtable.batches] == [10, 10, 3]
    assert airtable.batches[2][0] == {"id": f"rec{20:014d}", "fields": {LeadsTable.AI_SCORE: 20}}


def test_lead_writer__dry_run_sends_nothing() -> None:
    """In a dry run the writer accepts updates and sends none."""
    airtable = RecordingAirtable()
    with LeadWriter(context(airtable, dry_run=True)) as writer:
        for n in range(12):
            writer.add(f"rec{n:014d}", {LeadsTable.AI_SCORE: n})
    assert airtable.batches == []


def test_lead_writer__flushes_when_the_block_raises() -> None:
    """Updates buffered before an error are still sent; the error propagates."""
    airtable = RecordingAirtable()
    with pytest.raises(RuntimeError, match="task broke"), LeadWriter(context(airtable)) as writer:
        writer.add("rec00000000000001", {LeadsTable.AI_SCORE: 1})
        raise RuntimeError("task broke")
    assert [len(batch) for batch in airtable.batches] == [1]


def test_lead_writer__last_send_failure_does_not_hide_the_original_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """If the block and the final send both fail, the block's error is raised, the other logged."""
    with (
        caplog.at_level(logging.ERROR),
        pytest.raises(RuntimeError, match="task broke"),
        LeadWriter(context(RecordingAirtable(fail=True))) as writer,
    ):
        writer.add("rec00000000000001", {LeadsTable.AI_SCORE: 1})
        raise RuntimeError("task broke")
    assert "could not write the last leads" in caplog.text


# -- map_bounded --------------------------------------------------------------------------------


def test_map_bounded__yields_every_item_with_its_result() -> None:
    """Every item comes back once, paired with its own result."""
    results = dict(
        map_bounded(lambda n: n * n, range(20), concurrency=3, cancelled=threading.Event())
    )
    assert results == {n: n * n for n in range(20)}


def test_map_bounded__runs_exactly_concurrency_calls_at_once() -> None:
    """Calls run `concurrency` at a time (a barrier of that size opens) and never more."""
    concurrency = 4
    barrier = threading.Barrier(concurrency, timeout=5)
    lock = threading.Lock()
    in_flight = [0, 0]  # now, most

    def call(n: int) -> int:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        barrier.wait()  # breaks (and raises) unless `concurrency` calls run together
        with lock:
            in_flight[0] -= 1
        return n

    done = list(map_bounded(call, range(12), concurrency=concurrency, cancelled=threading.Event()))
    assert len(done) == 12
    assert in_flight[1] == concurrency


def test_map_bounded__starts_nothing_new_once_cancelled() -> None:
    """After cancellation only the item already queued may still start; results are yielded."""
    cancelled = threading.Event()
    called: list[int] = []

    def call(n: int) -> int:
        called.append(n)
        if n == 3:
            cancelled.set()
        return n

    results = [n for n, _ in map_bounded(call, range(50), concurrency=1, cancelled=cancelled)]
    assert set(range(4)) <= set(results) == set(called)
    assert max(called) <= 4


def test_map_bounded__cancelled_before_start_calls_nothing() -> None:
    """A map whose task is already cancelled calls the function for no item."""
    cancelled = threading.Event()
    cancelled.set()
    assert list(map_bounded(lambda n: n, range(5), concurrency=2, cancelled=cancelled)) == []


def test_map_bounded__raises_the_error_of_a_call() -> None:
    """An exception in a call ends the iteration with that exception; later items never start."""
    called: list[int] = []

    def call(n: int) -> int:
        called.append(n)
        if n == 2:
            raise ValueError("bad item")
        return n

    with pytest.raises(ValueError, match="bad item"):
        list(map_bounded(call, range(100), concurrency=2, cancelled=threading.Event()))
    assert max(called) < 10


def test_map_bounded__yields_the_running_calls_before_raising_an_error() -> None:
    """A call that fails stops further starts, but calls already running are still yielded (their
    work was done, e.g. paid for) before the error is raised."""
    release = threading.Event()
    results: list[int] = []

    def call(n: int) -> int:
        if n == 0:
            release.wait(5)
            return n
        release.set()
        raise ValueError("bad item")

    with pytest.raises(ValueError, match="bad item"):
        for n, _ in map_bounded(call, range(2), concurrency=2, cancelled=threading.Event()):
            results.append(n)
    assert results == [0]


def test_map_bounded__can_leave_running_calls_unwaited_once_cancelled() -> None:
    """With finish_running=False, cancellation ends the iteration at once: what is done is
    yielded, a call still running is not waited for."""
    cancelled, release = threading.Event(), threading.Event()

    def call(n: int) -> int:
        if n == 1:
            cancelled.set()
            release.wait(5)  # hangs until the test is over
        return n

    results = map_bounded(call, range(2), concurrency=2, cancelled=cancelled, finish_running=False)
    try:
        assert [n for n, _ in results] == [0]
        assert not release.is_set()
    finally:
        release.set()


def test_map_bounded__rejects_concurrency_below_one() -> None:
    """Concurrency 0 is a programming error, reported before anything runs."""
    with pytest.raises(ValueError, match="at least 1"):
        list(map_bounded(lambda n: n, range(3), concurrency=0, cancelled=threading.Event()))


# -- judge and count ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "transient"),
    [
        (TransientError("read timed out", service="ai"), "ai_no_answer", True),
        (TransientError("HTTP 503", service="ai", status=503), "ai_unavailable", True),
        (TransientError("HTTP 429", service="ai", status=429), "ai_unavailable", True),
        (PermanentError("context too long", service="ai", status=400), "ai_bad_request", False),
    ],
)
def test_judge__failure_for_one_lead_becomes_a_value(
    error: Exception, code: str, transient: bool
) -> None:
    """Timeouts, 5xx/429 after the retries (no answer: transient) and a rejected request (a
    verdict on this prompt) fail only this lead."""
    expected = Failure(code, str(error), transient=transient)
    assert judge(StubAI(error), PROMPT) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [401, 403, 404, 200])
def test_judge__endpoint_failure_is_raised(status: int) -> None:
    """Bad credentials, a wrong URL or a non-JSON page fail the whole task."""
    error = PermanentError(f"HTTP {status}", service="ai", status=status)
    with pytest.raises(PermanentError):
        judge(StubAI(error), PROMPT)  # type: ignore[arg-type]


def test_judge__passes_verdicts_and_rejections_through() -> None:
    """What the parser made of an answer is returned as is."""
    verdict = Verdict(score=80, assessment="Fits.")
    rejection = Rejection(Reason.AI_REFUSAL, "no")
    assert judge(StubAI(verdict), PROMPT) is verdict  # type: ignore[arg-type]
    assert judge(StubAI(rejection), PROMPT) is rejection  # type: ignore[arg-type]


def test_count__sorts_judgements_into_the_outcome() -> None:
    """Verdicts succeed, rejections are skipped by reason, failures fail; all are examined."""
    outcome = TaskOutcome()
    for judgement in (
        Verdict(score=1, assessment=""),
        Verdict(score=2, assessment=""),
        Rejection(Reason.AI_REFUSAL, ""),
        Rejection(Reason.AI_REFUSAL, ""),
        Rejection(Reason.AI_TRUNCATED, ""),
        Failure("ai_no_answer", ""),
    ):
        count(outcome, judgement)
    assert outcome == TaskOutcome(
        examined=6, succeeded=2, failed=1, skipped={"ai_refusal": 2, "ai_truncated": 1}
    )
