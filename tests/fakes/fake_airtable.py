"""A stateful local Airtable Web API over real HTTP, for tests and the demo.

``FakeAirtable`` serves ``/v0/{baseId}/{table}`` for several bases, each with named tables whose
field names are declared up front, and answers the way Airtable does where the project depends
on it: list with ``pageSize`` (at most 100), ``offset`` pagination over a snapshot of the matching
ids, ``maxRecords``, ``fields[]``, ``sort`` and ``filterByFormula``, also as
``POST .../listRecords``; create (at most 10 records), update by id with PATCH (merge) or PUT
(replace), upsert via ``performUpsert.fieldsToMergeOn`` (several matches fail the request),
delete; empty values ("", [], false, null) left out of returned fields; record ids ``rec`` + 14
characters; Airtable's error shapes (401 wrong token, 403 unknown base or table, 404 unknown
record, 422 ``UNKNOWN_FIELD_NAME`` / ``INVALID_FILTER_BY_FORMULA`` / invalid request) and an
optional 5-requests-per-second-per-base limit answered with 429. A write request is atomic: it
fails as a whole or applies as a whole.

``parse_formula`` is an honest, small formula engine (tokenizer, recursive-descent parser,
evaluator; no ``eval``) for the subset pyairtable's helpers generate and the project uses:
``{Field}``, string literals with backslash escapes, numbers, ``= != < <= > >=``, ``&``,
``AND OR NOT TRUE FALSE BLANK IF LEN FIND DATETIME_PARSE IS_BEFORE IS_AFTER``. Anything else is
a 422 ``INVALID_FILTER_BY_FORMULA``, never a filter that silently matches everything.

Deliberately not modelled: views, field types and typecast (values are stored as sent), linked
record semantics (a link field holds ids, where Airtable formulas would see primary values),
the 30 s lock-out after a 429, ``returnFieldsByFieldId``, comments, webhooks and the metadata API.
Semantics of blanks: a blank equals "" and 0, and any comparison of a blank with a date is false
(write an explicit ``BLANK()`` test instead of relying on Airtable's coercion).
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import datetime as dt
import operator
import random
import re
import string
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from fakes.server import FakeService, Request, Response

__all__ = ["DEFAULT_API_KEY", "FakeAirtable", "FormulaError", "ParsedFormula", "parse_formula"]

DEFAULT_API_KEY: Final = "patFakeAirtable0.fake-token-for-tests"
MAX_PAGE_SIZE: Final = 100
MAX_RECORDS_PER_WRITE: Final = 10
RATE_LIMIT_PER_SECOND: Final = 5
_MAX_MERGE_FIELDS: Final = 3


# == formulas ======================================================================================


class FormulaError(ValueError):
    """Raised for a formula that is malformed or outside the subset this fake evaluates."""


class _CellError(Exception):
    """A valid formula that fails for one record (Airtable's #ERROR!): that record doesn't match."""


@dataclasses.dataclass(frozen=True)
class _Token:
    kind: str
    """One of: field, string, number, name, symbol, end."""
    value: Any
    position: int


_SYMBOLS: Final = ("<=", ">=", "!=", "=", "<", ">", "&", "(", ")", ",")
_COMPARISONS: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_STRING_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r"}
_NUMBER: Final = re.compile(r"-?\d+(?:\.\d+)?")
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif char == "{":
            value, end = _read_field_name(text, i)
            tokens.append(_Token("field", value, i))
            i = end
        elif char in "'\"":
            value, end = _read_string(text, i)
            tokens.append(_Token("string", value, i))
            i = end
        elif (number := _NUMBER.match(text, i)) and (char != "-" or _expects_operand(tokens)):
            literal = number.group()
            tokens.append(_Token("number", float(literal) if "." in literal else int(literal), i))
            i = number.end()
        elif name := _NAME.match(text, i):
            tokens.append(_Token("name", name.group().upper(), i))
            i = name.end()
        elif symbol := next((s for s in _SYMBOLS if text.startswith(s, i)), None):
            tokens.append(_Token("symbol", symbol, i))
            i += len(symbol)
        else:
            raise FormulaError(f"unsupported character {char!r} at position {i}")
    tokens.append(_Token("end", None, len(text)))
    return tokens


def _expects_operand(tokens: Sequence[_Token]) -> bool:
    """A '-' starts a negative number only where an operand may begin (no arithmetic here)."""
    return not tokens or (tokens[-1].kind == "symbol" and tokens[-1].value != ")")


def _read_field_name(text: str, start: int) -> tuple[str, int]:
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        if text.startswith("\\}", i):  # pyairtable.formulas.field_name() escapes "}" this way
            chars.append("}")
            i += 2
        elif text[i] == "}":
            return "".join(chars), i + 1
        else:
            chars.append(text[i])
            i += 1
    raise FormulaError(f"unterminated field reference at position {start}")


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            chars.append(_STRING_ESCAPES.get(text[i + 1], text[i + 1]))
            i += 2
        elif char == quote:
            return "".join(chars), i + 1
        else:
            chars.append(char)
            i += 1
    raise FormulaError(f"unterminated string at position {start}")


# -- values ----------------------------------------------------------------------------------------
# A formula value is None (blank), str, int, float, bool (a number: TRUE() is 1) or an aware
# datetime.


def _from_cell(cell: Any) -> Any:
    if isinstance(cell, list):
        return ", ".join(_as_text(_from_cell(item)) for item in cell)
    if cell is None or isinstance(cell, (str, int, float, bool)):
        return cell
    return str(cell)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return _iso(value)
    return str(value)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _as_datetime(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise _CellError(f"not a date: {value!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise _CellError(f"not a date: {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float))  # bool is an int, as TRUE() is 1 in Airtable


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value != ""
    if _is_number(value):
        return bool(value != 0)
    return value is not None


def _compare(symbol: str, left: Any, right: Any) -> bool:
    if isinstance(left, dt.datetime) or isinstance(right, dt.datetime):
        left, right = _as_datetime(left), _as_datetime(right)
        if left is None or right is None:
            return symbol == "!="
    elif left is None or right is None:
        other = right if left is None else left
        blank: Any = 0 if _is_number(other) else ""
        left, right = (blank if left is None else left), (blank if right is None else right)
    if not (_is_number(left) and _is_number(right)) and not isinstance(left, dt.datetime):
        left, right = _as_text(left), _as_text(right)
    return _COMPARISONS[symbol](left, right)


def _datetime_parse(value: Any) -> dt.datetime:
    parsed = _as_datetime(value)
    if parsed is None:
        raise _CellError("DATETIME_PARSE of a blank")
    return parsed


def _find(needle: Any, haystack: Any, start: Any = 1) -> int:
    return _as_text(haystack).find(_as_text(needle), max(int(start) - 1, 0)) + 1


def _is_before(left: Any, right: Any) -> bool:
    first, second = _as_datetime(left), _as_datetime(right)
    return first is not None and second is not None and first < second


@dataclasses.dataclass(frozen=True)
class _Function:
    min_args: int
    max_args: int | None
    apply: Callable[..., Any]


_FUNCTIONS: Final[Mapping[str, _Function]] = {
    "AND": _Function(1, None, lambda *args: all(_truthy(arg) for arg in args)),
    "OR": _Function(1, None, lambda *args: any(_truthy(arg) for arg in args)),
    "NOT": _Function(1, 1, lambda arg: not _truthy(arg)),
    "TRUE": _Function(0, 0, lambda: True),
    "FALSE": _Function(0, 0, lambda: False),
    "BLANK": _Function(0, 0, lambda: None),
    "IF": _Function(2, 3, lambda test, then, otherwise=None: then if _truthy(test) else otherwise),
    "LEN": _Function(1, 1, lambda text: len(_as_text(text))),
    "FIND": _Function(2, 3, _find),
    "DATETIME_PARSE": _Function(1, 1, _datetime_parse),
    "IS_BEFORE": _Function(2, 2, _is_before),
    "IS_AFTER": _Function(2, 2, lambda left, right: _is_before(right, left)),
}


# -- syntax tree -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Literal:
    value: Any

    def evaluate(self, cells: Mapping[str, Any]) -> Any:
        return self.value

    def field_names(self) -> frozenset[str]:
        return frozenset()


@dataclasses.dataclass(frozen=True)
class _FieldRef:
    name: str

    def evaluate(self, cells: Mapping[str, Any]) -> Any:
        return _from_cell(cells.get(self.name))

    def field_names(self) -> frozenset[str]:
        return frozenset({self.name})


@dataclasses.dataclass(frozen=True)
class _Binary:
    symbol: str
    """A comparison, or ``&`` (text concatenation)."""
    left: _Node
    right: _Node

    def evaluate(self, cells: Mapping[str, Any]) -> Any:
        left, right = self.left.evaluate(cells), self.right.evaluate(cells)
        if self.symbol == "&":
            return _as_text(left) + _as_text(right)
        return _compare(self.symbol, left, right)

    def field_names(self) -> frozenset[str]:
        return self.left.field_names() | self.right.field_names()


@dataclasses.dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[_Node, ...]

    def evaluate(self, cells: Mapping[str, Any]) -> Any:
        return _FUNCTIONS[self.name].apply(*(arg.evaluate(cells) for arg in self.args))

    def field_names(self) -> frozenset[str]:
        return frozenset().union(*(arg.field_names() for arg in self.args))


_Node = _Literal | _FieldRef | _Binary | _Call


class _Parser:
    """Recursive descent; precedence from loose to tight: comparisons, ``&``, operands."""

    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._index = 0

    def parse(self) -> _Node:
        node = self._comparison()
        if (token := self._peek()).kind != "end":
            raise FormulaError(f"unexpected {token.value!r} at position {token.position}")
        return node

    def _peek(self) -> _Token:
        return self._tokens[self._index]

    def _take(self) -> _Token:
        token = self._tokens[self._index]
        self._index += token.kind != "end"
        return token

    def _accept(self, symbol: str) -> bool:
        token = self._peek()
        if token.kind == "symbol" and token.value == symbol:
            self._index += 1
            return True
        return False

    def _expect(self, symbol: str) -> None:
        if not self._accept(symbol):
            token = self._peek()
            found = "the end" if token.kind == "end" else repr(token.value)
            raise FormulaError(
                f"expected {symbol!r} but found {found} at position {token.position}"
            )

    def _comparison(self) -> _Node:
        node = self._concatenation()
        while (token := self._peek()).kind == "symbol" and token.value in _COMPARISONS:
            self._take()
            node = _Binary(token.value, node, self._concatenation())
        return node

    def _concatenation(self) -> _Node:
        node = self._operand()
        while self._accept("&"):
            node = _Binary("&", node, self._operand())
        return node

    def _operand(self) -> _Node:
        token = self._take()
        if token.kind in ("number", "string"):
            return _Literal(token.value)
        if token.kind == "field":
            return _FieldRef(token.value)
        if token.kind == "name":
            return self._call(token)
        if token.kind == "symbol" and token.value == "(":
            node = self._comparison()
            self._expect(")")
            return node
        found = "the end" if token.kind == "end" else repr(token.value)
        raise FormulaError(f"expected a value but found {found} at position {token.position}")

    def _call(self, name: _Token) -> _Call:
        function = _FUNCTIONS.get(name.value)
        if function is None:
            raise FormulaError(f"unsupported function {name.value}() at position {name.position}")
        self._expect("(")
        args: list[_Node] = []
        if not self._accept(")"):
            args.append(self._comparison())
            while self._accept(","):
                args.append(self._comparison())
            self._expect(")")
        too_many = function.max_args is not None and len(args) > function.max_args
        if len(args) < function.min_args or too_many:
            raise FormulaError(f"{name.value}() does not take {len(args)} argument(s)")
        return _Call(name.value, tuple(args))


@dataclasses.dataclass(frozen=True)
class ParsedFormula:
    """A formula ready to evaluate against records' fields."""

    text: str
    field_names: frozenset[str]
    """Every field the formula refers to (the fake rejects unknown ones)."""
    _root: _Node = dataclasses.field(repr=False)

    def matches(self, cells: Mapping[str, Any]) -> bool:
        """Whether a record with these fields passes the filter (an #ERROR! does not)."""
        try:
            return _truthy(self._root.evaluate(cells))
        except _CellError:
            return False


def parse_formula(text: str) -> ParsedFormula:
    """Parse ``text`` (e.g. ``AND({Status}='Active', {Processing Stream}=1)``).

    Raises:
        FormulaError: the formula is malformed or uses something outside the supported subset.
    """
    root = _Parser(_tokenize(text)).parse()
    return ParsedFormula(text, root.field_names(), root)


# == the fake service ==============================================================================


class _ApiError(Exception):
    """An Airtable error answer, raised from deep inside a handler and rendered at the top."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.response = Response.json({"error": {"type": kind, "message": message}}, status)


def _unknown_field(name: str) -> _ApiError:
    return _ApiError(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"')


def _invalid_request(message: str) -> _ApiError:
    return _ApiError(422, "INVALID_REQUEST_UNKNOWN", message)


def _is_empty(value: Any) -> bool:
    return value is None or value is False or value in ("", [])


@dataclasses.dataclass
class _Record:
    id: str
    created_time: str
    fields: dict[str, Any]

    def render(self, only: Iterable[str] | None = None) -> dict[str, Any]:
        wanted = None if only is None else set(only)
        fields = {k: v for k, v in self.fields.items() if wanted is None or k in wanted}
        return {"id": self.id, "createdTime": self.created_time, "fields": copy.deepcopy(fields)}


@dataclasses.dataclass
class _Table:
    field_names: frozenset[str]
    records: dict[str, _Record] = dataclasses.field(default_factory=dict)
    """By id, in creation order."""

    def check_fields(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self.field_names:
                raise _unknown_field(name)

    def record(self, record_id: str) -> _Record:
        if record_id not in self.records:
            raise _ApiError(404, "NOT_FOUND", f"Could not find a record with id {record_id!r}")
        return self.records[record_id]


@dataclasses.dataclass(frozen=True)
class _ListQuery:
    formula: str = ""
    fields: tuple[str, ...] | None = None
    sort: tuple[tuple[str, bool], ...] = ()
    """(field, descending) pairs, most significant first."""
    max_records: int | None = None
    page_size: int = MAX_PAGE_SIZE
    offset: str | None = None


@dataclasses.dataclass(frozen=True)
class _Snapshot:
    """The ids a paginated listing still has to return (Airtable's list iterator)."""

    base_id: str
    table: str
    record_ids: tuple[str, ...]


class FakeAirtable(FakeService):
    """A local Airtable: ``add_table``/``add_records`` to set it up, ``records`` to assert on.

    With ``enforce_rate_limit`` a base that already had ``requests_per_second`` (Airtable's 5)
    requests in the last second answers 429 (``rate_limited_requests`` counts those answers).
    Set-up helpers bypass HTTP and limits.

    Example:
        >>> with FakeAirtable() as fake:
        ...     fake.add_table("appMaster000000000", "Clients", fields=["Client ID", "Status"])
        ...     api = pyairtable.Api(DEFAULT_API_KEY, endpoint_url=fake.url)
    """

    name = "airtable"

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        enforce_rate_limit: bool = False,
        requests_per_second: float = RATE_LIMIT_PER_SECOND,
        latency_seconds: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(latency_seconds=latency_seconds)
        self.api_key = api_key
        self.enforce_rate_limit = enforce_rate_limit
        self.requests_per_second = requests_per_second
        self.rate_limited_requests = 0
        self._bases: dict[str, dict[str, _Table]] = {}
        self._snapshots: dict[str, _Snapshot] = {}
        self._arrivals: dict[str, collections.deque[float]] = {}
        self._random = random.Random(seed)
        self._state_lock = threading.RLock()

    # -- set-up and assertions ------------------------------------------------------------------

    def add_table(self, base_id: str, table: str, *, fields: Iterable[str]) -> None:
        """Create ``table`` (and ``base_id`` if new) with exactly these field names."""
        with self._state_lock:
            self._bases.setdefault(base_id, {})[table] = _Table(frozenset(fields))

    def add_records(
        self, base_id: str, table: str, records: Iterable[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Create records from field mappings, without the 10-per-request limit; returns them."""
        records = list(records)
        with self._state_lock:
            target = self._setup_table(base_id, table)
            try:
                for fields in records:
                    target.check_fields(fields)
            except _ApiError as exc:
                raise ValueError(f"{table}: {exc}") from None
            return [self._create(target, fields).render() for fields in records]

    def records(self, base_id: str, table: str) -> list[dict[str, Any]]:
        """Copies of the table's records as the API returns them, in creation order."""
        with self._state_lock:
            records = self._setup_table(base_id, table).records.values()
            return [record.render() for record in records]

    def _setup_table(self, base_id: str, table: str) -> _Table:
        try:
            return self._bases[base_id][table]
        except KeyError:
            raise KeyError(f"no table {table!r} in base {base_id!r}; add_table() first") from None

    # -- HTTP -----------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        parts = [urllib.parse.unquote(part) for part in request.path.split("/")]
        if len(parts) not in (4, 5) or parts[:2] != ["", "v0"]:
            return _ApiError(404, "NOT_FOUND", "Could not find what you are looking for").response
        base_id, table_name, rest = parts[2], parts[3], parts[4] if len(parts) == 5 else ""
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _ApiError(401, "AUTHENTICATION_REQUIRED", "Authentication required").response
        if self.enforce_rate_limit and self._over_rate_limit(base_id):
            return Response.json(
                {"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded."}]},
                429,
            )
        with self._state_lock:
            try:
                table = self._table(base_id, table_name)
                if request.method == "GET" or (request.method, rest) == ("POST", "listRecords"):
                    return self._read(request, base_id, table_name, table, rest)
                return self._write_atomically(request, table, rest)
            except _ApiError as exc:
                return exc.response

    def _table(self, base_id: str, table: str) -> _Table:
        found = self._bases.get(base_id, {}).get(table)
        if found is None:
            raise _ApiError(
                403,
                "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
                "Invalid permissions, or the requested model was not found. Check that both your "
                "user and your token have the required permissions, and that the model names "
                "and/or ids are correct.",
            )
        return found

    def _over_rate_limit(self, base_id: str) -> bool:
        now = time.monotonic()
        with self._state_lock:
            arrivals = self._arrivals.setdefault(base_id, collections.deque())
            while arrivals and arrivals[0] <= now - 1.0:
                arrivals.popleft()
            if len(arrivals) >= self.requests_per_second:
                self.rate_limited_requests += 1
                return True
            arrivals.append(now)
            return False

    def _read(
        self, request: Request, base_id: str, table_name: str, table: _Table, rest: str
    ) -> Response:
        if request.method == "POST":
            return self._list(base_id, table_name, table, _query_from_body(_body(request)))
        if rest:
            return Response.json(table.record(rest).render())
        return self._list(base_id, table_name, table, _query_from_params(request.query))

    def _write_atomically(self, request: Request, table: _Table, rest: str) -> Response:
        # Writes replace a record's fields dict, never change it in place, so keeping the dicts
        # (not deep copies of the table, slow at 10,000 records) is enough to roll back.
        saved_records = dict(table.records)
        saved_fields = [(record, record.fields) for record in saved_records.values()]
        try:
            return self._write(request, table, rest)
        except _ApiError:
            table.records = saved_records
            for record, fields in saved_fields:
                record.fields = fields
            raise

    def _write(self, request: Request, table: _Table, rest: str) -> Response:
        method = request.method
        if rest:
            if method == "DELETE":
                return Response.json(self._delete(table, [rest])[0])
            if method in ("PATCH", "PUT"):
                fields = _fields_of(_body(request))
                return Response.json(self._update(table, rest, fields, replace=method == "PUT"))
            raise _ApiError(404, "NOT_FOUND", f"{method} is not supported on a record")
        if method == "DELETE":
            ids = [value for key, value in request.query if key == "records[]"]
            return Response.json({"records": self._delete(table, _bounded(ids))})
        body = _body(request)
        if method == "POST":
            if "records" not in body:
                return Response.json(self._create(table, _fields_of(body)).render())
            created = [self._create(table, _fields_of(r)) for r in _bounded(body["records"])]
            return Response.json({"records": [record.render() for record in created]})
        if method in ("PATCH", "PUT"):
            return Response.json(self._update_many(table, body, replace=method == "PUT"))
        raise _ApiError(404, "NOT_FOUND", f"{method} is not supported on a table")

    # -- operations (called with the state lock held) -------------------------------------------

    def _create(self, table: _Table, fields: Mapping[str, Any]) -> _Record:
        table.check_fields(fields)
        record = _Record(
            id="rec" + "".join(self._random.choices(string.ascii_letters + string.digits, k=14)),
            created_time=_iso(dt.datetime.now(dt.UTC)),
            fields={k: copy.deepcopy(v) for k, v in fields.items() if not _is_empty(v)},
        )
        table.records[record.id] = record
        return record

    def _update(
        self, table: _Table, record_id: str, fields: Mapping[str, Any], *, replace: bool
    ) -> dict[str, Any]:
        table.check_fields(fields)
        record = table.record(record_id)
        merged = {} if replace else dict(record.fields)
        merged.update(copy.deepcopy(dict(fields)))
        record.fields = {k: v for k, v in merged.items() if not _is_empty(v)}
        return record.render()

    def _update_many(
        self, table: _Table, body: Mapping[str, Any], *, replace: bool
    ) -> dict[str, Any]:
        records = _bounded(body.get("records"))
        upsert = body.get("performUpsert")
        if upsert is None:
            updated = [
                self._update(table, _id_of(r), _fields_of(r), replace=replace) for r in records
            ]
            return {"records": updated}
        merge_on = upsert.get("fieldsToMergeOn") if isinstance(upsert, Mapping) else None
        if not isinstance(merge_on, list) or not 1 <= len(merge_on) <= _MAX_MERGE_FIELDS:
            raise _invalid_request("performUpsert.fieldsToMergeOn must list 1 to 3 field names")
        table.check_fields(merge_on)
        result: dict[str, list[Any]] = {"records": [], "createdRecords": [], "updatedRecords": []}
        for record in records:
            fields = _fields_of(record)
            record_id = record.get("id") or self._merge_target(table, merge_on, fields)
            if record_id is None:
                rendered = self._create(table, fields).render()
                result["createdRecords"].append(rendered["id"])
            else:
                rendered = self._update(table, record_id, fields, replace=replace)
                result["updatedRecords"].append(rendered["id"])
            result["records"].append(rendered)
        return result

    @staticmethod
    def _merge_target(
        table: _Table, merge_on: Sequence[str], fields: Mapping[str, Any]
    ) -> str | None:
        missing = [name for name in merge_on if name not in fields]
        if missing:
            raise _ApiError(
                422, "INVALID_REQUEST_MISSING_FIELDS", f"fieldsToMergeOn {missing} missing"
            )
        matches = [
            record.id
            for record in table.records.values()
            if all(record.fields.get(name) == fields[name] for name in merge_on)
        ]
        if len(matches) > 1:
            raise _ApiError(
                422,
                "INVALID_RECORDS",
                f"{len(matches)} records match fieldsToMergeOn {list(merge_on)}; at most 1 may",
            )
        return matches[0] if matches else None

    def _delete(self, table: _Table, record_ids: Sequence[str]) -> list[dict[str, Any]]:
        for record_id in record_ids:
            del table.records[table.record(record_id).id]
        return [{"id": record_id, "deleted": True} for record_id in record_ids]

    def _list(self, base_id: str, table_name: str, table: _Table, query: _ListQuery) -> Response:
        if not 1 <= query.page_size <= MAX_PAGE_SIZE:
            raise _invalid_request(f"pageSize must be 1 to {MAX_PAGE_SIZE}")
        if query.offset:
            snapshot = self._snapshots.get(query.offset)
            if snapshot is None or (snapshot.base_id, snapshot.table) != (base_id, table_name):
                raise _ApiError(422, "INVALID_OFFSET_VALUE", f"Invalid offset {query.offset!r}")
            record_ids = snapshot.record_ids
        else:
            record_ids = self._matching_ids(table, query)
        page, remaining = record_ids[: query.page_size], record_ids[query.page_size :]
        # Records deleted since the snapshot was taken are skipped, as Airtable's iterator does.
        found = [table.records[record_id] for record_id in page if record_id in table.records]
        payload: dict[str, Any] = {"records": [record.render(query.fields) for record in found]}
        if remaining:
            token = "itr" + "".join(self._random.choices(string.ascii_letters, k=14))
            offset = f"{token}/{remaining[0]}"
            self._snapshots[offset] = _Snapshot(base_id, table_name, remaining)
            payload["offset"] = offset
        return Response.json(payload)

    @staticmethod
    def _matching_ids(table: _Table, query: _ListQuery) -> tuple[str, ...]:
        table.check_fields(query.fields or ())
        table.check_fields(name for name, _ in query.sort)
        records = list(table.records.values())
        if query.formula.strip():
            formula = _parse_filter(query.formula, table)
            records = [record for record in records if formula.matches(record.fields)]
        for name, descending in reversed(query.sort):
            records.sort(key=lambda record: _sort_key(record.fields.get(name)), reverse=descending)
        if query.max_records is not None:
            records = records[: query.max_records]
        return tuple(record.id for record in records)


def _parse_filter(text: str, table: _Table) -> ParsedFormula:
    try:
        formula = parse_formula(text)
    except FormulaError as exc:
        raise _ApiError(
            422, "INVALID_FILTER_BY_FORMULA", f"The formula for filtering records is invalid: {exc}"
        ) from None
    unknown = sorted(formula.field_names - table.field_names)
    if unknown:
        raise _ApiError(
            422,
            "INVALID_FILTER_BY_FORMULA",
            "The formula for filtering records is invalid: "
            f"Unknown field names: {', '.join(unknown)}",
        )
    return formula


def _sort_key(cell: Any) -> tuple[int, Any]:
    value = _from_cell(cell)
    if value is None:
        return (0, 0)
    if _is_number(value):
        return (1, float(value))
    return (2, _as_text(value))


# -- request decoding ------------------------------------------------------------------------------

_LIST_PARAMS: Final = frozenset({"filterByFormula", "fields[]", "maxRecords", "pageSize", "offset"})
_IGNORED_LIST_PARAMS: Final = frozenset({"cellFormat", "timeZone", "userLocale"})
_SORT_PARAM: Final = re.compile(r"sort\[(\d+)\]\[(field|direction)\]")


def _query_from_params(params: Sequence[tuple[str, str]]) -> _ListQuery:
    single: dict[str, str] = {}
    fields: list[str] = []
    sort: dict[int, dict[str, str]] = {}
    for key, value in params:
        if key == "fields[]":
            fields.append(value)
        elif match := _SORT_PARAM.fullmatch(key):
            sort.setdefault(int(match.group(1)), {})[match.group(2)] = value
        elif key in _LIST_PARAMS:
            single[key] = value
        elif key not in _IGNORED_LIST_PARAMS:
            raise _invalid_request(f"Unsupported list parameter {key!r}")
    return _list_query(
        formula=single.get("filterByFormula", ""),
        fields=fields or None,
        sort=[sort[index] for index in sorted(sort)],
        max_records=single.get("maxRecords"),
        page_size=single.get("pageSize"),
        offset=single.get("offset"),
    )


def _query_from_body(body: Mapping[str, Any]) -> _ListQuery:
    known = {"filterByFormula", "fields", "sort", "maxRecords", "pageSize", "offset"}
    unsupported = set(body) - known - _IGNORED_LIST_PARAMS - {"returnFieldsByFieldId"}
    if unsupported or body.get("returnFieldsByFieldId"):
        raise _invalid_request(f"Unsupported listRecords option(s) {sorted(unsupported)}")
    return _list_query(
        formula=body.get("filterByFormula") or "",
        fields=body.get("fields"),
        sort=body.get("sort") or [],
        max_records=body.get("maxRecords"),
        page_size=body.get("pageSize"),
        offset=body.get("offset"),
    )


def _list_query(
    *,
    formula: str,
    fields: Sequence[str] | None,
    sort: Sequence[Mapping[str, str]],
    max_records: Any,
    page_size: Any,
    offset: str | None,
) -> _ListQuery:
    try:
        return _ListQuery(
            formula=formula,
            fields=None if fields is None else tuple(fields),
            sort=tuple((entry["field"], entry.get("direction", "asc") == "desc") for entry in sort),
            max_records=None if max_records is None else int(max_records),
            page_size=MAX_PAGE_SIZE if page_size is None else int(page_size),
            offset=offset,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _invalid_request(f"Invalid list parameters: {exc!r}") from None


def _body(request: Request) -> Mapping[str, Any]:
    try:
        body = request.json()
    except ValueError:
        raise _ApiError(422, "INVALID_REQUEST_BODY", "The request body is not JSON") from None
    if not isinstance(body, Mapping):
        raise _ApiError(422, "INVALID_REQUEST_BODY", "The request body must be a JSON object")
    return body


def _fields_of(record: Any) -> Mapping[str, Any]:
    fields = record.get("fields") if isinstance(record, Mapping) else None
    if not isinstance(fields, Mapping):
        raise _ApiError(422, "INVALID_REQUEST_MISSING_FIELDS", "Each record needs a fields object")
    return fields


def _id_of(record: Any) -> str:
    record_id = record.get("id") if isinstance(record, Mapping) else None
    if not isinstance(record_id, str):
        raise _ApiError(422, "INVALID_RECORDS", "Each record to update needs an id")
    return record_id


def _bounded(items: Any) -> list[Any]:
    if not isinstance(items, list) or not items:
        raise _ApiError(422, "INVALID_RECORDS", "records must be a non-empty list")
    if len(items) > MAX_RECORDS_PER_WRITE:
        raise _ApiError(
            422,
            "INVALID_RECORDS",
            f"At most {MAX_RECORDS_PER_WRITE} records per request; got {len(items)}",
        )
    return items
