"""GTS Type Schema evolution compatibility: OP#8 (spec §4 and §9.2).

Compatibility is accepted-instance-set inclusion (§4.3): *backward* is ``Valid(old) ⊆ Valid(new)``,
*forward* is ``Valid(new) ⊆ Valid(old)``, *full* is both. A verdict is never a guess:

- ``compatible`` only when a structural proof over the two resolved effective schemas (``$ref``
  inlined and ``allOf`` composed, so content models are classified as §4.4 requires) shows the
  inclusion;
- ``incompatible`` only when a concrete counterexample instance was built and checked with a real
  JSON Schema validator: accepted by one schema and rejected by the other;
- ``unknown`` otherwise (keywords the checker does not model that differ, different dialects,
  unresolvable references, or a difference for which no checked counterexample was found).

``Valid(S)`` follows GTS validation (validation.py, OP#6): formats are assertions, patterns use
the RE2 profile and ``x-gts-ref`` constrains strings (§9.6, registry-free ``none`` policy; ``/$id``
is the compared schema's own identifier). Counterexamples are checked with that same validator.
Supported dialects are the ones GTS validation evaluates: Draft-07, 2019-09 and 2020-12.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Final, Literal

import jsonschema
from jsonschema.exceptions import ValidationError

from hyperspot.platform.gts import refs, regexp, validation
from hyperspot.platform.gts.ids import GtsError, GtsId, strip_gts_uri
from hyperspot.platform.gts.pointers import NOT_FOUND, resolve_pointer
from hyperspot.platform.gts.store import GtsEntity, GtsStore

Verdict = Literal["compatible", "incompatible", "unknown"]

COMPATIBLE: Final = "compatible"
INCOMPATIBLE: Final = "incompatible"
UNKNOWN: Final = "unknown"


class GtsCompatibilityError(GtsError):
    """OP#8/OP#9 input the checker cannot work with (unknown id, not a type, other type family)."""


# -- dialects ------------------------------------------------------------------------------------

_DIALECT_URIS: Final[dict[str, str]] = {
    "json-schema.org/draft-04/schema": "draft-04",
    "json-schema.org/draft-06/schema": "draft-06",
    "json-schema.org/draft-07/schema": "draft-07",
    "json-schema.org/draft/2019-09/schema": "2019-09",
    "json-schema.org/draft/2020-12/schema": "2020-12",
}
# The dialects GTS validation (validation.py) evaluates; others are reported as unsupported.
_SUPPORTED: Final = frozenset({"draft-07", "2019-09", "2020-12"})
# In Draft-07 a "$ref" makes its sibling keywords inert; later drafts apply them alongside.
_LEGACY_REF: Final = frozenset({"draft-07"})


def schema_dialect(schema: Mapping[str, Any]) -> str | None:
    """The dialect a schema declares in ``$schema``, with equivalent URI spellings made equal.

    ``http``/``https``, an empty fragment, a trailing slash and the host's case do not change the
    dialect. Known drafts come back as ``draft-04`` … ``2020-12``; any other URI as ``uri:<form>``.
    """
    raw = schema.get("$schema")
    if not isinstance(raw, str) or not raw.strip():
        return None
    text = raw.strip()
    for scheme in ("https://", "http://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
            break
    text = text.rstrip("#").rstrip("/")
    host, _, path = text.partition("/")
    normal = f"{host.lower()}/{path}"
    return _DIALECT_URIS.get(normal, f"uri:{normal}")


# -- GTS validation semantics ------------------------------------------------------------------


def gts_ref_matches(operand: str, value: str) -> bool:
    """Whether a string satisfies a resolved ``x-gts-ref`` operand (§9.6)."""
    return refs.value_error(operand, value) is None


def pattern_matches(pattern: str, value: str) -> bool | None:
    """GTS ``pattern`` semantics (RE2, unanchored); None when the pattern is outside the profile."""
    try:
        return regexp.search(pattern, value)
    except regexp.RegexError:
        return None


class InstanceChecker:
    """Validates instances against one GTS Type Schema exactly as OP#6 does (GTS formats, RE2
    patterns, ``x-gts-ref`` under the registry-free ``none`` policy with ``/$id`` = ``type_id``)."""

    def __init__(
        self, schema: Mapping[str, Any], *, store: GtsStore | None, type_id: str, dialect: str
    ) -> None:
        self._type_id = type_id
        self._dialect = dialect
        self._lookup: Callable[[str], GtsEntity | None] = (
            store.get if store is not None else lambda _id: None
        )
        self._validator = validation.compiled_validator(schema, dialect)

    def errors(self, instance: Any) -> list[ValidationError]:
        """Every validation error; raises GtsError when the schema cannot be evaluated."""
        context = refs.RefContext(
            lookup=self._lookup, mode="none", selected_type_id=self._type_id or None
        )
        try:
            with refs.ref_context(context):
                return validation.run_validator(
                    self._validator, instance, self._lookup, self._dialect
                )
        except (re.error, jsonschema.SchemaError, jsonschema.exceptions.UnknownType) as exc:
            raise GtsCompatibilityError(f"cannot validate against {self._type_id}: {exc}") from exc

    def accepts(self, instance: Any) -> bool | None:
        """True/False, or None when the schema cannot be evaluated (bad pattern, broken $ref)."""
        try:
            return not self.errors(instance)
        except (GtsError, TypeError, ValueError):
            return None


# -- JSON values ---------------------------------------------------------------------------------


def _canon_value(value: Any) -> Any:
    # JSON equality: 1 == 1.0, but true is not 1.
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, list | tuple):
        return [_canon_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _canon_value(v) for k, v in value.items()}
    return repr(value)


def _canon(value: Any) -> str:
    return json.dumps(
        _canon_value(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fraction(value: Any) -> Fraction | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    # Decimal reading of the literal: multipleOf 0.1 means tenths, not the nearest binary float.
    return Fraction(value) if isinstance(value, int) else Fraction(repr(value))


def _number(value: Fraction) -> int | float:
    return value.numerator if value.denominator == 1 else float(value)


# -- the effective-schema model ------------------------------------------------------------------

ALL_KINDS: Final = frozenset(
    {"null", "boolean", "object", "array", "string", "integer", "fraction"}
)
_NUMERIC: Final = frozenset({"integer", "fraction"})
_TYPE_KINDS: Final[dict[str, frozenset[str]]] = {
    "null": frozenset({"null"}),
    "boolean": frozenset({"boolean"}),
    "object": frozenset({"object"}),
    "array": frozenset({"array"}),
    "string": frozenset({"string"}),
    "integer": frozenset({"integer"}),
    "number": _NUMERIC,
}


@dataclass(frozen=True, slots=True)
class _Bound:
    value: Fraction
    exclusive: bool


@dataclass(eq=False, slots=True)
class SchemaNode:
    """One level of a resolved effective schema: the conjunction of everything that applies there.

    ``kinds`` splits JSON numbers into ``integer`` and ``fraction`` (non-integral numbers).
    ``opaque`` holds constraints the model does not interpret, as (keyword, canonical JSON) pairs
    with references inlined; ``props``/``additional`` describe the object level after ``allOf``
    composition, so ``additional`` is the content model of that level (§4.4). Treat as immutable.
    """

    kinds: frozenset[str] = ALL_KINDS
    enum: tuple[Any, ...] | None = None
    lo: _Bound | None = None
    hi: _Bound | None = None
    multiple_of: frozenset[Fraction] = frozenset()
    min_len: int = 0
    max_len: int | None = None
    patterns: frozenset[str] = frozenset()
    formats: frozenset[str] = frozenset()
    gts_refs: frozenset[str] = frozenset()
    prefix: tuple[SchemaNode, ...] = ()
    items: SchemaNode | None = None
    min_items: int = 0
    max_items: int | None = None
    unique: bool = False
    props: dict[str, SchemaNode] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    additional: SchemaNode | None = None
    min_props: int = 0
    max_props: int | None = None
    opaque: frozenset[tuple[str, str]] = frozenset()
    # anyOf/oneOf groups: (keyword, alternatives); a value must satisfy every group.
    unions: tuple[tuple[str, tuple[SchemaNode, ...]], ...] = ()
    default: tuple[Any] | None = None  # a 1-tuple, so that a null default is representable
    _key: str | None = None

    def value_for(self, name: str) -> SchemaNode:
        """The schema a property of this name must satisfy (declared, else the undeclared one)."""
        node = self.props.get(name)
        return node if node is not None else _child(self.additional)

    def item_at(self, index: int) -> SchemaNode:
        """The schema the array element at ``index`` must satisfy."""
        return self.prefix[index] if index < len(self.prefix) else _child(self.items)

    @property
    def is_bottom(self) -> bool:
        """Admits no value at all (``false``, no type left, or an empty enum)."""
        return not self.kinds or (self.enum is not None and not self.enum)

    @property
    def is_top(self) -> bool:
        """Admits every value (``true`` or ``{}``)."""
        return self.key() == _TOP_KEY

    @property
    def content_model(self) -> Literal["open", "closed", "partially open", "undetermined"]:
        """§4.4 classification of this object level in the resolved effective schema."""
        extra = _child(self.additional)
        kinds = {kw for kw, _ in self.opaque}
        if "patternProperties" in kinds:
            return "partially open"
        if self.unions or kinds - _NON_ANNOTATING:
            return "undetermined"  # alternatives or unmodelled keywords may admit other names
        if extra.is_bottom:
            return "closed"
        return "open" if extra.is_top else "partially open"

    def key(self) -> str:
        """Canonical text of the constraints (annotations excluded): equal keys, equal schemas."""
        if self._key is None:
            struct = {
                "kinds": sorted(self.kinds),
                "enum": None if self.enum is None else sorted(_canon(v) for v in self.enum),
                "lo": None if self.lo is None else [str(self.lo.value), self.lo.exclusive],
                "hi": None if self.hi is None else [str(self.hi.value), self.hi.exclusive],
                "multipleOf": sorted(str(m) for m in self.multiple_of),
                "len": [self.min_len, self.max_len],
                "patterns": sorted(self.patterns),
                "formats": sorted(self.formats),
                "gtsRefs": sorted(self.gts_refs),
                "prefix": [p.key() for p in self.prefix],
                "items": None if self.items is None else self.items.key(),
                "array": [self.min_items, self.max_items, self.unique],
                "props": {k: v.key() for k, v in self.props.items()},
                "required": sorted(self.required),
                "additional": None if self.additional is None else self.additional.key(),
                "object": [self.min_props, self.max_props],
                "opaque": sorted(self.opaque),
                "unions": sorted([kw, sorted(a.key() for a in alts)] for kw, alts in self.unions),
            }
            self._key = json.dumps(struct, sort_keys=True, separators=(",", ":"))
        return self._key


_TOP: Final = SchemaNode()
_TOP_KEY: Final = _TOP.key()
_BOTTOM: Final = SchemaNode(kinds=frozenset())


def _child(node: SchemaNode | None) -> SchemaNode:
    return _TOP if node is None else node


def _tighter_lo(x: _Bound | None, y: _Bound | None) -> _Bound | None:
    if x is None or y is None:
        return x or y
    if x.value != y.value:
        return x if x.value > y.value else y
    return x if x.exclusive else y


def _tighter_hi(x: _Bound | None, y: _Bound | None) -> _Bound | None:
    if x is None or y is None:
        return x or y
    if x.value != y.value:
        return x if x.value < y.value else y
    return x if x.exclusive else y


def _min_opt(x: int | None, y: int | None) -> int | None:
    if x is None or y is None:
        return x if y is None else y
    return min(x, y)


def _meet_opt(x: SchemaNode | None, y: SchemaNode | None) -> SchemaNode | None:
    if x is None or y is None:
        return x or y
    return _meet(x, y)


def _meet(a: SchemaNode, b: SchemaNode) -> SchemaNode:
    """The conjunction of two nodes (``allOf``), exact for every modelled keyword."""
    if a is b or b.is_top:
        return a
    if a.is_top:
        return b
    enum = a.enum if b.enum is None else b.enum
    if a.enum is not None and b.enum is not None:
        allowed = {_canon(v) for v in b.enum}
        enum = tuple(v for v in a.enum if _canon(v) in allowed)
    width = max(len(a.prefix), len(b.prefix))
    names = list(a.props) + [k for k in b.props if k not in a.props]
    return SchemaNode(
        kinds=a.kinds & b.kinds,
        enum=enum,
        lo=_tighter_lo(a.lo, b.lo),
        hi=_tighter_hi(a.hi, b.hi),
        multiple_of=a.multiple_of | b.multiple_of,
        min_len=max(a.min_len, b.min_len),
        max_len=_min_opt(a.max_len, b.max_len),
        patterns=a.patterns | b.patterns,
        formats=a.formats | b.formats,
        gts_refs=a.gts_refs | b.gts_refs,
        prefix=tuple(_meet(a.item_at(i), b.item_at(i)) for i in range(width)),
        items=_meet_opt(a.items, b.items),
        min_items=max(a.min_items, b.min_items),
        max_items=_min_opt(a.max_items, b.max_items),
        unique=a.unique or b.unique,
        # Per name: what each conjunct demands of it, its declared schema or its undeclared one.
        props={k: _meet(a.value_for(k), b.value_for(k)) for k in names},
        required=a.required | b.required,
        additional=_meet_opt(a.additional, b.additional),
        min_props=max(a.min_props, b.min_props),
        max_props=_min_opt(a.max_props, b.max_props),
        opaque=a.opaque | b.opaque,
        unions=a.unions + tuple(u for u in b.unions if u not in a.unions),
        default=a.default if a.default is not None else b.default,
    )


# -- resolution: JSON Schema document -> SchemaNode ---------------------------------------------


class _InconclusiveError(Exception):
    """The schemas cannot be interpreted (unresolvable reference, dialect mismatch)."""


# Keywords interpreted: type, enum, const, numeric/string/array/object bounds, format, pattern,
# x-gts-ref, (prefix)items, properties, required, additionalProperties, $ref, allOf, anyOf, oneOf,
# and unevaluatedProperties (2019-09+). Annotations (title, description, default, examples, ...)
# do not change Valid(S) (§4.3), and keywords unknown to the dialect are ignored as validators do.
# Kept as opaque constraints: compared only for equality (with references inlined).
_OPAQUE: Final = frozenset(
    {
        "not", "if", "contains", "minContains", "maxContains", "dependencies",
        "dependentRequired", "dependentSchemas", "propertyNames", "patternProperties",
    }
)  # fmt: skip
# Their meaning depends on the surrounding evaluation: equal only within one identical document.
_CONTEXTUAL: Final = frozenset({"unevaluatedItems", "$dynamicRef", "$recursiveRef"})
# Opaque keywords that never mark a property as evaluated, so unevaluatedProperties stays exact.
_NON_ANNOTATING: Final = frozenset(
    {"not", "contains", "minContains", "maxContains", "dependentRequired", "type", "x-gts-ref"}
)
_MODERN: Final = frozenset({"2019-09", "2020-12"})


def _pointer(document: Any, fragment: str) -> Any:
    target = resolve_pointer(document, fragment)
    if target is NOT_FOUND:
        raise _InconclusiveError(f"$ref fragment {fragment!r} does not resolve")
    return target


class _Resolver:
    """Builds the effective SchemaNode of a schema: ``$ref`` inlined, ``allOf`` composed."""

    def __init__(self, dialect: str, store: GtsStore | None, type_id: str) -> None:
        self.dialect = dialect
        self.store = store
        self.type_id = type_id
        self._stack: list[str] = []
        self._memo: dict[str, SchemaNode] = {}
        self._doc_keys: dict[int, str] = {}

    def doc_key(self, document: Any) -> str:
        found = self._doc_keys.get(id(document))
        if found is None:
            digest = hashlib.sha256(_canon(document).encode()).hexdigest()[:24]
            found = self._doc_keys[id(document)] = f"doc:{digest}"
        return found

    def lookup(self, ref: str, document: Any) -> tuple[str, Any, Any] | None:
        """(key, target schema, target document), or None for a reference form not supported."""
        if ref.startswith("gts://"):
            base, _, fragment = ref[len("gts://") :].partition("#")
            entity = self.store.get(base) if self.store is not None else None
            if entity is None or not entity.is_type:
                raise _InconclusiveError(f"$ref {ref!r} does not name a registered type schema")
            target_doc: Any = entity.content
            found = schema_dialect(target_doc)
            if found != self.dialect:
                raise _InconclusiveError(
                    f"$ref {ref!r} declares dialect {found or 'none'}, not {self.dialect}"
                )
            key = f"gts://{base}"
        elif ref.startswith("#"):
            fragment, target_doc, key = ref[1:], document, self.doc_key(document)
        else:
            return None
        if fragment and not fragment.startswith("/"):
            return None  # anchors: not modelled
        return f"{key}#{fragment}", _pointer(target_doc, fragment), target_doc

    def _cycle_marker(self, key: str, target_doc: Any) -> dict[str, str]:
        marker = {"cycle": key}
        if "/$id" in _canon(target_doc):
            marker["leaf"] = self.type_id  # an inner "/$id" differs per leaf type
        return marker

    def raw(self, value: Any, document: Any, seen: frozenset[str] = frozenset()) -> Any:
        """The subschema as JSON with references inlined: comparable across documents."""
        if isinstance(value, list):
            return [self.raw(v, document, seen) for v in value]
        if not isinstance(value, Mapping):
            return value
        out: dict[str, Any] = {}
        for name, sub in value.items():
            if name == "x-gts-ref" and sub == "/$id":
                out[name] = {"/$id": self.type_id}
            elif name == "$ref" and isinstance(sub, str):
                found = self.lookup(sub, document)
                if found is None:
                    out[name] = {"unsupported": sub, "doc": self.doc_key(document)}
                elif found[0] in seen:
                    out[name] = self._cycle_marker(found[0], found[2])
                else:
                    out[name] = self.raw(found[1], found[2], seen | {found[0]})
            else:
                out[name] = self.raw(sub, document, seen)
        return out

    def node(self, schema: Any, document: Any) -> SchemaNode:
        if schema is True:
            return _TOP
        if schema is False:
            return _BOTTOM
        if not isinstance(schema, Mapping):
            return SchemaNode(opaque=frozenset({("invalid-schema", _canon(schema))}))
        ref = schema.get("$ref")
        if isinstance(ref, str) and self.dialect in _LEGACY_REF:
            return self.ref_node(ref, document)
        node = self._own(schema, document)
        if isinstance(ref, str):
            node = _meet(node, self.ref_node(ref, document))
        all_of = schema.get("allOf")
        if isinstance(all_of, list):
            for sub in all_of:
                node = _meet(node, self.node(sub, document))
        if "unevaluatedProperties" in schema and self.dialect in _MODERN:
            node = self._unevaluated(node, schema["unevaluatedProperties"], document)
        return node

    def _unevaluated(self, node: SchemaNode, schema: Any, document: Any) -> SchemaNode:
        """Apply ``unevaluatedProperties`` to the level it closes (§4.4).

        Without conditional applicators at this level, the evaluated names are exactly the ones
        declared by the composed ``properties``; any ``additionalProperties`` evaluates them all.
        """
        if node.unions or any(kw not in _NON_ANNOTATING for kw, _ in node.opaque):
            where = {"value": self.raw(schema, document), "doc": self.doc_key(document)}
            marker = ("unevaluatedProperties", _canon(where))
            return replace(node, opaque=node.opaque | {marker}, _key=None)
        if node.additional is not None:
            return node
        return replace(node, additional=self.node(schema, document), _key=None)

    def ref_node(self, ref: str, document: Any) -> SchemaNode:
        found = self.lookup(ref, document)
        if found is None:
            marker = {"unsupported": ref, "doc": self.doc_key(document)}
            return SchemaNode(opaque=frozenset({("$ref", _canon(marker))}))
        key, target, target_doc = found
        if key in self._stack:
            marker = self._cycle_marker(key, target_doc)
            return SchemaNode(opaque=frozenset({("$ref", _canon(marker))}))
        memo = self._memo.get(key)
        if memo is None:
            self._stack.append(key)
            try:
                memo = self._memo[key] = self.node(target, target_doc)
            finally:
                self._stack.pop()
        return memo

    def _own(self, s: Mapping[str, Any], document: Any) -> SchemaNode:
        node = SchemaNode()
        opaque: set[tuple[str, str]] = set()
        self._own_scalars(s, node, opaque)
        self._own_arrays(s, document, node, opaque)
        self._own_objects(s, document, node, opaque)
        for name in _OPAQUE - {"patternProperties", "propertyNames"}:
            if name not in s:
                continue
            if name == "not" and (s[name] is True or s[name] == {}):
                node.kinds = frozenset()  # {"not": {}} rejects everything (§4.4)
            elif name == "if":
                branches = {k: s[k] for k in ("if", "then", "else") if k in s}
                if len(branches) > 1:  # "if" alone constrains nothing
                    opaque.add(("if", _canon(self.raw(branches, document))))
            else:
                opaque.add((name, _canon(self.raw(s[name], document))))
        node.unions = tuple(
            (name, tuple(self.node(alt, document) for alt in s[name]))
            for name in ("anyOf", "oneOf")
            if isinstance(s.get(name), list) and s[name]
        )
        for name in (_CONTEXTUAL & s.keys()) if self.dialect in _MODERN else ():
            where = {"value": self.raw(s[name], document), "doc": self.doc_key(document)}
            opaque.add((name, _canon(where)))
        node.opaque = frozenset(opaque)
        if "default" in s:
            node.default = (s["default"],)
        return node

    def _own_scalars(self, s: Mapping[str, Any], node: SchemaNode, opaque: set[Any]) -> None:
        if "type" in s:
            names = s["type"] if isinstance(s["type"], list) else [s["type"]]
            known = [_TYPE_KINDS[n] for n in names if isinstance(n, str) and n in _TYPE_KINDS]
            if len(known) != len(names):  # not a type name of the dialect: keep it uninterpreted
                opaque.add(("type", _canon(s["type"])))
            else:
                node.kinds = frozenset().union(*known)
        if isinstance(s.get("enum"), list):
            node.enum = tuple(s["enum"])
        if "const" in s:
            const = _canon(s["const"])
            values = node.enum if node.enum is not None else (s["const"],)
            node.enum = tuple(v for v in values if _canon(v) == const)
        self._own_numbers(s, node, opaque)
        if isinstance(s.get("minLength"), int):
            node.min_len = max(0, s["minLength"])
        if isinstance(s.get("maxLength"), int):
            node.max_len = max(0, s["maxLength"])
        if isinstance(s.get("pattern"), str):
            node.patterns = frozenset({s["pattern"]})
        if isinstance(s.get("format"), str):
            node.formats = frozenset({s["format"]})
        ref = s.get("x-gts-ref")
        if isinstance(ref, str):
            node.gts_refs = frozenset({self.type_id if ref == "/$id" and self.type_id else ref})
        elif ref is not None:
            opaque.add(("x-gts-ref", _canon(ref)))

    def _own_numbers(self, s: Mapping[str, Any], node: SchemaNode, opaque: set[Any]) -> None:
        for name, exclusive in (("minimum", False), ("exclusiveMinimum", True)):
            value = _fraction(s.get(name))
            if value is not None:
                node.lo = _tighter_lo(node.lo, _Bound(value, exclusive))
        for name, exclusive in (("maximum", False), ("exclusiveMaximum", True)):
            value = _fraction(s.get(name))
            if value is not None:
                node.hi = _tighter_hi(node.hi, _Bound(value, exclusive))
        step = _fraction(s.get("multipleOf"))
        if step is not None and step > 0:
            node.multiple_of = frozenset({step})
        elif "multipleOf" in s:
            opaque.add(("multipleOf", _canon(s["multipleOf"])))

    def _own_arrays(
        self, s: Mapping[str, Any], document: Any, node: SchemaNode, opaque: set[Any]
    ) -> None:
        items = s.get("items")
        if self.dialect == "2020-12":
            if isinstance(s.get("prefixItems"), list):
                node.prefix = tuple(self.node(p, document) for p in s["prefixItems"])
            if items is not None:
                node.items = self.node(items, document)
        elif isinstance(items, list):
            node.prefix = tuple(self.node(p, document) for p in items)
            if "additionalItems" in s:
                node.items = self.node(s["additionalItems"], document)
        elif items is not None:
            node.items = self.node(items, document)
        if isinstance(s.get("minItems"), int):
            node.min_items = max(0, s["minItems"])
        if isinstance(s.get("maxItems"), int):
            node.max_items = max(0, s["maxItems"])
        node.unique = s.get("uniqueItems") is True

    def _own_objects(
        self, s: Mapping[str, Any], document: Any, node: SchemaNode, opaque: set[Any]
    ) -> None:
        props = s.get("properties")
        if isinstance(props, Mapping):
            node.props = {str(k): self.node(v, document) for k, v in props.items()}
        if isinstance(s.get("required"), list):
            node.required = frozenset(str(r) for r in s["required"])
        if isinstance(s.get("minProperties"), int):
            node.min_props = max(0, s["minProperties"])
        if isinstance(s.get("maxProperties"), int):
            node.max_props = max(0, s["maxProperties"])
        if s.get("patternProperties") or "propertyNames" in s:
            # Which names count as undeclared now depends on patterns: keep the level whole.
            level = {
                k: s[k]
                for k in (
                    "properties",
                    "patternProperties",
                    "additionalProperties",
                    "propertyNames",
                )
                if k in s
            }
            opaque.add(("patternProperties", _canon(self.raw(level, document))))
        elif "additionalProperties" in s:
            node.additional = self.node(s["additionalProperties"], document)


# -- the comparison ------------------------------------------------------------------------------

_MAX_DEPTH: Final = 24
_MAX_CANDIDATES: Final = 64
_MAX_STEPS: Final = 20_000  # comparisons per direction: alternatives multiply them
_FORMAT_SAMPLES: Final[dict[str, str]] = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00Z",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "iri": "https://example.com/",
    "regex": "^a$",
    "duration": "P1D",
}
_STRING_PROBES: Final = ("a", "", "x", "A", "0", "1", "ab", "abc", "a1", "a_b", "a-b", "a.b", "ABC")
_SAMPLE_KINDS: Final = ("string", "integer", "fraction", "boolean", "null", "object", "array")
# Order in which values of a no-longer-admitted kind are tried: simplest counterexamples first.
_WITNESS_KINDS: Final = ("null", "boolean", "integer", "fraction", "string", "object", "array")


@dataclass(slots=True)
class _Finding:
    """Outcome of one inclusion proof attempt at one location."""

    proven: bool = True
    reasons: list[str] = field(default_factory=list)
    candidates: list[Any] = field(default_factory=list)

    def fail(self, reason: str, candidates: list[Any] | None = None) -> None:
        self.proven = False
        self.reasons.append(reason)
        if candidates:
            self.candidates.extend(candidates[: max(0, _MAX_CANDIDATES - len(self.candidates))])

    def fail_all(self, reasons: list[str], candidates: list[Any]) -> None:
        self.proven = False
        self.reasons.extend(reasons)
        self.candidates.extend(candidates[: max(0, _MAX_CANDIDATES - len(self.candidates))])


def _where(path: str) -> str:
    return path or "/"


def _kind_name(kind: str) -> str:
    return "non-integer number" if kind == "fraction" else kind


class _Comparer:
    """Proves ``Valid(a) ⊆ Valid(b)`` on SchemaNodes and proposes counterexamples when it cannot."""

    def __init__(self) -> None:
        self._checker = validation.FORMAT_CHECKER
        self._budget = _MAX_STEPS

    # evaluation of a value against a node: True, False, or None (undecidable here)

    def kind_of(self, value: Any) -> str | None:
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "boolean"
        if isinstance(value, int):
            return "integer"
        if isinstance(value, float):
            return "integer" if value.is_integer() else "fraction"
        if isinstance(value, str):
            return "string"
        if isinstance(value, list):
            return "array"
        return "object" if isinstance(value, Mapping) else None

    def accepts(self, node: SchemaNode, value: Any) -> bool | None:
        kind = self.kind_of(value)
        if kind is None or kind not in node.kinds:
            return False
        if node.enum is not None and _canon(value) not in {_canon(v) for v in node.enum}:
            return False
        verdicts: list[bool | None] = [None] if node.opaque else []
        if kind in _NUMERIC:
            verdicts.append(self._accepts_number(node, value))
        elif kind == "string":
            verdicts.append(self._accepts_string(node, value))
        elif kind == "array":
            verdicts.append(self._accepts_array(node, value))
        elif kind == "object":
            verdicts.append(self._accepts_object(node, value))
        verdicts.extend(self._accepts_union(kw, alts, value) for kw, alts in node.unions)
        if False in verdicts:
            return False
        return None if None in verdicts else True

    def _accepts_union(self, keyword: str, alts: tuple[SchemaNode, ...], value: Any) -> bool | None:
        results = [self.accepts(alt, value) for alt in alts]
        passed = results.count(True)
        if keyword == "anyOf":
            return True if passed else (None if None in results else False)
        if passed > 1:
            return False
        if None in results:
            return None
        return passed == 1

    def _accepts_number(self, node: SchemaNode, value: Any) -> bool:
        number = _fraction(value)
        if number is None:
            return False
        if node.lo is not None and (
            number < node.lo.value or (node.lo.exclusive and number == node.lo.value)
        ):
            return False
        if node.hi is not None and (
            number > node.hi.value or (node.hi.exclusive and number == node.hi.value)
        ):
            return False
        return all((number / step).denominator == 1 for step in node.multiple_of)

    def _accepts_string(self, node: SchemaNode, value: str) -> bool | None:
        if len(value) < node.min_len or (node.max_len is not None and len(value) > node.max_len):
            return False
        matches = [pattern_matches(p, value) for p in node.patterns]
        if False in matches:
            return False
        if None in matches:
            return None
        if not all(self._checker.conforms(value, f) for f in node.formats):
            return False
        return all(gts_ref_matches(ref, value) for ref in node.gts_refs) or (
            None if "/$id" in node.gts_refs else False
        )

    def _accepts_array(self, node: SchemaNode, value: list[Any]) -> bool | None:
        if len(value) < node.min_items or (
            node.max_items is not None and len(value) > node.max_items
        ):
            return False
        if node.unique and len({_canon(v) for v in value}) != len(value):
            return False
        results = [self.accepts(node.item_at(i), v) for i, v in enumerate(value)]
        if False in results:
            return False
        return None if None in results else True

    def _accepts_object(self, node: SchemaNode, value: Mapping[str, Any]) -> bool | None:
        if not node.required <= value.keys() or len(value) < node.min_props:
            return False
        if node.max_props is not None and len(value) > node.max_props:
            return False
        results = [self.accepts(node.value_for(k), v) for k, v in value.items()]
        if False in results:
            return False
        return None if None in results else True

    # sample values (hopefully) admitted by a node, used to build counterexamples

    def samples(self, node: SchemaNode, depth: int) -> list[Any]:
        if node.unions and depth <= _MAX_DEPTH:
            rest = replace(node, unions=node.unions[1:], _key=None)
            found = [
                v for alt in node.unions[0][1] for v in self.samples(_meet(rest, alt), depth + 1)
            ]
            return [v for v in found if self.accepts(node, v) is not False]
        if node.enum is not None:
            return [v for v in node.enum if self.accepts(node, v) is not False][:4]
        out: list[Any] = []
        for kind in _SAMPLE_KINDS:
            if kind in node.kinds:
                out.extend(self.samples_of_kind(node, kind, depth))
        return out

    def first_sample(self, node: SchemaNode, depth: int) -> tuple[bool, Any]:
        for value in self.samples(node, depth):
            if self.accepts(node, value) is not False:
                return True, value
        return False, None

    def samples_of_kind(self, node: SchemaNode, kind: str, depth: int) -> list[Any]:
        if depth > _MAX_DEPTH:
            return []
        if node.unions:
            rest = replace(node, unions=node.unions[1:], _key=None)
            alts = node.unions[0][1]
            found = [v for a in alts for v in self.samples_of_kind(_meet(rest, a), kind, depth + 1)]
            return [v for v in found if self.accepts(node, v) is not False][:4]
        pool: list[Any]
        if kind == "null":
            pool = [None]
        elif kind == "boolean":
            pool = [False, True]
        elif kind in _NUMERIC:
            pool = [v for v in self.number_pool(node, node) if self.kind_of(v) == kind]
        elif kind == "string":
            pool = self.string_pool(node, node)
        elif kind == "array":
            pool = [v for v in (self.array_host(node, -1, None, depth),) if v is not None]
        else:
            pool = [v for v in (self.object_host(node, depth),) if v is not None]
        return [v for v in pool if self.accepts(node, v) is not False][:4]

    def number_pool(self, a: SchemaNode, b: SchemaNode) -> list[int | float]:
        points: set[Fraction] = {Fraction(0), Fraction(1), Fraction(-1), Fraction(1, 2)}
        steps = a.multiple_of | b.multiple_of
        for bound in (a.lo, a.hi, b.lo, b.hi):
            if bound is None:
                continue
            v = bound.value
            points |= {v, v - 1, v + 1, v - Fraction(1, 2), v + Fraction(1, 2)}
            points |= {Fraction(math.floor(v)), Fraction(math.ceil(v))}
            points |= {Fraction(math.floor(v) - 1), Fraction(math.ceil(v) + 1)}
            for step in steps:
                base = math.floor(v / step)
                points |= {step * (base + d) for d in (-1, 0, 1, 2)}
        for step in steps:
            points |= {step, 2 * step, step / 2, 3 * step / 2, -step}
        return [_number(p) for p in sorted(points, key=lambda p: (abs(p), p))]

    def string_pool(self, a: SchemaNode, b: SchemaNode) -> list[str]:
        pool: list[str] = []
        for ref in sorted(a.gts_refs | b.gts_refs):
            pool.extend(_gts_ref_samples(ref))
        pool.extend(
            _FORMAT_SAMPLES[f] for f in sorted(a.formats | b.formats) if f in _FORMAT_SAMPLES
        )
        lengths = [max(a.min_len, 1), a.min_len, b.min_len, max(b.min_len - 1, 0)]
        lengths += [n for n in (a.max_len, b.max_len) if n is not None]
        lengths += [b.max_len + 1] if b.max_len is not None else []
        pool.extend("a" * n for n in lengths if n <= 4096)
        pool.extend(_STRING_PROBES)
        if a.patterns or b.patterns:
            pool.extend(p * n for p in ("a", "0", "A") for n in (2, 3, 8))
        return list(dict.fromkeys(pool))

    def array_host(self, a: SchemaNode, index: int, value: Any, depth: int) -> list[Any] | None:
        length = max(index + 1, a.min_items)
        out: list[Any] = []
        for i in range(length):
            if i == index:
                out.append(value)
                continue
            ok, sample = self.first_sample(a.item_at(i), depth + 1)
            if not ok:
                return None
            out.append(sample)
        return out

    def object_host(
        self,
        a: SchemaNode,
        depth: int,
        omit: str | None = None,
        extra: tuple[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        for name in sorted(a.required):
            if name == omit:
                continue
            ok, sample = self.first_sample(a.value_for(name), depth + 1)
            if not ok:
                return None
            out[name] = sample
        if extra is not None:
            out[extra[0]] = extra[1]
        return out

    # the proof

    def sub(self, a: SchemaNode, b: SchemaNode, path: str, depth: int) -> _Finding:
        """Try to prove Valid(a) ⊆ Valid(b) at ``path``."""
        found = _Finding()
        if b.is_top or a.key() == b.key():
            return found
        live = _live_kinds(a)
        if not live or (a.enum is not None and not a.enum):
            return found  # the source admits nothing here
        if live != a.kinds:
            a = replace(a, kinds=live, _key=None)
        where = _where(path)
        if depth > _MAX_DEPTH:
            found.fail(f"{where}: nesting too deep to compare")
            return found
        if b.is_bottom:
            found.fail(f"{where}: nothing is admitted here any more", self.samples(a, depth))
            return found
        self._budget -= 1
        if self._budget < 0:
            found.fail(f"{where}: the schemas are too complex to compare")
            return found
        if a.enum is not None:
            self._sub_values(a, b, list(a.enum), where, found)
            return found
        if a.unions:
            self._sub_union_source(a, b, path, depth, found)
            return found
        if b.unions:
            self._sub_union_target(a, b, path, depth, found)
            return found
        missing = sorted({kw for kw, _ in b.opaque - a.opaque})
        if missing:
            found.fail(f"{where}: cannot compare differing {', '.join(missing)}")
        dropped = [k for k in _WITNESS_KINDS if k in a.kinds - b.kinds]
        if dropped:
            samples = [v for k in dropped for v in self.samples_of_kind(a, k, depth)]
            names = ", ".join(_kind_name(k) for k in dropped)
            found.fail(f"{where}: {names} values are no longer admitted", samples)
        if b.enum is not None:
            self._sub_enum(a, b, where, depth, found)
            return found
        common = a.kinds & b.kinds
        if common & _NUMERIC:
            self._sub_numbers(a, b, common, where, found)
        if "string" in common:
            self._sub_strings(a, b, where, found)
        if "array" in common:
            self._sub_arrays(a, b, path, depth, found)
        if "object" in common:
            self._sub_objects(a, b, path, depth, found)
        return found

    def _sub_union_source(
        self, a: SchemaNode, b: SchemaNode, path: str, depth: int, found: _Finding
    ) -> None:
        # Valid(rest and (x1 or ... or xn)) ⊆ Valid(b) iff every (rest and xi) is included.
        # Reading a oneOf as anyOf only enlarges the source, so a proof stays sound.
        rest = replace(a, unions=a.unions[1:], _key=None)
        for alt in a.unions[0][1]:
            inner = self.sub(_meet(rest, alt), b, path, depth + 1)
            if not inner.proven:
                found.fail_all(inner.reasons, inner.candidates)

    def _sub_union_target(
        self, a: SchemaNode, b: SchemaNode, path: str, depth: int, found: _Finding
    ) -> None:
        where = _where(path)
        inner = self.sub(a, replace(b, unions=(), _key=None), path, depth + 1)
        if not inner.proven:
            found.fail_all(inner.reasons, inner.candidates)
        for keyword, alts in b.unions:
            if keyword == "oneOf" and not _pairwise_disjoint(alts):
                found.fail(f"{where}: cannot compare oneOf with overlapping alternatives")
                continue
            # Each kind of value the source admits must fall within one alternative.
            for kind in sorted(a.kinds):
                part = replace(a, kinds=frozenset({kind}), _key=None)
                tries = [self.sub(part, alt, path, depth + 1) for alt in alts]
                if not any(t.proven for t in tries):
                    witnesses = [c for t in tries for c in t.candidates]
                    found.fail(
                        f"{where}: {_kind_name(kind)} values outside every {keyword} alternative",
                        witnesses,
                    )

    def _sub_values(
        self, a: SchemaNode, b: SchemaNode, values: list[Any], where: str, found: _Finding
    ) -> None:
        for value in values:
            if self.accepts(a, value) is False:
                continue
            verdict = self.accepts(b, value)
            if verdict is False:
                found.fail(f"{where}: value {_short(value)} is no longer admitted", [value])
            elif verdict is None:
                found.fail(f"{where}: cannot decide whether {_short(value)} is still admitted")

    def _sub_enum(
        self, a: SchemaNode, b: SchemaNode, where: str, depth: int, found: _Finding
    ) -> None:
        if a.kinds <= {"null", "boolean"}:
            self._sub_values(a, b, [None, False, True], where, found)
            return
        allowed = {_canon(v) for v in b.enum or ()}
        outside = [
            v
            for kind in sorted(a.kinds)
            for v in self.samples_of_kind(a, kind, depth)
            if _canon(v) not in allowed
        ]
        found.fail(f"{where}: values are now restricted to {_short(list(b.enum or ()))}", outside)

    def _sub_numbers(
        self, a: SchemaNode, b: SchemaNode, common: frozenset[str], where: str, found: _Finding
    ) -> None:
        integers = not (common & _NUMERIC) - {"integer"}
        ok = _lo_within(a.lo, b.lo, integers) and _hi_within(a.hi, b.hi, integers)
        for step in b.multiple_of:
            covered = any((s / step).denominator == 1 for s in a.multiple_of)
            if not (covered or (integers and (1 / step).denominator == 1)):
                ok = False
        if not ok:
            pool = [
                v
                for v in self.number_pool(a, b)
                if self.kind_of(v) in common
                and self.accepts(a, v) is not False
                and self.accepts(b, v) is False
            ]
            found.fail(f"{where}: numeric range or multipleOf is narrower", pool)

    def _sub_strings(self, a: SchemaNode, b: SchemaNode, where: str, found: _Finding) -> None:
        reasons = []
        if a.min_len < b.min_len or (
            b.max_len is not None and (a.max_len is None or a.max_len > b.max_len)
        ):
            reasons.append("length bounds are narrower")
        if not b.patterns <= a.patterns:
            reasons.append(f"pattern {', '.join(sorted(b.patterns - a.patterns))} is new")
        if not b.formats <= a.formats:
            reasons.append(f"format {', '.join(sorted(b.formats - a.formats))} is new")
        if not b.gts_refs <= a.gts_refs:
            reasons.append(f"x-gts-ref {', '.join(sorted(b.gts_refs - a.gts_refs))} is new")
        if reasons:
            pool = [
                s
                for s in self.string_pool(a, b)
                if self.accepts(a, s) is not False and self.accepts(b, s) is False
            ]
            found.fail(f"{where}: string {'; '.join(reasons)}", pool)

    def _sub_arrays(
        self, a: SchemaNode, b: SchemaNode, path: str, depth: int, found: _Finding
    ) -> None:
        where = _where(path)
        hosts: list[Any] = []
        if a.min_items < b.min_items or (
            b.max_items is not None and (a.max_items is None or a.max_items > b.max_items)
        ):
            sizes = [n for n in (b.min_items - 1, (b.max_items or 0) + 1) if n >= 0]
            for size in sizes:
                ok, item = self.first_sample(_child(a.items), depth + 1)
                if ok:
                    hosts.append([item] * size)
            found.fail(f"{where}: array length bounds are narrower", hosts)
        if b.unique and not a.unique and (a.max_items is None or a.max_items > 1):
            ok, item = self.first_sample(a.item_at(0), depth + 1)
            found.fail(f"{where}: items must now be unique", [[item, item]] if ok else [])
        width = max(len(a.prefix), len(b.prefix))
        for index in range(width + 1):
            if a.max_items is not None and index >= a.max_items:
                break
            item_a = a.item_at(index) if index < width else _child(a.items)
            item_b = b.item_at(index) if index < width else _child(b.items)
            label = f"{path}/{index}" if index < width else f"{path}/*"
            inner = self.sub(item_a, item_b, label, depth + 1)
            if not inner.proven:
                hosts = [self.array_host(a, index, c, depth) for c in inner.candidates]
                found.fail_all(inner.reasons, [h for h in hosts if h is not None])

    def _sub_objects(
        self, a: SchemaNode, b: SchemaNode, path: str, depth: int, found: _Finding
    ) -> None:
        where = _where(path)
        for name in sorted(b.required - a.required):
            host = self.object_host(a, depth, omit=name)
            found.fail(
                f"{where}: property {name!r} is now required", [] if host is None else [host]
            )
        if a.min_props < b.min_props or (
            b.max_props is not None and (a.max_props is None or a.max_props > b.max_props)
        ):
            found.fail(f"{where}: property count bounds are narrower")
        for name in sorted(a.props.keys() | b.props.keys()):
            value_a = a.value_for(name)
            if value_a.is_bottom:
                continue
            inner = self.sub(value_a, b.value_for(name), f"{path}/{name}", depth + 1)
            if not inner.proven:
                hosts = [self.object_host(a, depth, extra=(name, c)) for c in inner.candidates]
                found.fail_all(inner.reasons, [h for h in hosts if h is not None])
        fresh = _fresh_name(a.props.keys() | b.props.keys())
        inner = self.sub(
            _child(a.additional), _child(b.additional), f"{path}/<undeclared>", depth + 1
        )
        if not inner.proven:
            hosts = [self.object_host(a, depth, extra=(fresh, c)) for c in inner.candidates]
            found.fail_all(inner.reasons, [h for h in hosts if h is not None])


def _gts_ref_samples(operand: str) -> list[str]:
    """Identifiers an ``x-gts-ref`` operand admits: itself, or a pattern's prefix completed."""
    if "*" not in operand:
        return [operand, operand + "x.zz.zz.zz.v1~"] if operand.endswith("~") else [operand]
    prefix = operand[: operand.index("*")]
    if prefix.endswith("~"):
        return [prefix, prefix + "x.zz.zz.zz.v1~"]
    head, _, segment = prefix.rpartition("~")
    chain = f"{head}~" if head else ""
    if not head:
        chain, segment = "gts.", segment.removeprefix("gts.")
    tokens = [t for t in segment.split(".") if t]
    names = (tokens[:4] + ["zz"] * 4)[:4]
    version = tokens[4:] or ["v1"]
    if len(version) == 1:
        version.append("0")
    return [f"{chain}{'.'.join(names)}.{'.'.join(version[:2])}~"]


def _live_kinds(node: SchemaNode, depth: int = 0) -> frozenset[str]:
    """The kinds for which the node's own constraints can be met.

    Only certain emptiness is removed (contradictory bounds, a required property that admits
    nothing), so the result is exact as far as it goes.
    """
    dead: set[str] = set()
    required_dead = depth < 8 and any(
        node.value_for(name).is_bottom or not _live_kinds(node.value_for(name), depth + 1)
        for name in node.required
    )
    if required_dead or (
        node.max_props is not None and node.max_props < max(node.min_props, len(node.required))
    ):
        dead.add("object")
    if node.max_len is not None and node.max_len < node.min_len:
        dead.add("string")
    if node.max_items is not None and node.max_items < node.min_items:
        dead.add("array")
    if node.lo is not None and node.hi is not None:
        lo, hi = node.lo, node.hi
        if lo.value > hi.value or (lo.value == hi.value and (lo.exclusive or hi.exclusive)):
            dead |= _NUMERIC
        elif _int_lo(lo) > _int_hi(hi):
            dead.add("integer")
    return node.kinds - dead


def _pairwise_disjoint(alts: tuple[SchemaNode, ...]) -> bool:
    """Whether no value satisfies two alternatives: then oneOf means anyOf."""
    return all(_disjoint(x, y) for i, x in enumerate(alts) for y in alts[i + 1 :])


def _disjoint(x: SchemaNode, y: SchemaNode) -> bool:
    shared = x.kinds & y.kinds
    if not shared:
        return True
    if x.enum is not None and y.enum is not None:
        return not {_canon(v) for v in x.enum} & {_canon(v) for v in y.enum}
    if shared != {"object"}:
        return False
    # Objects told apart by a required discriminator property with disjoint values.
    for name in x.required & y.required:
        tag_x, tag_y = x.value_for(name), y.value_for(name)
        if tag_x.enum is not None and tag_y.enum is not None and _disjoint(tag_x, tag_y):
            return True
    return False


def _int_lo(bound: _Bound) -> int:
    return math.floor(bound.value) + 1 if bound.exclusive else math.ceil(bound.value)


def _int_hi(bound: _Bound) -> int:
    return math.ceil(bound.value) - 1 if bound.exclusive else math.floor(bound.value)


def _lo_within(a: _Bound | None, b: _Bound | None, integers: bool) -> bool:
    """Whether lower bound ``a`` is at least as tight as ``b`` (on integers only, if so told)."""
    if b is None:
        return True
    if a is None:
        return False
    if integers:
        return _int_lo(a) >= _int_lo(b)
    if a.value != b.value:
        return a.value > b.value
    return a.exclusive or not b.exclusive


def _hi_within(a: _Bound | None, b: _Bound | None, integers: bool) -> bool:
    if b is None:
        return True
    if a is None:
        return False
    if integers:
        return _int_hi(a) <= _int_hi(b)
    if a.value != b.value:
        return a.value < b.value
    return a.exclusive or not b.exclusive


def _fresh_name(taken: set[str] | frozenset[str] | Any) -> str:
    name, n = "undeclared", 0
    while name in taken:
        n += 1
        name = f"undeclared_{n}"
    return name


# -- verdicts ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DirectionResult:
    """One relation's verdict, why, and for ``incompatible`` the instance that proves it."""

    verdict: Verdict
    reasons: tuple[str, ...] = ()
    counterexample: tuple[Any] | None = None  # (instance,): valid under one side, not the other


@dataclass(frozen=True, slots=True)
class CompatibilityReport:
    """Backward (Valid(old) ⊆ Valid(new)) and forward (Valid(new) ⊆ Valid(old)) results."""

    backward: DirectionResult
    forward: DirectionResult

    @property
    def full(self) -> Verdict:
        """Compatible when both are; incompatible when either is; otherwise unknown."""
        verdicts = {self.backward.verdict, self.forward.verdict}
        if verdicts == {COMPATIBLE}:
            return COMPATIBLE
        return INCOMPATIBLE if INCOMPATIBLE in verdicts else UNKNOWN

    def fields(self) -> dict[str, Any]:
        """The OP#8/OP#9 verdict fields, with the reasons of each direction."""
        return {
            "backward_compatibility": self.backward.verdict,
            "forward_compatibility": self.forward.verdict,
            "full_compatibility": self.full,
            "backward_errors": list(self.backward.reasons),
            "forward_errors": list(self.forward.reasons),
        }


def _undecided(reason: str) -> CompatibilityReport:
    result = DirectionResult(UNKNOWN, (reason,))
    return CompatibilityReport(result, result)


def _direction(
    comparer: _Comparer,
    a: SchemaNode,
    b: SchemaNode,
    checks: tuple[InstanceChecker, InstanceChecker],
    names: tuple[str, str],
) -> DirectionResult:
    found = comparer.sub(a, b, "", 0)
    if found.proven:
        return DirectionResult(COMPATIBLE)
    reasons = tuple(dict.fromkeys(found.reasons))
    seen: set[str] = set()
    for candidate in found.candidates:
        key = _canon(candidate)
        if key in seen:
            continue
        seen.add(key)
        # Only a validator-confirmed instance makes a relation incompatible.
        if checks[0].accepts(candidate) is True and checks[1].accepts(candidate) is False:
            why = checks[1].errors(candidate)[0].message
            proof = (
                f"counterexample {_short(candidate, 600)} is valid under the {names[0]} schema "
                f"and rejected by the {names[1]} schema: {why}"
            )
            return DirectionResult(INCOMPATIBLE, (proof, *reasons), (candidate,))
    return DirectionResult(UNKNOWN, (*reasons, "no counterexample could be confirmed"))


def _schema_type_id(schema: Mapping[str, Any]) -> str:
    raw = schema.get("$id")
    return strip_gts_uri(raw) if isinstance(raw, str) else ""


def resolve_schema(
    schema: Mapping[str, Any], *, store: GtsStore | None = None, type_id: str | None = None
) -> SchemaNode:
    """The resolved effective schema of a Type Schema; raises GtsCompatibilityError."""
    dialect = schema_dialect(schema)
    if dialect not in _SUPPORTED:
        raise GtsCompatibilityError(f"unsupported JSON Schema dialect {dialect or '(none)'}")
    try:
        return _Resolver(dialect, store, type_id or _schema_type_id(schema)).node(schema, schema)
    except _InconclusiveError as exc:
        raise GtsCompatibilityError(str(exc)) from exc


def compare_schemas(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    store: GtsStore | None = None,
    old_type_id: str | None = None,
    new_type_id: str | None = None,
) -> CompatibilityReport:
    """Compare two Type Schema definitions under §4.3; ``store`` resolves their ``gts://`` refs."""
    old_id = old_type_id or _schema_type_id(old)
    new_id = new_type_id or _schema_type_id(new)
    dialect, new_dialect = schema_dialect(old), schema_dialect(new)
    if dialect is None or new_dialect is None:
        return _undecided("a schema declares no $schema dialect")
    if dialect != new_dialect:
        return _undecided(f"different JSON Schema dialects: {dialect} (old), {new_dialect} (new)")
    if dialect not in _SUPPORTED:
        return _undecided(f"unsupported JSON Schema dialect {dialect}")
    try:
        old_node = _Resolver(dialect, store, old_id).node(old, old)
        new_node = _Resolver(dialect, store, new_id).node(new, new)
    except _InconclusiveError as exc:
        return _undecided(str(exc))
    old_check = InstanceChecker(old, store=store, type_id=old_id, dialect=dialect)
    new_check = InstanceChecker(new, store=store, type_id=new_id, dialect=dialect)
    comparer = _Comparer()
    return CompatibilityReport(
        backward=_direction(comparer, old_node, new_node, (old_check, new_check), ("old", "new")),
        forward=_direction(comparer, new_node, old_node, (new_check, old_check), ("new", "old")),
    )


# -- OP#8 ----------------------------------------------------------------------------------------


def parse_type_id(text: str, what: str) -> str:
    """A canonical GTS Type Identifier from user input (``gts://`` allowed); raises GtsError."""
    canonical = strip_gts_uri(text.strip())
    parsed = GtsId.parse(canonical)
    if not parsed.is_type or any(s.is_wildcard for s in parsed.segments):
        raise GtsCompatibilityError(f"{what} {text!r} is not a GTS Type Identifier")
    return parsed.id


def type_schema(store: GtsStore, type_id: str) -> Mapping[str, Any]:
    """The registered Type Schema of ``type_id``; raises GtsCompatibilityError if there is none."""
    entity = store.get(type_id)
    if entity is None:
        raise GtsCompatibilityError(f"type schema {type_id} is not registered")
    if not entity.is_type:
        raise GtsCompatibilityError(f"{type_id} is not a type schema")
    return entity.content


def version_family_mismatch(old_type_id: str, new_type_id: str) -> str | None:
    """Why two type ids are not versions of one type within one MAJOR, or None if they are.

    Every chain segment must name the same vendor, package, namespace, type and MAJOR version;
    only MINOR versions may differ (§4.2).
    """
    old_segments = GtsId.parse(old_type_id).segments
    new_segments = GtsId.parse(new_type_id).segments
    if len(old_segments) != len(new_segments):
        return f"{old_type_id} and {new_type_id} have type chains of different lengths"
    for old, new in zip(old_segments, new_segments, strict=True):
        if (old.vendor, old.package, old.namespace, old.type) != (
            new.vendor,
            new.package,
            new.namespace,
            new.type,
        ):
            return f"{old_type_id} and {new_type_id} are different types"
        if old.ver_major != new.ver_major:
            return (
                f"{old_type_id} and {new_type_id} differ in MAJOR version "
                f"(v{old.ver_major} vs v{new.ver_major}): only MINOR versions are compatible"
            )
    return None


def check_compatibility(store: GtsStore, old_type_id: str, new_type_id: str) -> dict[str, Any]:
    """OP#8: Type Schema evolution compatibility of two MINOR versions of one type.

    Returns the ``/compatibility`` response body: ``old``, ``new``, the three verdicts, and the
    reasons per direction (``backward_errors``, ``forward_errors``; empty when compatible).
    Raises GtsError for invalid or unregistered ids and for ids that are not versions of one
    type within one MAJOR version.
    """
    old_id = parse_type_id(old_type_id, "old_type_id")
    new_id = parse_type_id(new_type_id, "new_type_id")
    mismatch = version_family_mismatch(old_id, new_id)
    if mismatch is not None:
        raise GtsCompatibilityError(mismatch)
    report = compare_schemas(
        type_schema(store, old_id),
        type_schema(store, new_id),
        store=store,
        old_type_id=old_id,
        new_type_id=new_id,
    )
    return {"old": old_id, "new": new_id, **report.fields()}
