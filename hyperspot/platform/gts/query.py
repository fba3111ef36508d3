"""OP#10 query language (§3.3) and OP#11 attribute selector (§3.4) over a :class:`GtsStore`.

Query: ``<identifier or pattern>[name="value", other=value2]``. The identifier part selects
entities as OP#4 does (a type also selects what derives from it), except that a pattern ending in
``~*`` selects only what is strictly derived from its prefix, as the §10 examples list. An
anonymous instance is selected through its type. Predicates are ANDed; a value ``*`` requires the
attribute to be present and not null, a value that is a GTS wildcard pattern matches identifiers
under it, any other value is compared with the attribute's JSON text (strings unquoted).

Attribute selector: ``<identifier>@path.to[0].field`` reads one value of the entity's document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hyperspot.platform.gts.ids import GtsError, GtsId, GtsIdError, covers
from hyperspot.platform.gts.store import GtsEntity, GtsStore

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_MISSING = object()


class GtsQueryError(GtsError):
    """A query expression or attribute path is malformed."""


@dataclass(frozen=True, slots=True)
class Predicate:
    name: str
    value: str
    # The value as a GTS pattern, when it is one with a wildcard (ABAC-style predicates, §3.5).
    pattern: GtsId | None = None

    def accepts(self, entity: GtsEntity) -> bool:
        actual = _lookup(entity.content, _parse_path(self.name))
        if actual is _MISSING and self.name == "type_id":
            actual = entity.type_id
        if actual is _MISSING:
            return False
        if self.value == "*":
            return actual is not None
        if self.pattern is not None:
            if not isinstance(actual, str):
                return False
            try:
                return covers(self.pattern, GtsId.parse(actual, allow_wildcard=True))
            except GtsIdError:
                return False
        return _as_text(actual) == self.value


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query expression."""

    expr: str
    target: GtsId
    predicates: tuple[Predicate, ...]

    @property
    def derived_only(self) -> bool:
        return self.target.id.endswith("~*")

    def selects(self, entity: GtsEntity) -> bool:
        key = _entity_key(entity)
        if key is None or not covers(self.target, key):
            return False
        # "X~*" lists what derives from X, not X itself (§10 examples, OP#10 conformance).
        if self.derived_only and _depth(key) < len(self.target.segments):
            return False
        return all(predicate.accepts(entity) for predicate in self.predicates)


def _depth(key: GtsId) -> int:
    return len(key.segments) + (1 if key.uuid_tail is not None else 0)


def _entity_key(entity: GtsEntity) -> GtsId | None:
    """The identifier a query matches an entity by; anonymous instances go by their type."""
    parsed = entity.gts_id
    if parsed is not None:
        return parsed
    if entity.is_type or entity.type_id is None:
        return None
    try:
        type_id = GtsId.parse(entity.type_id)
    except GtsIdError:
        return None
    # The opaque id plays the part of a combined anonymous instance's UUID tail.
    return GtsId(id=type_id.id + entity.id, segments=type_id.segments, uuid_tail=entity.id)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


_PREDICATE_RE = re.compile(
    r"""\s*([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*|\[\d+\])*)\s*=\s*"""
    r"""(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([^,"'\s][^,]*?))\s*(?:,|$)"""
)


def _parse_predicates(text: str) -> tuple[Predicate, ...]:
    predicates: list[Predicate] = []
    position = 0
    stripped = text.strip()
    if not stripped:
        raise GtsQueryError("Invalid query: empty predicate list '[]'")
    while position < len(stripped):
        match = _PREDICATE_RE.match(stripped, position)
        if match is None:
            raise GtsQueryError(
                f"Invalid query: bad predicate near {stripped[position : position + 40]!r}"
            )
        name, double, single, bare = match.groups()
        raw = double if double is not None else single if single is not None else bare
        value = re.sub(r"\\(.)", r"\1", raw) if double is not None or single is not None else raw
        pattern = None
        if value != "*" and "*" in value and value.startswith("gts."):
            try:
                pattern = GtsId.parse(value, allow_wildcard=True)
            except GtsIdError as exc:
                raise GtsQueryError(f"Invalid query: predicate {name}: {exc}") from exc
        predicates.append(Predicate(name=name, value=value, pattern=pattern))
        position = match.end()
        if stripped[position - 1 : position] == "," and position >= len(stripped):
            raise GtsQueryError("Invalid query: trailing ',' in predicate list")
    return tuple(predicates)


def parse_query(expr: str) -> Query:
    """Parse ``pattern[predicates]``; raises :class:`GtsQueryError` ('Invalid query: ...')."""
    if not isinstance(expr, str) or not expr.strip():
        raise GtsQueryError("Invalid query: empty expression")
    text = expr.strip()
    if "@" in text:
        raise GtsQueryError("Invalid query: the attribute selector '@' is not allowed in a query")
    base, bracket, rest = text.partition("[")
    predicates: tuple[Predicate, ...] = ()
    if bracket:
        if not rest.endswith("]"):
            raise GtsQueryError("Invalid query: predicate list must end with ']'")
        predicates = _parse_predicates(rest[:-1])
    try:
        target = GtsId.parse(base.strip(), allow_wildcard=True)
    except GtsIdError as exc:
        raise GtsQueryError(f"Invalid query: {exc}") from exc
    return Query(expr=expr, target=target, predicates=predicates)


def select(store: GtsStore, expr: str, limit: int | None = None) -> list[GtsEntity]:
    """Entities selected by a query expression, in registration order; raises GtsQueryError."""
    parsed = parse_query(expr)
    found: list[GtsEntity] = []
    for entity in store.entities():
        if parsed.selects(entity):
            found.append(entity)
            if limit is not None and len(found) >= limit:
                break
    return found


def query(store: GtsStore, expr: str, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """OP#10 body: ``{"error": "", "count", "limit", "results": [documents]}``.

    A malformed expression gives ``error`` starting with "Invalid query" and no results; a
    ``limit`` outside 1..1000 raises :class:`GtsError`.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise GtsError(f"query limit must be an integer in 1..{MAX_LIMIT}, got {limit!r}")
    try:
        found = select(store, expr, limit)
    except GtsQueryError as exc:
        return {"error": str(exc), "count": 0, "limit": limit, "results": []}
    results = [entity.content for entity in found]
    return {"error": "", "count": len(results), "limit": limit, "results": results}


# --- OP#11 attribute selector --------------------------------------------------------------------

_PATH_TOKEN_RE = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")
_INDEX_RE = re.compile(r"\[(\d+)\]")


def _parse_path(path: str) -> tuple[str | int, ...]:
    """``a.b[0].c`` -> ``("a", "b", 0, "c")``; raises :class:`GtsQueryError`."""
    if not path:
        raise GtsQueryError("attribute path is empty")
    steps: list[str | int] = []
    for part in path.split("."):
        match = _PATH_TOKEN_RE.fullmatch(part)
        if match is None:
            raise GtsQueryError(f"malformed attribute path {path!r} near {part!r}")
        steps.append(match.group(1))
        steps.extend(int(index) for index in _INDEX_RE.findall(match.group(2)))
    return tuple(steps)


def _lookup(document: Any, steps: tuple[str | int, ...]) -> Any:
    current = document
    for step in steps:
        if isinstance(step, int):
            if not isinstance(current, list) or step >= len(current):
                return _MISSING
            current = current[step]
        else:
            if not isinstance(current, dict) or step not in current:
                return _MISSING
            current = current[step]
    return current


def _available(document: Any) -> Iterator[str]:
    if isinstance(document, dict):
        yield from (str(key) for key in document)


def attr(store: GtsStore, gts_with_path: str) -> dict[str, Any]:
    """OP#11 body: ``{"gts_id", "path", "value", "resolved", "error"?}``.

    ``resolved`` is False (with an ``error``) when the ``@`` is missing, the entity is not
    registered, the path is malformed or leads nowhere.
    """
    gts_id, at, path = gts_with_path.partition("@")
    body: dict[str, Any] = {"gts_id": gts_id, "path": path if at else None, "value": None}
    if not at:
        return body | {"resolved": False, "error": "attribute selector '@' is missing"}
    entity = store.get(gts_id)
    if entity is None:
        return body | {"resolved": False, "error": f"entity not found: {gts_id}"}
    try:
        steps = _parse_path(path)
    except GtsQueryError as exc:
        return body | {"resolved": False, "error": str(exc)}
    value = _lookup(entity.content, steps)
    if value is _MISSING:
        return body | {
            "resolved": False,
            "error": f"path not found: {path}",
            "available_fields": sorted(_available(entity.content)),
        }
    return body | {"value": value, "resolved": True}
