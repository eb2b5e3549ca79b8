"""parse_verdict against answers real models give: good ones, and every way one can be unusable."""

from __future__ import annotations

from typing import Any

import pytest

from smart_resume.integrations.verdicts import (
    IntField,
    Reason,
    Rejection,
    Verdict,
    VerdictSchema,
    parse_verdict,
)

GOOD = '{"score": 85, "assessment": "Strong fit."}'


def completion(
    content: Any, *, finish_reason: str | None = "stop", refusal: str | None = None
) -> dict[str, Any]:
    message = {"role": "assistant", "content": content, "refusal": refusal}
    choice = {"index": 0, "finish_reason": finish_reason, "message": message}
    return {"object": "chat.completion", "choices": [choice]}


@pytest.mark.parametrize(
    ("content", "score", "assessment"),
    [
        pytest.param(GOOD, 85, "Strong fit.", id="plain_json"),
        pytest.param(f"```json\n{GOOD}\n```", 85, "Strong fit.", id="json_fence"),
        pytest.param(f"```JSON {GOOD}```", 85, "Strong fit.", id="json_fence_same_line"),
        pytest.param(f"```\n{GOOD}\n```", 85, "Strong fit.", id="plain_fence"),
        pytest.param(
            f"Sure, here you go:\n```json\n{GOOD}\n```\nAnything else?",
            85,
            "Strong fit.",
            id="fence_inside_prose",
        ),
        pytest.param(
            f"Here is my evaluation: {GOOD} Hope this helps!",
            85,
            "Strong fit.",
            id="prose_before_and_after",
        ),
        pytest.param(
            f"{GOOD}\n\nNote: I weighed seniority most.", 85, "Strong fit.", id="prose_after"
        ),
        pytest.param(
            '{"score": 70, "assessment": "Posts about {AI} and } often"}',
            70,
            "Posts about {AI} and } often",
            id="braces_inside_strings",
        ),
        pytest.param(
            'Result: {"score": 70, "assessment": "a } b {"} -- done {really}',
            70,
            "a } b {",
            id="braces_inside_strings_with_prose",
        ),
        pytest.param("\ufeff" + GOOD, 85, "Strong fit.", id="bom"),
        pytest.param("\n  \ufeff " + GOOD + " \n", 85, "Strong fit.", id="whitespace_around_bom"),
        pytest.param('{"score": "85", "assessment": "x"}', 85, "x", id="score_string"),
        pytest.param('{"score": " 85 ", "assessment": "x"}', 85, "x", id="score_string_padded"),
        pytest.param('{"score": 85.0, "assessment": "x"}', 85, "x", id="score_whole_float"),
        pytest.param(
            '{"score": "85.0", "assessment": "x"}', 85, "x", id="score_whole_float_string"
        ),
        pytest.param('{"score": 0, "assessment": "x"}', 0, "x", id="score_low_edge"),
        pytest.param('{"score": 100, "assessment": "x"}', 100, "x", id="score_high_edge"),
        pytest.param('{"score": 40}', 40, "", id="assessment_missing"),
        pytest.param('{"score": 40, "assessment": null}', 40, "", id="assessment_null"),
        pytest.param(
            '{"score": 40, "assessment": "  padded  ", "confidence": "high"}',
            40,
            "padded",
            id="extra_keys_ignored",
        ),
    ],
)
def test_parse_verdict__accepts_usable_answers(content: str, score: int, assessment: str) -> None:
    """A usable answer becomes a Verdict with a whole-number score, however it is wrapped."""
    assert parse_verdict(completion(content)) == Verdict(score=score, assessment=assessment)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(
            completion(None, refusal="I can't help with that."), Reason.AI_REFUSAL, id="refusal"
        ),
        pytest.param(
            completion(GOOD, refusal="I can't help with that."),
            Reason.AI_REFUSAL,
            id="refusal_with_content",
        ),
        pytest.param(completion(None), Reason.AI_REFUSAL, id="null_content"),
        pytest.param(
            completion('{"score": 85, "assess', finish_reason="length"),
            Reason.AI_TRUNCATED,
            id="length_half_json",
        ),
        pytest.param(
            completion(GOOD, finish_reason="length"), Reason.AI_TRUNCATED, id="length_but_parseable"
        ),
        pytest.param(
            completion(None, finish_reason="length"), Reason.AI_TRUNCATED, id="length_no_content"
        ),
        pytest.param(
            completion(None, finish_reason="content_filter"), Reason.AI_BLOCKED, id="content_filter"
        ),
        pytest.param(completion(""), Reason.AI_NO_JSON, id="empty_content"),
        pytest.param(completion("   \n\ufeff "), Reason.AI_NO_JSON, id="only_whitespace_and_bom"),
        pytest.param(
            completion("I'd rate this lead about 7/10."), Reason.AI_NO_JSON, id="garbage_text"
        ),
        pytest.param(completion("```json\n```"), Reason.AI_NO_JSON, id="empty_fence"),
        pytest.param(
            completion("{'score': 85, 'assessment': 'x'}"), Reason.AI_BAD_JSON, id="python_dict"
        ),
        pytest.param(
            completion('{"score": 85, "assessment": "cut'),
            Reason.AI_BAD_JSON,
            id="half_json_with_stop",
        ),
        pytest.param(
            completion('{"score": 10}\n{"score": 90}'), Reason.AI_BAD_JSON, id="two_objects"
        ),
        pytest.param(
            completion('First: {"score": 10} then {"score": 90}.'),
            Reason.AI_BAD_JSON,
            id="two_objects_in_prose",
        ),
        pytest.param(completion('{"score": 101}'), Reason.AI_SCORE_OUT_OF_RANGE, id="score_101"),
        pytest.param(completion('{"score": -1}'), Reason.AI_SCORE_OUT_OF_RANGE, id="score_minus_1"),
        pytest.param(
            completion('{"score": "150"}'), Reason.AI_SCORE_OUT_OF_RANGE, id="score_string_150"
        ),
        pytest.param(
            completion('{"score": null, "assessment": "x"}'),
            Reason.AI_MISSING_SCORE,
            id="score_null",
        ),
        pytest.param(
            completion('{"assessment": "Strong fit."}'), Reason.AI_MISSING_SCORE, id="missing_score"
        ),
        pytest.param(
            completion('{"Score": 85}'), Reason.AI_MISSING_SCORE, id="score_key_capitalised"
        ),
        pytest.param(completion('{"score": 7.5}'), Reason.AI_BAD_SCORE, id="score_fraction"),
        pytest.param(
            completion('{"score": "7.5"}'), Reason.AI_BAD_SCORE, id="score_fraction_string"
        ),
        pytest.param(
            completion('{"score": "85%"}'), Reason.AI_BAD_SCORE, id="score_percent_string"
        ),
        pytest.param(completion('{"score": "high"}'), Reason.AI_BAD_SCORE, id="score_word"),
        pytest.param(completion('{"score": true}'), Reason.AI_BAD_SCORE, id="score_true"),
        pytest.param(completion('{"score": [85]}'), Reason.AI_BAD_SCORE, id="score_list"),
        pytest.param(completion('{"score": NaN}'), Reason.AI_BAD_SCORE, id="score_nan"),
        pytest.param(
            completion('{"score": {"value": 85}}'), Reason.AI_BAD_SCORE, id="score_object"
        ),
        pytest.param(completion('[{"score": 85}]'), Reason.AI_BAD_SHAPE, id="answer_is_list"),
        pytest.param(completion('"85"'), Reason.AI_BAD_SHAPE, id="answer_is_json_string"),
        pytest.param(completion("85"), Reason.AI_BAD_SHAPE, id="answer_is_bare_number"),
        pytest.param(
            completion('{"score": 85, "assessment": ["a", "b"]}'),
            Reason.AI_BAD_SHAPE,
            id="assessment_list",
        ),
        pytest.param(
            completion([{"type": "text", "text": GOOD}]), Reason.AI_BAD_SHAPE, id="content_parts"
        ),
        pytest.param({"choices": []}, Reason.AI_BAD_SHAPE, id="empty_choices"),
        pytest.param({"error": {"message": "overloaded"}}, Reason.AI_BAD_SHAPE, id="no_choices"),
        pytest.param({"choices": {"0": {}}}, Reason.AI_BAD_SHAPE, id="choices_not_list"),
        pytest.param({"choices": ["text"]}, Reason.AI_BAD_SHAPE, id="choice_not_object"),
        pytest.param(
            {"choices": [{"finish_reason": "stop"}]},
            Reason.AI_BAD_SHAPE,
            id="choice_without_message",
        ),
        pytest.param([GOOD], Reason.AI_BAD_SHAPE, id="body_is_list"),
        pytest.param(GOOD, Reason.AI_BAD_SHAPE, id="body_is_string"),
        pytest.param(None, Reason.AI_BAD_SHAPE, id="body_is_none"),
    ],
)
def test_parse_verdict__rejects_unusable_answers_with_a_reason_code(
    body: object, code: Reason
) -> None:
    """An unusable answer becomes a Rejection with its stable reason code, never an exception."""
    result = parse_verdict(body)

    assert isinstance(result, Rejection)
    assert (result.code, str(result.code)) == (code, code.value)
    assert result.detail


def test_parse_verdict__detail_is_bounded_and_on_one_line() -> None:
    """A rejection's detail quotes the answer, but only a short single-line excerpt of it."""
    rambling = "No JSON here.\n" * 500

    result = parse_verdict(completion(rambling))

    assert isinstance(result, Rejection)
    assert "No JSON here." in result.detail
    assert "\n" not in result.detail
    assert len(result.detail) < 200


def test_parse_verdict__score_range_is_a_schema_parameter() -> None:
    """A schema for a 1-10 scale accepts 10 and rejects 0 and 11."""
    schema = VerdictSchema(low=1, high=10)

    assert parse_verdict(completion('{"score": 10}'), schema) == Verdict(score=10, assessment="")
    for score in (0, 11):
        result = parse_verdict(completion(f'{{"score": {score}}}'), schema)
        assert isinstance(result, Rejection)
        assert result.code is Reason.AI_SCORE_OUT_OF_RANGE


def test_parse_verdict__extra_fields_are_coerced_and_returned() -> None:
    """An extra whole-number field in range is returned in extras, coerced like the score."""
    schema = VerdictSchema(extras=(IntField("best_post_index", 1, 3),))
    answer = '{"best_post_index": "2", "score": 64, "assessment": "x"}'

    result = parse_verdict(completion(answer), schema)

    assert result == Verdict(score=64, assessment="x", extras={"best_post_index": 2})


@pytest.mark.parametrize(
    "index",
    [
        pytest.param("null", id="null"),
        pytest.param("0", id="below"),
        pytest.param("4", id="above"),
        pytest.param("1.5", id="fraction"),
        pytest.param(None, id="missing"),
    ],
)
def test_parse_verdict__bad_extra_field_is_a_bad_shape(index: str | None) -> None:
    """A missing, fractional or out-of-range extra field rejects the answer as ai_bad_shape."""
    schema = VerdictSchema(extras=(IntField("best_post_index", 1, 3),))
    pair = f'"best_post_index": {index}, ' if index is not None else ""

    result = parse_verdict(completion(f'{{{pair}"score": 64}}'), schema)

    assert isinstance(result, Rejection)
    assert result.code is Reason.AI_BAD_SHAPE
    assert "best_post_index" in result.detail


_DEEP = 2_000  # beyond the JSON decoder's recursion limit (about 1,000)
_HUGE = "9" * 5000


@pytest.mark.parametrize(
    ("content", "code"),
    [
        pytest.param(f'{{"score": {_HUGE}}}', Reason.AI_BAD_JSON, id="5000-digit-score"),
        pytest.param(f'Here: {{"score": {_HUGE}}}', Reason.AI_BAD_JSON, id="5000-digits-in-prose"),
        pytest.param(f'{{"score": "{_HUGE}"}}', Reason.AI_BAD_SCORE, id="5000-digit-string"),
        pytest.param('{"score": 1e400}', Reason.AI_BAD_SCORE, id="infinite-score"),
        pytest.param("[" * _DEEP, Reason.AI_NO_JSON, id="deep-brackets"),
        pytest.param('{"score": ' + "[" * _DEEP, Reason.AI_BAD_JSON, id="deep-brackets-in-object"),
        pytest.param('{"a":' * _DEEP, Reason.AI_BAD_JSON, id="deep-objects"),
        pytest.param("Sure: " + '{"a":[' * _DEEP, Reason.AI_BAD_JSON, id="deep-in-prose"),
        pytest.param("{" * _DEEP, Reason.AI_BAD_JSON, id="many-open-braces"),
        pytest.param(GOOD + " " * 20_000, Reason.AI_BAD_SHAPE, id="answer-too-long"),
    ],
)
def test_parse_verdict__crafted_answers_are_rejected_not_raised(content: str, code: Reason) -> None:
    """Answers a profile text can steer a model into (huge numbers, deep nesting) get a reason
    code with a bounded detail; the parser never raises."""
    result = parse_verdict(completion(content))

    assert isinstance(result, Rejection)
    assert result.code == code
    assert len(result.detail) <= 200


def test_parse_verdict__deep_garbage_after_the_answer_is_ignored_like_prose() -> None:
    """Unparseable, deeply nested text after a good object is trailing prose, not a crash."""
    result = parse_verdict(completion(GOOD + " " + '{"a":' * _DEEP))

    assert result == Verdict(score=85, assessment="Strong fit.")
