"""Typed list endpoints: OData-style ``$filter``/``$orderby`` and keyset cursors over Pony queries.

A module declares what its list may filter and sort by in a ``ListSpec``; the gateway validates the
query string into ``ListParams``; ``page`` narrows the (already tenant-scoped) Pony query the
session hands over and returns one page plus an opaque cursor for the next::

    TASKS = ListSpec(
        fields={
            "title": ListField(str, sort=True),
            "priority": ListField(int, sort=True),
            "done": ListField(bool),
            "created": ListField(datetime, sort=True),
            "note": ListField(str, nullable=True),
        },
        default_order="created desc",
        max_limit=config.max_page_size,
    )
    TaskListQuery = TASKS.params_model("TaskListQuery")

    async def list_tasks(call: Call) -> TaskList:
        params = call.query(TaskListQuery)

        def work(session: ScopedSession) -> TaskList:
            found = page(session.query(Task), TASKS, params)
            return TaskList(items=[to_dto(t) for t in found.items], next=found.next_cursor)

        # An invalid $filter, $orderby or cursor raises ListQueryError: the gateway answers 400.
        return await ctx.db.run(call.security, work)

Supported ``$filter`` grammar (operators are lowercase, as in OData)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | primary
    primary    := "(" expr ")" | FIELD OP literal | FUNC "(" FIELD "," STRING ")"
    OP         := eq | ne | gt | ge | lt | le
    FUNC       := contains | startswith | endswith
    literal    := 'text' ('' escapes a quote) | 12 | -3.5 | true | false | null
                | 2024-05-01T12:00:00Z (or a quoted ISO datetime, for datetime fields)

``$orderby`` is ``field [asc|desc], ...``.

Semantics and choices, deliberately documented:

* Safety: user input never becomes SQL or Python text. The parser produces an AST of declared field
  names and typed values; the translation emits a Pony lambda *text* that contains only the
  declared attribute names, operators and generated parameter names (``p0``, ``p1``, ...), and the
  values go in as Pony parameters, i.e. bound SQL parameters (tests check ``get_sql()``). The
  text depends only on the filter's shape, so Pony's translator cache is reused across values.
* Nulls are two-valued, as in OData: ``note eq null`` matches missing notes, ``note ne 'x'``
  matches rows whose note is null, and ``not`` is exact negation. Comparisons on nullable fields
  are guarded (``x is not None and ...``) so SQL's three-valued logic never leaks through ``not``.
  Ordering comparisons and functions never match null.
* Sorting on nullable fields is refused at spec definition time: engines disagree on where NULLs
  sort and a keyset condition over NULLs needs per-engine handling; not worth it.
* String comparison and ``contains``/``startswith``/``endswith`` follow the column's collation,
  i.e. they are engine-dependent: on MariaDB (``utf8mb4_unicode_ci``) they are case-insensitive
  and ``eq`` ignores trailing spaces; SQLite (Pony sets ``case_sensitive_like``) and PostgreSQL
  are case-sensitive. Ordering comparisons (``gt``...) and string sort order follow the collation
  too. We do not normalise: lower() on both sides defeats indexes and SQLite's LOWER() is
  ASCII-only, so it would not be portable either. ``%`` and ``_`` in the function argument match
  literally on every engine (Pony escapes them with ``ESCAPE '!'``).
* Datetimes are naive UTC (Pony stores naive datetimes): an aware literal is converted to UTC, a
  naive one is taken as UTC.
* Cursors are not signed: a forged cursor is only another starting point inside the same
  tenant-scoped, filtered query, with typed values bound as parameters. The fingerprint only
  catches a cursor reused with another filter or order, which would silently skip or repeat rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar, cast

from pony.orm import desc
from pydantic import BaseModel, ConfigDict, Field, create_model

from hyperspot.platform.gateway.problems import FieldError, Problem, ProblemError

E = TypeVar("E")

FieldType = type[str] | type[int] | type[float] | type[bool] | type[datetime]
Direction = Literal["asc", "desc"]
Op = Literal["eq", "ne", "gt", "ge", "lt", "le"]
Func = Literal["contains", "startswith", "endswith"]
Value = str | int | float | bool | datetime | None

FILTER_PARAM = "$filter"
ORDERBY_PARAM = "$orderby"

# Bounds that keep parsing, Pony's translator cache and the generated SQL small.
MAX_FILTER_LENGTH = 2000
MAX_CONDITIONS = 32
MAX_DEPTH = 16
MAX_ORDER_FIELDS = 4
MAX_CURSOR_LENGTH = 2000

_TENANT_ATTRIBUTE = "tenant_id"  # decided by the security context, never by a list query
_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    datetime: "a datetime",
}
_PY_OPS: dict[str, str] = {"eq": "==", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_COMPARISONS = tuple(_PY_OPS)
_FUNCTIONS = ("contains", "startswith", "endswith")


class ListQueryError(ProblemError, ValueError):
    """A list query parameter is invalid; ``param`` names it (``$filter``, ``cursor``, ...)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message

    def to_problem(self) -> Problem:
        """The 400 problem+json the gateway answers (field names as the gateway spells them)."""
        return Problem(
            400,
            str(self),
            kind="validation-error",
            errors=[FieldError(field=f"query.{self.param}", message=self.message)],
        )


# -- declaration ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListField:
    """One attribute a list exposes. ``attr`` is the entity attribute when it differs from the
    public name."""

    type: FieldType
    filter: bool = True
    sort: bool = False
    nullable: bool = False
    attr: str | None = None

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES[self.type]


@dataclass(frozen=True)
class ListSpec:
    """What a list endpoint allows. ``max_limit`` comes from module config; ``tie_breaker`` is a
    unique attribute (under the column's collation) appended to every order to make it total."""

    fields: Mapping[str, ListField]
    default_order: str = ""
    max_limit: int = 100
    default_limit: int = 20
    tie_breaker: str = "id"
    tie_breaker_type: type[str] | type[int] = str
    default_keys: tuple[tuple[str, Direction], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name, spec in self.fields.items():
            for ident in (name, spec.attr or name):
                if not _is_safe_identifier(ident):
                    raise ValueError(f"list field {ident!r} is not a plain identifier")
            if _TENANT_ATTRIBUTE in (name, spec.attr):
                raise ValueError("tenant_id cannot be a list field: the security context scopes it")
            if spec.type not in _TYPE_NAMES:
                raise ValueError(f"list field {name!r} has unsupported type {spec.type!r}")
            if spec.sort and spec.nullable:
                raise ValueError(f"list field {name!r}: nullable fields cannot be sortable")
        if not _is_safe_identifier(self.tie_breaker):
            raise ValueError(f"tie breaker {self.tie_breaker!r} is not a plain identifier")
        if not 1 <= self.default_limit <= self.max_limit:
            raise ValueError("default_limit must be between 1 and max_limit")
        try:
            keys = parse_orderby(self.default_order, self) if self.default_order.strip() else ()
        except ListQueryError as error:
            raise ValueError(f"default_order: {error.message}") from None
        object.__setattr__(self, "default_keys", keys)

    def params_model(self, name: str) -> type[ListParams]:
        """A ``ListParams`` subclass whose ``limit`` bounds show in OpenAPI (name it per module)."""
        model = create_model(
            name,
            __base__=ListParams,
            __doc__=ListParams.__doc__,
            limit=(
                int | None,
                Field(
                    default=None,
                    ge=1,
                    le=self.max_limit,
                    description=f"Page size (default {self.default_limit}).",
                ),
            ),
        )
        return cast(type[ListParams], model)

    def attr(self, name: str) -> str:
        if name == self.tie_breaker and name not in self.fields:
            return name
        return self.fields[name].attr or name


def _is_safe_identifier(name: str) -> bool:
    # Attribute names end up in Pony lambda text: plain identifiers only, no dunders or keywords.
    return (
        name.isidentifier()
        and name.isascii()
        and not name.startswith("_")
        and (not keyword.iskeyword(name))
    )


class ListParams(BaseModel):
    """Query parameters of a list operation."""

    # populate_by_name: Python callers may write ListParams(filter=...); HTTP clients send $filter.
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    filter: str | None = Field(
        default=None,
        alias=FILTER_PARAM,
        max_length=MAX_FILTER_LENGTH,
        description="OData-style filter, e.g. `priority ge 2 and contains(title,'x')`.",
    )
    orderby: str | None = Field(
        default=None,
        alias=ORDERBY_PARAM,
        max_length=200,
        description="Sort order, e.g. `priority desc, title`.",
    )
    limit: int | None = Field(default=None, ge=1, description="Page size.")
    cursor: str | None = Field(
        default=None,
        max_length=MAX_CURSOR_LENGTH,
        description="The `next_cursor` of the previous page, with the same filter and order.",
    )


# -- tokenizer ------------------------------------------------------------------------------------

TokenKind = Literal["name", "string", "number", "datetime", "punct", "end"]


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str  # as written (strings keep their quotes), for messages
    pos: int  # 1-based column, for messages
    value: Any = None


_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})?)?(?![\w.:-])"
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?![\w.:-])")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def tokenize(text: str, param: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "(),":
            tokens.append(Token("punct", ch, i + 1))
            i += 1
            continue
        if ch == "'":
            start, i, chars = i, i + 1, []
            while True:
                if i >= n:
                    raise ListQueryError(
                        param, f"unterminated string starting at position {start + 1}"
                    )
                if text[i] == "'":
                    if i + 1 < n and text[i + 1] == "'":  # '' is an escaped quote
                        chars.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                chars.append(text[i])
                i += 1
            tokens.append(Token("string", text[start:i], start + 1, "".join(chars)))
            continue
        if match := _DATETIME.match(text, i):
            tokens.append(Token("datetime", match.group(), i + 1, match.group()))
            i = match.end()
            continue
        if match := _NUMBER.match(text, i):
            raw = match.group()
            number: int | float = float(raw) if "." in raw else int(raw)
            tokens.append(Token("number", raw, i + 1, number))
            i = match.end()
            continue
        if match := _NAME.match(text, i):
            tokens.append(Token("name", match.group(), i + 1, match.group()))
            i = match.end()
            continue
        if ch.isdigit() or ch == "-":
            raise ListQueryError(param, f"malformed number or datetime at position {i + 1}")
        raise ListQueryError(param, f"unexpected character {ch!r} at position {i + 1}")
    tokens.append(Token("end", "end of input", n + 1))
    return tokens


# -- filter AST and parser ------------------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    field: str
    op: Op
    value: Value


@dataclass(frozen=True)
class FuncCall:
    func: Func
    field: str
    value: str


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class BoolOp:
    op: Literal["and", "or"]
    operands: tuple[Node, ...]


Node = Compare | FuncCall | Not | BoolOp


class _FilterParser:
    def __init__(self, text: str, spec: ListSpec) -> None:
        self.spec = spec
        self.tokens = tokenize(text, FILTER_PARAM)
        self.i = 0
        self.conditions = 0

    def fail(self, message: str) -> ListQueryError:
        return ListQueryError(FILTER_PARAM, message)

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def is_word(self, word: str) -> bool:
        return self.tok.kind == "name" and self.tok.text == word

    def expect_punct(self, ch: str, context: str) -> None:
        if self.tok.kind != "punct" or self.tok.text != ch:
            raise self.fail(
                f"expected '{ch}' {context} at position {self.tok.pos}, got {_shown(self.tok)}"
            )
        self.i += 1

    def parse(self) -> Node:
        node = self.expr(0)
        if self.tok.kind != "end":
            raise self.fail(
                f"expected 'and', 'or' or the end at position {self.tok.pos}, "
                f"got {_shown(self.tok)}"
            )
        return node

    def expr(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self.fail(f"nested too deeply (more than {MAX_DEPTH} levels)")
        operands = [self.and_expr(depth)]
        while self.is_word("or"):
            self.i += 1
            operands.append(self.and_expr(depth))
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def and_expr(self, depth: int) -> Node:
        operands = [self.unary(depth)]
        while self.is_word("and"):
            self.i += 1
            operands.append(self.unary(depth))
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def unary(self, depth: int) -> Node:
        if self.is_word("not"):
            self.i += 1
            return Not(self.unary(depth + 1))
        return self.primary(depth)

    def primary(self, depth: int) -> Node:
        tok = self.tok
        if tok.kind == "punct" and tok.text == "(":
            self.i += 1
            node = self.expr(depth + 1)
            self.expect_punct(")", "to close the parenthesis")
            return node
        if tok.kind != "name" or tok.text in ("and", "or", "not"):
            raise self.fail(f"expected a field name at position {tok.pos}, got {_shown(tok)}")
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise self.fail(f"too many conditions (at most {MAX_CONDITIONS})")
        self.i += 1
        nxt = self.tok
        if tok.text in _FUNCTIONS and nxt.kind == "punct" and nxt.text == "(":
            return self.function(cast(Func, tok.text))
        name, spec = self.field(tok)
        op_tok = self.tok
        if op_tok.kind != "name" or op_tok.text not in _COMPARISONS:
            raise self.fail(
                f"expected an operator (eq, ne, gt, ge, lt, le) after '{name}' at position "
                f"{op_tok.pos}, got {_shown(op_tok)}"
            )
        self.i += 1
        op = cast(Op, op_tok.text)
        value = self.literal(name, spec)
        if value is None and op not in ("eq", "ne"):
            raise self.fail(f"'{name}' can only be compared with null using eq or ne")
        return Compare(name, op, value)

    def function(self, func: Func) -> Node:
        self.i += 1  # "("
        tok = self.tok
        if tok.kind != "name":
            raise self.fail(
                f"{func}() expects a field name at position {tok.pos}, got {_shown(tok)}"
            )
        name, spec = self.field(tok)
        self.i += 1
        if spec.type is not str:
            raise self.fail(f"{func}() needs a string field; '{name}' is {spec.type_name}")
        self.expect_punct(",", f"after the field of {func}()")
        arg = self.tok
        if arg.kind != "string":
            raise self.fail(
                f"{func}() expects a quoted string at position {arg.pos}, got {_shown(arg)}"
            )
        self.i += 1
        self.expect_punct(")", f"to close {func}()")
        return FuncCall(func, name, cast(str, arg.value))

    def field(self, tok: Token) -> tuple[str, ListField]:
        spec = self.spec.fields.get(tok.text)
        if spec is None:
            raise self.fail(f"unknown field '{tok.text}'")
        if not spec.filter:
            raise self.fail(f"cannot filter by '{tok.text}'")
        return tok.text, spec

    def literal(self, name: str, spec: ListField) -> Value:
        tok = self.tok
        if tok.kind == "name" and tok.text == "null":
            self.i += 1
            return None
        value = _coerce(tok, spec.type)
        if value is None:
            if tok.kind == "end":
                raise self.fail(f"'{name}' expects {spec.type_name}, got nothing")
            raise self.fail(f"'{name}' expects {spec.type_name}, got {_shown(tok)}")
        self.i += 1
        return value


def _shown(tok: Token) -> str:
    if tok.kind == "end":
        return "the end of the input"
    return tok.text if tok.kind == "string" else f"'{tok.text}'"


def _coerce(tok: Token, kind: FieldType) -> Value:
    """The token's value as ``kind``, or None when it is not one (null is handled by the caller)."""
    if kind is str:
        return cast(str, tok.value) if tok.kind == "string" else None
    if kind is bool:
        return {"true": True, "false": False}.get(tok.text) if tok.kind == "name" else None
    if kind is int:
        return tok.value if tok.kind == "number" and isinstance(tok.value, int) else None
    if kind is float:
        return float(tok.value) if tok.kind == "number" else None
    if tok.kind in ("datetime", "string"):
        return _parse_datetime(cast(str, tok.value))
    return None


def _parse_datetime(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def parse_filter(text: str, spec: ListSpec) -> Node | None:
    """Parse ``$filter``; None for an empty filter. Raises ``ListQueryError``."""
    if not text.strip():
        return None
    return _FilterParser(text, spec).parse()


def parse_orderby(text: str, spec: ListSpec) -> tuple[tuple[str, Direction], ...]:
    """Parse ``$orderby`` into (field, direction) keys. Raises ``ListQueryError``."""
    tokens = tokenize(text, ORDERBY_PARAM)
    keys: list[tuple[str, Direction]] = []
    i = 0

    def fail(message: str) -> ListQueryError:
        return ListQueryError(ORDERBY_PARAM, message)

    while True:
        tok = tokens[i]
        if tok.kind != "name":
            raise fail(f"expected a field name at position {tok.pos}, got {_shown(tok)}")
        declared = spec.fields.get(tok.text)
        if declared is None and tok.text != spec.tie_breaker:
            raise fail(f"unknown field '{tok.text}'")
        if declared is not None and not declared.sort:
            raise fail(f"cannot sort by '{tok.text}'")
        if any(name == tok.text for name, _ in keys):
            raise fail(f"'{tok.text}' appears more than once")
        i += 1
        direction: Direction = "asc"
        if tokens[i].kind == "name" and tokens[i].text in ("asc", "desc"):
            direction = cast(Direction, tokens[i].text)
            i += 1
        keys.append((tok.text, direction))
        if len(keys) > MAX_ORDER_FIELDS:
            raise fail(f"at most {MAX_ORDER_FIELDS} sort fields")
        if tokens[i].kind == "end":
            return tuple(keys)
        if tokens[i].kind != "punct" or tokens[i].text != ",":
            raise fail(
                f"expected 'asc', 'desc' or ',' at position {tokens[i].pos}, "
                f"got {_shown(tokens[i])}"
            )
        i += 1


# -- translation to Pony --------------------------------------------------------------------------


class _LambdaText:
    """Builds Pony lambda text over ``x``: declared attribute names and ``p<n>`` parameters only."""

    def __init__(self, spec: ListSpec) -> None:
        self.spec = spec
        self.params: dict[str, Any] = {}

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return name

    def node(self, node: Node) -> str:
        if isinstance(node, BoolOp):
            return "(" + f" {node.op} ".join(self.node(o) for o in node.operands) + ")"
        if isinstance(node, Not):
            return f"(not {self.node(node.operand)})"
        spec = self.spec.fields[node.field]
        attr = f"x.{spec.attr or node.field}"
        if isinstance(node, FuncCall):
            p = self.param(node.value)
            test = f"{p} in {attr}" if node.func == "contains" else f"{attr}.{node.func}({p})"
            return f"({attr} is not None and {test})" if spec.nullable else f"({test})"
        if node.value is None:
            return f"({attr} is None)" if node.op == "eq" else f"({attr} is not None)"
        test = f"{attr} {_PY_OPS[node.op]} {self.param(node.value)}"
        if not spec.nullable:
            return f"({test})"
        # Two-valued logic: a null never equals a value, and always differs from one.
        if node.op == "ne":
            return f"({attr} is None or {test})"
        return f"({attr} is not None and {test})"


# -- cursors and paging ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Page(Generic[E]):
    items: list[E]
    next_cursor: str | None


@dataclass(frozen=True)
class ListQuery:
    """A validated list request: filter AST, total order (ending with the tie breaker), limit."""

    spec: ListSpec
    filter: Node | None
    order: tuple[tuple[str, Direction], ...]
    limit: int
    after: tuple[Any, ...] | None

    fingerprint_version: ClassVar[int] = 1

    @property
    def fingerprint(self) -> str:
        return _fingerprint(self.filter, self.order)


def _fingerprint(node: Node | None, order: tuple[tuple[str, Direction], ...]) -> str:
    # repr of the AST is canonical: whitespace or redundant parentheses do not change it.
    data = repr((ListQuery.fingerprint_version, node, order)).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def compile_params(spec: ListSpec, params: ListParams) -> ListQuery:
    """Validate ``params`` against ``spec``. Raises ``ListQueryError``."""
    node = parse_filter(params.filter or "", spec)
    requested = (
        parse_orderby(params.orderby, spec)
        if params.orderby and params.orderby.strip()
        else spec.default_keys
    )
    order: list[tuple[str, Direction]] = []
    for name, direction in requested:
        order.append((name, direction))
        if name == spec.tie_breaker:
            break  # unique: keys after it never matter
    else:
        order.append((spec.tie_breaker, "asc"))
    limit = params.limit if params.limit is not None else spec.default_limit
    if not 1 <= limit <= spec.max_limit:
        raise ListQueryError("limit", f"must be between 1 and {spec.max_limit}")
    query = ListQuery(spec, node, tuple(order), limit, None)
    if params.cursor:
        after = _decode_cursor(params.cursor, query)
        query = ListQuery(spec, node, tuple(order), limit, after)
    return query


def _key_type(spec: ListSpec, name: str) -> type:
    declared = spec.fields.get(name)
    return declared.type if declared is not None else spec.tie_breaker_type


def _encode_cursor(query: ListQuery, row: Any) -> str:
    values = []
    for name, _ in query.order:
        value = getattr(row, query.spec.attr(name))
        values.append(value.isoformat() if isinstance(value, datetime) else value)
    raw = json.dumps({"f": query.fingerprint, "v": values}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, query: ListQuery) -> tuple[Any, ...]:
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ListQueryError("cursor", "not a valid cursor") from None
    if not isinstance(data, dict) or not isinstance(data.get("v"), list):
        raise ListQueryError("cursor", "not a valid cursor")
    if data.get("f") != query.fingerprint:
        raise ListQueryError("cursor", "does not match this query")
    values: list[Any] = data["v"]
    if len(values) != len(query.order):
        raise ListQueryError("cursor", "not a valid cursor")
    decoded = []
    for (name, _), value in zip(query.order, values, strict=True):
        decoded.append(_cursor_value(value, _key_type(query.spec, name)))
    return tuple(decoded)


def _cursor_value(value: Any, kind: type) -> Any:
    ok: bool
    if kind is datetime:
        parsed = _parse_datetime(value) if isinstance(value, str) else None
        if parsed is not None:
            return parsed
        ok = False
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ListQueryError("cursor", "not a valid cursor")
    return value


def _keyset(query: ListQuery, text: _LambdaText) -> str:
    """``(a, id) > (va, vid)`` for mixed directions: OR over i of (keys before i equal, key i
    strictly beyond). Sort keys are never nullable, so plain comparisons are exact."""
    assert query.after is not None
    names = [f"x.{query.spec.attr(name)}" for name, _ in query.order]
    params = [text.param(value) for value in query.after]
    branches = []
    for i, (_, direction) in enumerate(query.order):
        parts = [f"{names[j]} == {params[j]}" for j in range(i)]
        parts.append(f"{names[i]} {'>' if direction == 'asc' else '<'} {params[i]}")
        branches.append("(" + " and ".join(parts) + ")")
    return "(" + " or ".join(branches) + ")"


def apply(query: Any, list_query: ListQuery) -> Any:
    """Narrow a Pony query (never widen it): filter, keyset condition, total order."""
    text = _LambdaText(list_query.spec)
    conditions = []
    if list_query.filter is not None:
        conditions.append(text.node(list_query.filter))
    if list_query.after is not None:
        conditions.append(_keyset(list_query, text))
    if conditions:
        # Values only ever travel in text.params (Pony parameters); no builtins are reachable.
        lambda_text = "lambda x: " + " and ".join(conditions)
        query = query.filter(lambda_text, {"__builtins__": {}}, dict(text.params))
    keys = [
        f"desc(x.{list_query.spec.attr(name)})"
        if direction == "desc"
        else f"x.{list_query.spec.attr(name)}"
        for name, direction in list_query.order
    ]
    # order_by(None) drops any order the caller set: ours must be the total order the cursor uses.
    return query.order_by(None).order_by(
        "lambda x: (" + ", ".join(keys) + ",)", {"__builtins__": {}, "desc": desc}, {}
    )


def page(query: Any, spec: ListSpec, params: ListParams) -> Page[Any]:
    """One page of ``query`` (a Pony query over entities, already tenant-scoped) per ``params``.

    Must run inside the caller's db_session. Raises ``ListQueryError`` for invalid input.
    """
    list_query = compile_params(spec, params)
    rows = list(apply(query, list_query)[: list_query.limit + 1])
    if len(rows) <= list_query.limit:
        return Page(rows, None)
    items = rows[: list_query.limit]
    return Page(items, _encode_cursor(list_query, items[-1]))
