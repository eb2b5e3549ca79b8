"""Turn an OpenAI-compatible chat-completions body into a ``Verdict`` or a ``Rejection``.

Every way a model's answer can be unusable (a refusal, a cut-off answer, prose instead of JSON, a
score that is missing, fractional or out of range) becomes a ``Rejection`` with a stable snake_case
reason code that a task counts and reports; no model output raises. Both lead scoring and post
scoring use ``parse_verdict``, each with its own ``VerdictSchema``.

Decisions, so that a score is never guessed:
- a score must be a whole number: ``85``, ``85.0`` and ``"85"`` are accepted, ``7.5`` is rejected
  (a fraction usually means the model used another scale, e.g. 0-10);
- a score outside the schema's range is rejected, not clamped;
- an answer holding two JSON objects is rejected rather than picking one;
- a truncated answer is rejected even when its visible part would parse;
- a crafted answer (a profile text can steer the model) is rejected, never raised: numbers with
  thousands of digits, nesting deeper than the JSON decoder's recursion limit, an answer longer
  than ``MAX_ANSWER_CHARS``.

This module deliberately does no I/O, builds no prompts and knows nothing about HTTP errors
(those are raised by the client before a body exists).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Mapping
from typing import Any, cast

from smart_resume.integrations.http import snippet

__all__ = ["IntField", "Reason", "Rejection", "Verdict", "VerdictSchema", "parse_verdict"]

_DETAIL_CHARS = 120
MAX_ANSWER_CHARS = 20_000
"""A score and a few sentences need a few hundred characters; longer answers are not read."""
_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n?(.*?)```", re.DOTALL | re.IGNORECASE)
_DECODER = json.JSONDecoder()


class Reason(enum.StrEnum):
    """Why an answer was rejected; the values are stable and end up in run status and reports."""

    AI_REFUSAL = "ai_refusal"  # message.refusal set, or no content at all
    AI_TRUNCATED = "ai_truncated"  # finish_reason "length": the JSON was cut off
    AI_BLOCKED = "ai_blocked"  # finish_reason "content_filter"
    AI_NO_JSON = "ai_no_json"  # no JSON object anywhere in the content
    AI_BAD_JSON = "ai_bad_json"  # a "{" that does not start valid JSON, or two JSON objects
    AI_MISSING_SCORE = "ai_missing_score"  # no score key, or score null
    AI_BAD_SCORE = "ai_bad_score"  # score not a whole number (7.5, "high", true, [80])
    AI_SCORE_OUT_OF_RANGE = "ai_score_out_of_range"  # whole number outside the schema's range
    AI_BAD_SHAPE = "ai_bad_shape"  # body or answer not the expected structure


@dataclasses.dataclass(frozen=True)
class IntField:
    """A further whole-number key the answer must carry, e.g. ``best_post_index`` in 1..N."""

    key: str
    low: int
    high: int


@dataclasses.dataclass(frozen=True)
class VerdictSchema:
    """What a usable answer looks like: ``{"score": low..high, "assessment": str, <extras>}``.

    ``assessment`` may be missing (it becomes ``""``): a score without its explanation is still
    a score.
    """

    low: int = 0
    high: int = 100
    extras: tuple[IntField, ...] = ()


@dataclasses.dataclass(frozen=True)
class Verdict:
    score: int
    assessment: str
    extras: Mapping[str, int] = dataclasses.field(default_factory=dict)
    """The schema's extra fields, e.g. ``{"best_post_index": 2}``."""


@dataclasses.dataclass(frozen=True)
class Rejection:
    code: Reason
    detail: str
    """For people: what was wrong, with a bounded excerpt of the answer."""


def parse_verdict(body: object, schema: VerdictSchema = VerdictSchema()) -> Verdict | Rejection:
    r"""Read the first choice of a chat-completions ``body`` against ``schema``.

    Example::

        >>> answer = '```json\n{"score": "85", "assessment": "Fits."}\n```'
        >>> body = {"choices": [{"finish_reason": "stop", "message": {"content": answer}}]}
        >>> parse_verdict(body)
        Verdict(score=85, assessment='Fits.', extras={})
    """
    content = _content(body)
    if isinstance(content, Rejection):
        return content
    answer = _json_object(content)
    if isinstance(answer, Rejection):
        return answer
    return _validate(answer, schema)


def _content(body: object) -> str | Rejection:
    """The first choice's text, or why there is none to read."""
    if not isinstance(body, dict):
        return Rejection(Reason.AI_BAD_SHAPE, f"body is a {type(body).__name__}, not an object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return Rejection(Reason.AI_BAD_SHAPE, f"no choices in body: {_excerpt(body)}")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        return Rejection(Reason.AI_BAD_SHAPE, "first choice has no message object")
    finish_reason = choice.get("finish_reason")
    content = message.get("content")
    if finish_reason == "content_filter":
        return Rejection(Reason.AI_BLOCKED, "the provider's content filter stopped the answer")
    if message.get("refusal"):
        return Rejection(Reason.AI_REFUSAL, f"model refused: {_excerpt(message['refusal'])}")
    if finish_reason == "length":
        # Never repair a cut-off answer: the visible part may parse yet lack what followed.
        detail = f"answer cut off at the token limit: {_excerpt(content)}"
        return Rejection(Reason.AI_TRUNCATED, detail)
    if content is None:
        return Rejection(Reason.AI_REFUSAL, f"no content (finish_reason {finish_reason!r})")
    if not isinstance(content, str):
        return Rejection(Reason.AI_BAD_SHAPE, f"content is a {type(content).__name__}, not text")
    if len(content) > MAX_ANSWER_CHARS:
        detail = f"answer of {len(content)} characters, more than {MAX_ANSWER_CHARS}"
        return Rejection(Reason.AI_BAD_SHAPE, detail)
    return content


def _json_object(content: str) -> dict[str, Any] | Rejection:
    """The one JSON object in ``content``, tolerating a BOM, code fences and prose around it."""
    text = content.strip().lstrip("\ufeff").strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return _scan_for_object(text)
    if not isinstance(value, dict):
        detail = f"answer is a JSON {type(value).__name__}, not an object"
        return Rejection(Reason.AI_BAD_SHAPE, detail)
    return value


def _scan_for_object(text: str) -> dict[str, Any] | Rejection:
    start = text.find("{")
    if start == -1:
        return Rejection(Reason.AI_NO_JSON, f"no JSON object in answer: {_excerpt(text)}")
    try:
        value, end = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError) as exc:
        detail = f"invalid JSON ({_decode_problem(exc)}): {_excerpt(text)}"
        return Rejection(Reason.AI_BAD_JSON, detail)
    if _has_object_from(text, end):
        detail = f"more than one JSON object in answer: {_excerpt(text)}"
        return Rejection(Reason.AI_BAD_JSON, detail)
    return cast("dict[str, Any]", value)  # raw_decode from a "{" can only produce a dict


def _has_object_from(text: str, position: int) -> bool:
    start = text.find("{", position)
    while start != -1:
        try:
            _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            start = text.find("{", start + 1)
        else:
            return True
    return False


def _validate(answer: dict[str, Any], schema: VerdictSchema) -> Verdict | Rejection:
    raw_score = answer.get("score")
    if raw_score is None:
        return Rejection(Reason.AI_MISSING_SCORE, f"no score in answer: {_excerpt(answer)}")
    score = _whole_number(raw_score)
    if score is None:
        detail = f"score {_excerpt(raw_score, quoted=True)} is not a whole number"
        return Rejection(Reason.AI_BAD_SCORE, detail)
    if not schema.low <= score <= schema.high:
        detail = f"score {_excerpt(score)} is outside {schema.low}..{schema.high}"
        return Rejection(Reason.AI_SCORE_OUT_OF_RANGE, detail)
    assessment = answer.get("assessment")
    if assessment is not None and not isinstance(assessment, str):
        detail = f"assessment is a {type(assessment).__name__}, not text"
        return Rejection(Reason.AI_BAD_SHAPE, detail)
    extras: dict[str, int] = {}
    for field in schema.extras:
        raw = answer.get(field.key)
        value = _whole_number(raw)
        if value is None or not field.low <= value <= field.high:
            shown = _excerpt(raw, quoted=True)
            detail = f"{field.key} {shown} is not a whole number in {field.low}..{field.high}"
            return Rejection(Reason.AI_BAD_SHAPE, detail)
        extras[field.key] = value
    return Verdict(score=score, assessment=(assessment or "").strip(), extras=extras)


def _whole_number(value: object) -> int | None:
    """``85``, ``85.0``, ``"85"``, -> 85; ``7.5``, ``"85%"``, ``True``, ``[85]`` -> None."""
    if isinstance(value, bool):  # bool is an int subclass; true is not a score
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = float(value)  # float() ignores surrounding whitespace
        except ValueError:
            return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _decode_problem(exc: ValueError | RecursionError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return "a number too long to read"  # int() refuses more than sys.get_int_max_str_digits()


def _excerpt(value: object, *, quoted: bool = False) -> str:
    """A bounded one-line rendering of ``value``, also for values ``str`` cannot render (ints of
    thousands of digits, structures nested too deeply)."""
    if value is None or value == "":
        return "(empty)" if not quoted else repr(value)
    try:
        text = repr(value) if quoted else str(value)
    except (ValueError, RecursionError):
        return f"(a {type(value).__name__} too large to show)"
    return snippet(text, _DETAIL_CHARS)
