"""OP#12 type derivation compatibility (spec §3.1, §3.2, §4.1, ADR-0001).

A derived type must accept no instance its base rejects: ``Valid(derived) ⊆ Valid(base)``,
whatever form the derived body takes (``allOf`` + ``$ref`` to the parent, re-declared fields, or
both). The check works on the derived type's *effective declared* schema: the ``allOf`` members
of its body (the inlined parent included) are folded in order into one schema, and a property
declared again by a later member is combined with the earlier declaration by one rule:

- a member that states the property's ``type`` gives a complete declaration: its own constraints
  (``type``, ``maxLength``, ``enum`` ...) replace the earlier ones. So restating a base property
  without the base's ``maxLength`` drops it, as an author reading the derived schema would see
  and as the conformance suite requires, even though ``allOf`` alone would still carry it;
- a member without ``type`` (a constraint-only overlay such as ``{"minimum": 0}``) refines the
  earlier declaration: it keeps every keyword it does not restate, and the ones it restates
  replace theirs, so ``{"maxLength": 200}`` over ``maxLength: 100`` is still a loosening.

Nested structure (``properties``, ``patternProperties``, ``required``, ``additionalProperties``)
accumulates either way; a property, pattern, ``additionalProperties`` or ``items`` schema given on
both sides is combined by the same rule.

The inclusion test itself (:func:`inclusion_problem`) is conservative: it answers "proved" or
gives the reason it could not prove inclusion, so an unprovable derivation is refused (fails
closed). Two admission rules complete it: a derived type may not make a base property unusable
(``false``, or a declaration that contradicts itself, e.g. ``enum`` values of the wrong type or
``minimum`` above ``maximum``), and a closed (``additionalProperties: false``) level in a derived
branch must restate every property its ancestor declares there, or that property becomes
unusable under ``allOf``.

The same functions check ``x-gts-traits-schema`` layers along a type's chain (OP#13, ADR-0002).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from fractions import Fraction
from typing import Any
from urllib.parse import unquote

from hyperspot.platform.gts.ids import GTS_URI_PREFIX, GtsError
from hyperspot.platform.gts.pointers import NOT_FOUND, resolve_pointer
from hyperspot.platform.gts.regexp import RegexError, search

MAX_DEPTH = 64
_AP = "additionalProperties"
_STRUCTURAL = frozenset({"properties", "patternProperties", "required", _AP})
# Keywords that never restrict the accepted instances (annotations and containers).
ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "$comment",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$id",
        "$schema",
        "$anchor",
        "$dynamicAnchor",
        "$recursiveAnchor",
        "$defs",
        "definitions",
        "$vocabulary",
        "contentEncoding",
        "contentMediaType",
        "contentSchema",
        "x-gts-final",
        "x-gts-abstract",
        "x-gts-traits",
        "x-gts-traits-schema",
    }
)
# Keywords whose value is one schema, a map of schemas or a list of schemas (any dialect).
_SCHEMA_ONE = frozenset(
    {
        _AP,
        "additionalItems",
        "contains",
        "propertyNames",
        "not",
        "if",
        "then",
        "else",
        "unevaluatedProperties",
        "unevaluatedItems",
    }
)
_SCHEMA_MAP = frozenset(
    {"properties", "patternProperties", "dependentSchemas", "definitions", "$defs"}
)
_SCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})

Resolver = Callable[[str], "Mapping[str, Any] | None"]


class RefCycleError(GtsError):
    """GTS ``$ref`` targets reference each other in a cycle."""


# --- $ref inlining ------------------------------------------------------------------------------


def _pointer(root: Any, fragment: str) -> tuple[bool, Any]:
    """Resolve a JSON Pointer fragment (without '#') in ``root``: (found, target)."""
    target = resolve_pointer(root, fragment)
    return target is not NOT_FOUND, target


class _Inliner:
    """Copies a schema with every resolvable ``$ref`` replaced by its target.

    GTS targets come from ``resolve``; a GTS cycle raises :class:`RefCycleError` (an effective
    schema cannot be built from it). A local ``#...`` cycle (a recursive definition) is left as
    the ``$ref``, which the inclusion test treats as unprovable on the base side.
    """

    def __init__(self, resolve: Resolver, *, ref_siblings: bool) -> None:
        self.resolve = resolve
        self.ref_siblings = ref_siblings

    def run(self, node: Any, root: Any, stack: tuple[str, ...], depth: int = 0) -> Any:
        if not isinstance(node, Mapping):
            return node
        if depth > MAX_DEPTH:
            raise GtsError("schema nesting is too deep to compare")
        ref = node.get("$ref")
        if isinstance(ref, str):
            resolved = self.follow(ref, root, stack, depth)
            if resolved is not None:
                siblings = {k: v for k, v in node.items() if k != "$ref"}
                if not self.ref_siblings or not siblings:
                    return resolved
                return {"allOf": [resolved, self.children(siblings, root, stack, depth)]}
        return self.children(node, root, stack, depth)

    def follow(self, ref: str, root: Any, stack: tuple[str, ...], depth: int) -> Any:
        if ref.startswith("#"):
            key = f"{id(root)}{ref}"
            if key in stack:
                return None
            found, target = _pointer(root, unquote(ref[1:]) if ref != "#" else "")
            if not found:
                return None
            return self.run(target, root, (*stack, key), depth + 1)
        if not ref.startswith(GTS_URI_PREFIX):
            return None
        target_id, _, fragment = ref[len(GTS_URI_PREFIX) :].partition("#")
        key = f"gts:{target_id}"
        if key in stack:
            raise RefCycleError(f"cyclic $ref through 'gts://{target_id}'")
        document = self.resolve(target_id)
        if document is None:
            return None
        found, target = _pointer(document, fragment)
        if not found:
            return None
        return self.run(target, document, (*stack, key), depth + 1)

    def children(
        self, node: Mapping[str, Any], root: Any, stack: tuple[str, ...], depth: int
    ) -> Any:
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _SCHEMA_ONE or (key == "items" and not isinstance(value, list)):
                out[key] = self.run(value, root, stack, depth + 1)
            elif key in _SCHEMA_MAP and isinstance(value, Mapping):
                out[key] = {n: self.run(s, root, stack, depth + 1) for n, s in value.items()}
            elif (key in _SCHEMA_LIST or key == "items") and isinstance(value, list):
                out[key] = [self.run(s, root, stack, depth + 1) for s in value]
            elif key == "dependencies" and isinstance(value, Mapping):
                out[key] = {
                    n: self.run(s, root, stack, depth + 1) if isinstance(s, Mapping) else s
                    for n, s in value.items()
                }
            else:
                out[key] = value
        return out


def inline_refs(
    schema: Any,
    resolve: Resolver,
    *,
    ref_siblings: bool,
    root: Any = None,
    stack: Iterable[str] = (),
) -> Any:
    """``schema`` with ``$ref`` targets inlined (local ones against ``root``, default itself).

    ``ref_siblings`` selects Draft 2019-09+ semantics, where keywords beside ``$ref`` still
    apply; under Draft-07 they are ignored. ``stack`` names GTS documents already being expanded
    (``gts:<id>``), so a reference back to one of them is reported as a cycle.
    """
    inliner = _Inliner(resolve, ref_siblings=ref_siblings)
    return inliner.run(schema, schema if root is None else root, tuple(stack))


def parent_first(schema: Any, parent_id: str) -> Any:
    """``schema`` with the ``allOf`` members that reference ``parent_id`` moved to the front.

    ``allOf`` is order-free for validation, but folding is not: the parent's declarations must be
    the inherited ones the derived members are read against, wherever the author listed them.
    """
    branches = schema.get("allOf") if isinstance(schema, Mapping) else None
    if not isinstance(branches, list):
        return schema
    target = f"{GTS_URI_PREFIX}{parent_id}"

    def is_parent(branch: Any) -> bool:
        return isinstance(branch, Mapping) and branch.get("$ref") == target

    ordered = [b for b in branches if is_parent(b)] + [b for b in branches if not is_parent(b)]
    return {**schema, "allOf": ordered}


# --- declared schemas and allOf flattening --------------------------------------------------------


def bool_value(schema: Any) -> bool | None:
    """True for a schema accepting everything, False for one accepting nothing, else None."""
    if schema is True or (isinstance(schema, Mapping) and not _constraints(schema)):
        return True
    if schema is False or (isinstance(schema, Mapping) and schema.get("not") in ({}, True)):
        return False
    return None


def _constraints(schema: Mapping[str, Any]) -> list[str]:
    return [k for k in schema if k not in ANNOTATIONS and not _vendor_annotation(k)]


def _vendor_annotation(key: str) -> bool:
    # x-* keywords (x-gts-ref included) are extensions, not JSON Schema assertions: like the
    # reference implementations, derivation compatibility is judged on JSON Schema alone.
    return key.startswith("x-")


class _Closure:
    """The accumulated ``additionalProperties`` of one object level while folding branches."""

    __slots__ = ("value",)

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def merge(self, candidate: Any) -> None:
        # A closed level stays closed; an open restatement does not reopen an earlier constraint.
        if bool_value(self.value) is False:
            return
        if bool_value(candidate) is True and self.value is not None:
            return
        self.value = candidate


def declared(schema: Any, depth: int = 0) -> Any:
    """The declared form of ``schema``: ``allOf`` branches folded in order (module docstring)."""
    if not isinstance(schema, Mapping) or depth > MAX_DEPTH:
        return schema
    out: dict[str, Any] = {}
    closure = _Closure()
    branches = schema.get("allOf")
    if isinstance(branches, list):
        for branch in branches:
            folded = declared(branch, depth + 1)
            if isinstance(folded, Mapping):
                _absorb(out, closure, folded, depth)
    _absorb(out, closure, schema, depth)
    if closure.value is not None:
        out[_AP] = closure.value
    return out


def _absorb(out: dict[str, Any], closure: _Closure, source: Mapping[str, Any], depth: int) -> None:
    for key, value in source.items():
        if key == "allOf":
            continue
        if key == _AP:
            if bool_value(closure.value) is None and bool_value(value) is None:
                # Both constrain undeclared properties: the same rule as a redeclared property.
                closure.value = _redeclare(closure.value, declared(value, depth + 1), depth + 1)
            else:
                closure.merge(value)
        elif key in ("properties", "patternProperties") and isinstance(value, Mapping):
            members = dict(out.get(key) or {})
            for name, sub in value.items():
                folded = declared(sub, depth + 1)
                members[name] = (
                    _redeclare(members[name], folded, depth) if name in members else folded
                )
            out[key] = members
        elif key == "required" and isinstance(value, list):
            required = list(out.get("required") or [])
            required.extend(name for name in value if name not in required)
            out["required"] = required
        else:
            out[key] = value


def _redeclare(inherited: Any, overlay: Any, depth: int) -> Any:
    """A property declared again by a later member (module docstring: complete or refinement)."""
    if overlay is True:
        overlay = {}  # the same schema as {}: it adds nothing to the inherited declaration
    if not isinstance(inherited, Mapping) or not isinstance(overlay, Mapping) or depth > MAX_DEPTH:
        return overlay
    own = overlay if "type" in overlay else {**inherited, **overlay}
    composed: dict[str, Any] = {k: v for k, v in own.items() if k not in _STRUCTURAL}
    for key in ("properties", "patternProperties", "required"):
        if key in inherited:
            composed[key] = inherited[key]
    closure = _Closure(inherited.get(_AP))
    _absorb(composed, closure, overlay, depth + 1)
    if closure.value is not None:
        composed[_AP] = closure.value
    items, restated = inherited.get("items"), overlay.get("items")
    if isinstance(items, Mapping) and isinstance(restated, (Mapping, bool)):
        composed["items"] = _redeclare(
            declared(items, depth + 1), declared(restated, depth + 1), depth + 1
        )
    return composed


def flatten(schema: Any, depth: int = 0) -> Any:
    """``allOf`` merged into one object schema (properties merged recursively, closure kept)."""
    if not isinstance(schema, Mapping) or depth > MAX_DEPTH:
        return schema
    out: dict[str, Any] = {}
    branches = schema.get("allOf")
    if isinstance(branches, list):
        for branch in branches:
            _merge_flat(out, flatten(branch, depth + 1), depth)
    _merge_flat(out, {k: v for k, v in schema.items() if k != "allOf"}, depth)
    return out


def _merge_flat(out: dict[str, Any], source: Any, depth: int) -> None:
    if not isinstance(source, Mapping):
        return
    for key, value in source.items():
        if key == "properties" and isinstance(value, Mapping):
            props = dict(out.get("properties") or {})
            for name, sub in value.items():
                if isinstance(props.get(name), Mapping) and isinstance(sub, Mapping):
                    props[name] = flatten({"allOf": [props[name], sub]}, depth + 1)
                else:
                    props[name] = sub
            out["properties"] = props
        elif key == "required" and isinstance(value, list):
            required = list(out.get("required") or [])
            required.extend(name for name in value if name not in required)
            out["required"] = required
        elif key == _AP:
            closure = _Closure(out.get(_AP))
            closure.merge(value)
            out[_AP] = closure.value
        else:
            out[key] = value


# --- inclusion ---------------------------------------------------------------------------------

_STRING_KEYS = frozenset({"minLength", "maxLength", "pattern", "format"})
_NUMBER_KEYS = frozenset(
    {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
)
_OBJECT_KEYS = frozenset(
    {
        "required",
        "properties",
        "patternProperties",
        _AP,
        "minProperties",
        "maxProperties",
        "propertyNames",
        "dependencies",
        "dependentRequired",
        "dependentSchemas",
        "unevaluatedProperties",
    }
)
_ARRAY_KEYS = frozenset(
    {
        "items",
        "prefixItems",
        "additionalItems",
        "minItems",
        "maxItems",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "unevaluatedItems",
    }
)
_HANDLED = frozenset(
    {"type", "enum", "const", "allOf", "anyOf", "oneOf", "not", "if", "then", "else"}
)
_JSON_TYPES = ("null", "boolean", "object", "array", "number", "integer", "string")
ValueCheck = Callable[[Any, Any], bool]


def json_equal(left: Any, right: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but ``True != 1`` and ``[1] != (1,)``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            json_equal(a, b) for a, b in zip(left, right, strict=True)
        )
    return type(left) is type(right) and left == right


def _types(schema: Mapping[str, Any]) -> set[str] | None:
    declared_type = schema.get("type")
    if isinstance(declared_type, str):
        return {declared_type}
    if isinstance(declared_type, list):
        return {t for t in declared_type if isinstance(t, str)}
    return None


def _meet(left: Any, right: Any) -> Any:
    """An over-approximation of the conjunction of two schemas (sound for the subset side)."""
    left_bool, right_bool = bool_value(left), bool_value(right)
    if left_bool is False or right_bool is False:
        return False
    if left_bool is True or not isinstance(left, Mapping):
        return right if isinstance(right, Mapping) else {}
    if right_bool is True or not isinstance(right, Mapping):
        return left
    out = dict(left)
    for key, value in right.items():
        if key not in out:
            out[key] = value
            continue
        current = out[key]
        if key == "type":
            lt, rt = _types(left) or set(_JSON_TYPES), _types(right) or set(_JSON_TYPES)
            both = lt & rt
            if ("integer" in lt and "number" in rt) or ("integer" in rt and "number" in lt):
                both.add("integer")
            out[key] = sorted(both)
        elif key in ("minimum", "minLength", "minItems", "minProperties", "exclusiveMinimum"):
            out[key] = max(current, value) if _numbers(current, value) else current
        elif key in ("maximum", "maxLength", "maxItems", "maxProperties", "exclusiveMaximum"):
            out[key] = min(current, value) if _numbers(current, value) else current
        elif key == "required" and isinstance(value, list) and isinstance(current, list):
            out[key] = current + [name for name in value if name not in current]
        elif key in ("properties", "patternProperties") and isinstance(value, Mapping):
            merged = dict(current) if isinstance(current, Mapping) else {}
            for name, sub in value.items():
                merged[name] = _meet(merged[name], sub) if name in merged else sub
            out[key] = merged
        elif key in (_AP, "items", "propertyNames", "contains") and not isinstance(value, list):
            out[key] = _meet(current, value) if not isinstance(current, list) else current
        elif key in ("pattern", "format"):
            out[key] = _as_list(current) + [
                v for v in _as_list(value) if v not in _as_list(current)
            ]
        elif key == "enum" and isinstance(value, list) and isinstance(current, list):
            out[key] = [v for v in current if any(json_equal(v, w) for w in value)]
        # Any other conflict keeps the left value: dropping a constraint only widens the subset.
    return out


def _numbers(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _meet_all(schema: Mapping[str, Any]) -> Any:
    """Fold a subset-side ``allOf`` into its host (depth-first)."""
    branches = schema.get("allOf")
    if not isinstance(branches, list):
        return schema
    host: Any = {k: v for k, v in schema.items() if k != "allOf"}
    for branch in branches:
        host = _meet(host, _meet_all(branch) if isinstance(branch, Mapping) else branch)
    return host


def _finite_values(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        values = [schema["const"]]
        enum = schema.get("enum")
        if isinstance(enum, list):
            values = [v for v in values if any(json_equal(v, w) for w in enum)]
        return values
    enum = schema.get("enum")
    return list(enum) if isinstance(enum, list) else None


class _Inclusion:
    """One inclusion question; ``accepts(schema, value)`` validates a single JSON value."""

    def __init__(self, accepts: ValueCheck) -> None:
        self.accepts = accepts

    def check(self, sub: Any, sup: Any, path: str, depth: int = 0) -> str | None:
        where = path or "/"
        if depth > MAX_DEPTH:
            return f"{where}: schemas nest too deeply to compare"
        if bool_value(sup) is True or bool_value(sub) is False:
            return None
        if bool_value(sup) is False:
            return f"{where}: the base accepts no value here"
        sub_map: Mapping[str, Any] = sub if isinstance(sub, Mapping) else {}
        sup_map: Mapping[str, Any] = sup if isinstance(sup, Mapping) else {}
        sub_map = _meet_all(sub_map) if "allOf" in sub_map else sub_map
        if sub_map is False:
            return None
        for key in ("anyOf", "oneOf"):
            branches = sub_map.get(key)
            if isinstance(branches, list):
                rest = {k: v for k, v in sub_map.items() if k != key}
                for branch in branches:
                    problem = self.check(_meet(rest, branch), sup_map, path, depth + 1)
                    if problem is not None:
                        return problem
                return None
        values = _finite_values(sub_map)
        if values is not None:
            return self.finite(values, sub_map, sup_map, where)
        return self.structural(sub_map, sup_map, path, depth)

    def finite(
        self, values: list[Any], sub: Mapping[str, Any], sup: Mapping[str, Any], where: str
    ) -> str | None:
        for value in values:
            if self.accepts(sub, value) and not self.accepts(sup, value):
                return f"{where}: value {_short(value)} is not accepted by the base"
        return None

    def structural(
        self, sub: Mapping[str, Any], sup: Mapping[str, Any], path: str, depth: int
    ) -> str | None:
        where = path or "/"
        branches = sup.get("allOf")
        if isinstance(branches, list):
            for branch in branches:
                problem = self.check(sub, branch, path, depth + 1)
                if problem is not None:
                    return problem
        problem = self.combinators(sub, sup, path, depth)
        if problem is not None:
            return problem
        sub_types, sup_types = _types(sub), _types(sup)
        if sup_types is not None:
            if sub_types is None:
                return f"{where}: accepts any JSON type, the base only {sorted(sup_types)}"
            for kind in sub_types:
                if kind not in sup_types and not (kind == "integer" and "number" in sup_types):
                    return f"{where}: accepts type {kind!r}, the base does not"
        for key in sup:
            if key in _HANDLED or key in ANNOTATIONS or _vendor_annotation(key):
                continue
            problem = self.keyword(key, sub, sup, sub_types, path=path, depth=depth)
            if problem is not None:
                return problem
        return None

    def combinators(
        self, sub: Mapping[str, Any], sup: Mapping[str, Any], path: str, depth: int
    ) -> str | None:
        where = path or "/"
        branches = sup.get("anyOf")
        if isinstance(branches, list) and not any(
            self.check(sub, branch, path, depth + 1) is None for branch in branches
        ):
            return f"{where}: not included in any 'anyOf' branch of the base"
        for key in ("oneOf", "not", "if", "then", "else"):
            if key in sup and not json_equal(sub.get(key), sup[key]):
                return f"{where}: cannot prove the base's {key!r} constraint"
        if "enum" in sup or "const" in sup:
            return f"{where}: the base restricts values with enum/const, the derived does not"
        return None

    def keyword(
        self,
        key: str,
        sub: Mapping[str, Any],
        sup: Mapping[str, Any],
        sub_types: set[str] | None,
        *,
        path: str,
        depth: int,
    ) -> str | None:
        def possible(*kinds: str) -> bool:
            return sub_types is None or any(k in sub_types for k in kinds)

        if key in _STRING_KEYS:
            return self.string_keyword(key, sub, sup, path) if possible("string") else None
        if key in _NUMBER_KEYS:
            return (
                self.number_keyword(key, sub, sup, sub_types, path)
                if possible("number", "integer")
                else None
            )
        if key in _OBJECT_KEYS:
            return self.object_keyword(key, sub, sup, path, depth) if possible("object") else None
        if key in _ARRAY_KEYS:
            return self.array_keyword(key, sub, sup, path, depth) if possible("array") else None
        if json_equal(sub.get(key), sup[key]):
            return None
        return f"{path or '/'}: cannot prove the base's {key!r} constraint"

    def string_keyword(
        self, key: str, sub: Mapping[str, Any], sup: Mapping[str, Any], path: str
    ) -> str | None:
        where, bound = path or "/", sup[key]
        if key == "minLength":
            return None if _le(bound, sub.get("minLength", 0)) else f"{where}: minLength loosened"
        if key == "maxLength":
            return (
                None
                if "maxLength" in sub and _le(sub["maxLength"], bound)
                else f"{where}: maxLength loosened"
            )
        # pattern, format: the same assertion must be present on the derived side.
        if any(json_equal(bound, v) for v in _as_list(sub.get(key))):
            return None
        return f"{where}: the base's {key} {_short(bound)} is not enforced"

    def number_keyword(
        self,
        key: str,
        sub: Mapping[str, Any],
        sup: Mapping[str, Any],
        sub_types: set[str] | None,
        path: str,
    ) -> str | None:
        where = path or "/"
        if key == "multipleOf":
            step = sup[key]
            own = sub.get("multipleOf")
            if _numbers(step, own) and step and own is not None and _divides(step, own):
                return None
            if (
                sub_types is not None
                and sub_types <= {"integer"}
                and _numbers(step)
                and step
                and _divides(step, 1)
            ):
                return None
            return f"{where}: multipleOf {_short(step)} is not enforced"
        lower = key in ("minimum", "exclusiveMinimum")
        mine, theirs = _bound(sub, lower=lower), _bound(sup, lower=lower)
        if theirs is None:
            return None
        if mine is not None and _tighter(mine, theirs, lower=lower):
            return None
        return f"{where}: {'lower' if lower else 'upper'} bound loosened"

    def object_keyword(
        self, key: str, sub: Mapping[str, Any], sup: Mapping[str, Any], path: str, depth: int
    ) -> str | None:
        where = path or "/"
        if key == "required":
            listed = sub.get("required")
            have: list[Any] = listed if isinstance(listed, list) else []
            for name in sup["required"] if isinstance(sup["required"], list) else []:
                if name not in have:
                    return f"{where}: required property {name!r} of the base is not required"
            return None
        if key == "properties":
            return self.properties(sub, sup, path, depth)
        if key == _AP:
            return self.additional(sub, sup, path, depth)
        if key == "patternProperties":
            return self.pattern_properties(sub, sup, path, depth)
        if key == "minProperties":
            return None if _le(sup[key], sub.get(key, 0)) else f"{where}: minProperties loosened"
        if key == "maxProperties":
            return (
                None
                if key in sub and _le(sub[key], sup[key])
                else f"{where}: maxProperties loosened"
            )
        if key == "propertyNames":
            if "propertyNames" in sub:
                return self.check(
                    sub["propertyNames"], sup[key], f"{path}/propertyNames", depth + 1
                )
            names = list((sub.get("properties") or {}).keys())
            closed = bool_value(sub.get(_AP, True)) is False and not sub.get("patternProperties")
            if closed and all(self.accepts(sup[key], name) for name in names):
                return None
            return f"{where}: the base's propertyNames are not enforced"
        if json_equal(sub.get(key), sup[key]):
            return None
        return f"{where}: cannot prove the base's {key!r} constraint"

    def property_schema(self, sub: Mapping[str, Any], name: str) -> Any:
        """The sub-schema a property ``name`` gets in ``sub`` (declared, pattern or additional)."""
        props = sub.get("properties")
        if isinstance(props, Mapping) and name in props:
            return props[name]
        matching = [s for p, s in (sub.get("patternProperties") or {}).items() if _search(p, name)]
        if matching:
            result: Any = True
            for schema in matching:
                result = _meet(result, schema)
            return result
        return sub.get(_AP, True)

    def properties(
        self, sub: Mapping[str, Any], sup: Mapping[str, Any], path: str, depth: int
    ) -> str | None:
        props = sup.get("properties")
        if not isinstance(props, Mapping):
            return None
        for name, schema in props.items():
            problem = self.check(
                self.property_schema(sub, name), schema, f"{path}/{name}", depth + 1
            )
            if problem is not None:
                return problem
        return None

    def additional(
        self, sub: Mapping[str, Any], sup: Mapping[str, Any], path: str, depth: int
    ) -> str | None:
        limit = sup[_AP]
        if bool_value(limit) is True:
            return None
        listed = sup.get("properties")
        declared_there: Mapping[str, Any] = listed if isinstance(listed, Mapping) else {}
        patterns = list((sup.get("patternProperties") or {}).keys())
        for name, schema in (sub.get("properties") or {}).items():
            if name in declared_there or any(_search(p, name) for p in patterns):
                continue
            problem = self.check(schema, limit, f"{path}/{name}", depth + 1)
            if problem is not None:
                closed = bool_value(limit) is False
                return (
                    f"{path}/{name}: the base does not allow this property" if closed else problem
                )
        for pattern, schema in (sub.get("patternProperties") or {}).items():
            if pattern not in patterns and self.check(schema, limit, path, depth + 1) is not None:
                return f"{path or '/'}: pattern properties {pattern!r} are not allowed by the base"
        if self.check(sub.get(_AP, True), limit, path, depth + 1) is not None:
            return f"{path or '/'}: admits additional properties the base rejects"
        return None

    def pattern_properties(
        self, sub: Mapping[str, Any], sup: Mapping[str, Any], path: str, depth: int
    ) -> str | None:
        own_patterns = sub.get("patternProperties") or {}
        for pattern, schema in (sup.get("patternProperties") or {}).items():
            for name, prop in (sub.get("properties") or {}).items():
                if _search(pattern, name):
                    problem = self.check(prop, schema, f"{path}/{name}", depth + 1)
                    if problem is not None:
                        return problem
            undeclared = own_patterns.get(pattern, sub.get(_AP, True))
            if self.check(undeclared, schema, path, depth + 1) is not None:
                where = path or "/"
                return f"{where}: properties matching {pattern!r} are looser than in the base"
        return None

    def array_keyword(
        self, key: str, sub: Mapping[str, Any], sup: Mapping[str, Any], path: str, depth: int
    ) -> str | None:
        where = path or "/"
        if key in ("items", "prefixItems", "additionalItems"):
            return self.items(sub, sup, path, depth)
        if key in ("minItems", "minContains"):
            return None if _le(sup[key], sub.get(key, 0)) else f"{where}: {key} loosened"
        if key in ("maxItems", "maxContains"):
            return None if key in sub and _le(sub[key], sup[key]) else f"{where}: {key} loosened"
        if key == "uniqueItems":
            return (
                None
                if sup[key] is not True or sub.get(key) is True
                else f"{where}: uniqueItems dropped"
            )
        if json_equal(sub.get(key), sup[key]):
            return None
        return f"{where}: cannot prove the base's {key!r} constraint"

    def items(
        self, sub: Mapping[str, Any], sup: Mapping[str, Any], path: str, depth: int
    ) -> str | None:
        sub_tuple, sub_rest = _tuple_form(sub)
        sup_tuple, sup_rest = _tuple_form(sup)
        for index in range(max(len(sub_tuple), len(sup_tuple))):
            mine = sub_tuple[index] if index < len(sub_tuple) else sub_rest
            theirs = sup_tuple[index] if index < len(sup_tuple) else sup_rest
            problem = self.check(mine, theirs, f"{path}/{index}", depth + 1)
            if problem is not None:
                return problem
        return self.check(sub_rest, sup_rest, f"{path}/items", depth + 1)


def _tuple_form(schema: Mapping[str, Any]) -> tuple[list[Any], Any]:
    """(positional item schemas, schema of the remaining items) in any dialect."""
    prefix = schema.get("prefixItems")
    items = schema.get("items", True)
    if isinstance(prefix, list):
        return prefix, items
    if isinstance(items, list):
        return items, schema.get("additionalItems", True)
    return [], items


def _bound(schema: Mapping[str, Any], *, lower: bool) -> tuple[float, bool] | None:
    """The tightest (value, exclusive) bound among minimum/exclusiveMinimum (or the maxima)."""
    inclusive, exclusive = (
        ("minimum", "exclusiveMinimum") if lower else ("maximum", "exclusiveMaximum")
    )
    bounds = [
        (schema[k], k == exclusive) for k in (inclusive, exclusive) if _numbers(schema.get(k))
    ]
    if not bounds:
        return None
    best = bounds[0]
    for candidate in bounds[1:]:
        if _tighter(candidate, best, lower=lower):
            best = candidate
    return best


def _tighter(mine: tuple[float, bool], theirs: tuple[float, bool], *, lower: bool) -> bool:
    """``mine`` admits no value ``theirs`` rejects."""
    if mine[0] == theirs[0]:
        return mine[1] or not theirs[1]
    return mine[0] > theirs[0] if lower else mine[0] < theirs[0]


def _le(left: Any, right: Any) -> bool:
    return _numbers(left, right) and left <= right


def _divides(step: float, value: float) -> bool:
    if math.isinf(step) or math.isinf(value):
        return False
    ratio = Fraction(str(value)) / Fraction(str(step))
    return ratio.denominator == 1


def _search(pattern: str, text: str) -> bool:
    try:
        return search(pattern, text)
    except RegexError:
        return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def inclusion_problem(sub: Any, sup: Any, accepts: ValueCheck, path: str = "") -> str | None:
    """None when every instance ``sub`` accepts is accepted by ``sup`` (proved), else a reason.

    ``accepts(schema, value)`` validates one JSON value against a leaf schema; it decides
    finite cases (``const``/``enum`` on the subset side).
    """
    return _Inclusion(accepts).check(sub, sup, path)


# --- admission ---------------------------------------------------------------------------------


def unsatisfiable(schema: Any, accepts: ValueCheck) -> bool:
    """True when ``schema`` provably accepts no value (a few decidable shapes; else False)."""
    if bool_value(schema) is False:
        return True
    if not isinstance(schema, Mapping):
        return False
    values = _finite_values(schema)
    if values is not None and not any(accepts(schema, value) for value in values):
        return True
    kinds = _types(schema)
    if kinds is None:
        return False
    if not kinds:
        return True
    if kinds <= {"number", "integer"}:
        low, high = _bound(schema, lower=True), _bound(schema, lower=False)
        if low is not None and high is not None:
            return low[0] > high[0] or (low[0] == high[0] and (low[1] or high[1]))
    if len(kinds) == 1:
        keywords = _SIZE_KEYWORDS.get(next(iter(kinds)))
        if keywords is not None:
            least, most = schema.get(keywords[0], 0), schema.get(keywords[1])
            return _numbers(least, most) and bool(least > most)
    return False


# The size bounds of each JSON type that has them: (lower, upper).
_SIZE_KEYWORDS = {
    "string": ("minLength", "maxLength"),
    "array": ("minItems", "maxItems"),
    "object": ("minProperties", "maxProperties"),
}


def _unusable(base: Any, derived: Any, accepts: ValueCheck, path: str, depth: int) -> Iterator[str]:
    """Base properties (at any object level) the derived declaration leaves no value for."""
    if depth > MAX_DEPTH or not isinstance(base, Mapping) or not isinstance(derived, Mapping):
        return
    base_props, derived_props = base.get("properties"), derived.get("properties")
    if not isinstance(base_props, Mapping) or not isinstance(derived_props, Mapping):
        return
    for name in base_props.keys() & derived_props.keys():
        where = f"{path}/{name}" if path else name
        mine, theirs = derived_props[name], base_props[name]
        if unsatisfiable(mine, accepts):
            if not unsatisfiable(theirs, accepts):
                yield where
        else:
            yield from _unusable(theirs, mine, accepts, where, depth + 1)


def _orphans(ancestor: Any, descendant: Any, path: str, depth: int) -> Iterator[str]:
    """Ancestor properties a closed descendant level (in any branch) does not restate."""
    if depth > MAX_DEPTH or not isinstance(descendant, Mapping):
        return
    ancestor_props = ancestor.get("properties") if isinstance(ancestor, Mapping) else None
    ancestor_props = ancestor_props if isinstance(ancestor_props, Mapping) else {}
    own = descendant.get("properties")
    own = own if isinstance(own, Mapping) else {}
    if bool_value(descendant.get(_AP)) is False:
        for name in sorted(ancestor_props):
            if name not in own:
                yield f"{path}/{name}" if path else name
    for name in sorted(set(own) & set(ancestor_props)):
        yield from _orphans(flatten(ancestor_props[name]), own[name], f"{path}/{name}", depth + 1)
    branches = descendant.get("allOf")
    if isinstance(branches, list):
        for branch in branches:
            yield from _orphans(ancestor, branch, path, depth + 1)


def derivation_problems(
    base: Any, derived: Any, accepts: ValueCheck, *, derived_raw: Any = None
) -> list[str]:
    """Why ``derived`` (refs inlined) is not a compatible derivation of ``base``; [] = fine.

    ``derived_raw`` is the derived body as authored (top level only matters), for the rule that
    an explicit open ``additionalProperties`` may not loosen a closed base.
    """
    base_decl, derived_decl = declared(base), declared(derived)
    problems: list[str] = []
    if isinstance(base_decl, Mapping) and isinstance(derived_decl, dict):
        if _AP not in derived_decl and _AP in base_decl:
            derived_decl[_AP] = copy.deepcopy(base_decl[_AP])
        raw = derived if derived_raw is None else derived_raw
        if (
            bool_value(base_decl.get(_AP)) is False
            and isinstance(raw, Mapping)
            and _AP in raw
            and bool_value(raw[_AP]) is not False
        ):
            problems.append("it opens additionalProperties that the base closes")
    problem = inclusion_problem(derived_decl, base_decl, accepts)
    if problem is not None:
        problems.append(problem)
    problems.extend(
        f"property {path!r} of the base is switched off: its derived declaration allows no value"
        for path in sorted(_unusable(base_decl, derived_decl, accepts, "", 0))
    )
    problems.extend(
        f"property {path!r} of the base is not restated at a closed level, so no value is allowed"
        for path in _orphans(flatten(base), derived, "", 0)
    )
    return problems
