"""GTS validation: OP#6 (instances), OP#12 (type schemas), OP#13 (traits) and their dispatch.

Instances are validated with the JSON Schema library ``jsonschema`` in the dialect their type
declares (Draft-07, 2019-09 or 2020-12), with GTS ``$ref`` targets (``gts://...``) retrieved from
the store through a ``referencing`` registry, the §9.2 format assertions, ``x-gts-ref`` as a
keyword, and every regex evaluated on RE2 under the ADR-0006 profile (``pattern``,
``patternProperties`` and the property classification of ``additionalProperties`` and
``unevaluatedProperties``).

Validity is transitive (§9.2): a type is valid only when its ``$id`` ancestors and ``$ref``
targets are; an instance only when its type is; under ``any-valid`` also every ``x-gts-ref``
target. Cycles are cut by assuming an entity valid while it is being validated. Results are cached
across calls with the identity of every registry entry they depended on (``store.get(id) is
entity``), so a changed store invalidates them and snapshots of one store share them. Validation
never writes to the store.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import unquote

import jsonschema
import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema.exceptions import ValidationError, best_match

from hyperspot.platform.gts import refs, traits
from hyperspot.platform.gts.derivation import (
    RefCycleError,
    derivation_problems,
    inline_refs,
    parent_first,
)
from hyperspot.platform.gts.extract import Extraction, extract
from hyperspot.platform.gts.ids import (
    GTS_URI_PREFIX,
    GtsError,
    GtsId,
    GtsIdError,
    is_valid_id,
    match_pattern,
)
from hyperspot.platform.gts.pointers import NOT_FOUND, resolve_pointer
from hyperspot.platform.gts.regexp import check_profile, is_supported, search
from hyperspot.platform.gts.store import GtsEntity, GtsStore, RefValidation

# --- dialects -----------------------------------------------------------------------------------

DIALECT_URIS: dict[str, str] = {
    "draft-07": "http://json-schema.org/draft-07/schema#",
    "2019-09": "https://json-schema.org/draft/2019-09/schema",
    "2020-12": "https://json-schema.org/draft/2020-12/schema",
}
_DIALECT_BY_PATH = {
    "json-schema.org/draft-07/schema": "draft-07",
    "json-schema.org/draft/2019-09/schema": "2019-09",
    "json-schema.org/draft/2020-12/schema": "2020-12",
}
_BASE_CLASSES: dict[str, Any] = {
    "draft-07": jsonschema.Draft7Validator,
    "2019-09": jsonschema.Draft201909Validator,
    "2020-12": jsonschema.Draft202012Validator,
}
_SPECIFICATIONS = {
    "draft-07": referencing.jsonschema.DRAFT7,
    "2019-09": referencing.jsonschema.DRAFT201909,
    "2020-12": referencing.jsonschema.DRAFT202012,
}


def dialect_of(schema: Mapping[str, Any]) -> str:
    """The JSON Schema dialect a type schema declares; raises :class:`GtsError`.

    Draft-07, 2019-09 and 2020-12 are supported; ``http``/``https`` and an empty fragment are
    equivalent spellings of one dialect (§4.3), anything else is refused.
    """
    value = schema.get("$schema")
    if not isinstance(value, str) or not value:
        raise GtsError("$schema must name a supported JSON Schema dialect")
    spelled = value.removesuffix("#")
    for scheme in ("https://", "http://"):
        if spelled.startswith(scheme):
            dialect = _DIALECT_BY_PATH.get(spelled[len(scheme) :])
            if dialect is not None:
                return dialect
    raise GtsError(f"Unsupported JSON Schema dialect: {value}")


def ref_siblings_apply(dialect: str) -> bool:
    """Draft 2019-09+ apply the keywords beside ``$ref``; Draft-07 ignores them."""
    return dialect != "draft-07"


# --- schema positions ---------------------------------------------------------------------------

_COMMON_ONE = ("additionalProperties", "propertyNames", "not", "if", "then", "else", "contains")
_SCHEMA_ONE = {
    "draft-07": frozenset((*_COMMON_ONE, "additionalItems")),
    "2019-09": frozenset(
        (
            *_COMMON_ONE,
            "additionalItems",
            "unevaluatedProperties",
            "unevaluatedItems",
            "contentSchema",
        )
    ),
    "2020-12": frozenset(
        (*_COMMON_ONE, "items", "unevaluatedProperties", "unevaluatedItems", "contentSchema")
    ),
}
_SCHEMA_MAP = {
    "draft-07": frozenset(("properties", "patternProperties", "definitions")),
    "2019-09": frozenset(
        ("properties", "patternProperties", "definitions", "$defs", "dependentSchemas")
    ),
    "2020-12": frozenset(
        ("properties", "patternProperties", "definitions", "$defs", "dependentSchemas")
    ),
}
_SCHEMA_LIST = {
    "draft-07": frozenset(("allOf", "anyOf", "oneOf")),
    "2019-09": frozenset(("allOf", "anyOf", "oneOf")),
    "2020-12": frozenset(("allOf", "anyOf", "oneOf", "prefixItems")),
}


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _children(node: Mapping[str, Any], dialect: str) -> Iterator[tuple[str, Any]]:
    """The schema-valued members of one schema object, by the dialect's applicators."""
    for key, value in node.items():
        if key in _SCHEMA_ONE[dialect]:
            yield f"/{_escape(key)}", value
        elif key in _SCHEMA_MAP[dialect] and isinstance(value, Mapping):
            for name, sub in value.items():
                yield f"/{_escape(key)}/{_escape(name)}", sub
        elif key in _SCHEMA_LIST[dialect] and isinstance(value, list):
            for index, sub in enumerate(value):
                yield f"/{key}/{index}", sub
        elif key == "items" and dialect != "2020-12":
            if isinstance(value, list):
                for index, sub in enumerate(value):
                    yield f"/items/{index}", sub
            else:
                yield "/items", value
        elif key == "dependencies" and dialect == "draft-07" and isinstance(value, Mapping):
            for name, sub in value.items():
                if isinstance(sub, (Mapping, bool)):
                    yield f"/dependencies/{_escape(name)}", sub


def _resolve_pointer(root: Any, fragment: str) -> tuple[bool, Any]:
    target = resolve_pointer(root, fragment)
    return target is not NOT_FOUND, target


def iter_schema_nodes(
    root: Mapping[str, Any], dialect: str
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema object of a type schema document, as (JSON Pointer, subschema).

    Walks the dialect's applicator keywords (inactive branches and definitions included), the
    top-level ``x-gts-traits-schema``, and whatever a local ``$ref`` reaches (which makes an
    unknown keyword's value a schema position). Literal data (``const``, ``enum``, ``default``,
    ``examples``) and unknown keywords are not scanned otherwise.
    """
    queue: deque[tuple[str, Any]] = deque([("", root)])
    seen: set[str] = set()
    while queue:
        path, node = queue.popleft()
        if not isinstance(node, Mapping) or path in seen:
            continue
        seen.add(path)
        yield path, node
        queue.extend((path + sub_path, child) for sub_path, child in _children(node, dialect))
        if not path and isinstance(node.get(traits.TRAITS_SCHEMA), (Mapping, bool)):
            queue.append((f"/{traits.TRAITS_SCHEMA}", node[traits.TRAITS_SCHEMA]))
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            fragment = unquote(ref[1:])
            found, target = _resolve_pointer(root, fragment)
            if found:
                queue.append((fragment, target))


# --- format assertions (§9.2, ADR-0005) --------------------------------------------------------

FORMAT_CHECKER = jsonschema.FormatChecker(formats=())
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_TIME_RE = re.compile(r"(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+")
_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]*")
_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _valid_date(text: str) -> bool:
    match = _DATE_RE.fullmatch(text)
    if match is None:
        return False
    try:
        date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return False
    return True


def _valid_time(text: str) -> bool:
    match = _TIME_RE.fullmatch(text)
    if match is None:
        return False
    hour, minute, second = int(match[1]), int(match[2]), int(match[3])
    if hour > 23 or minute > 59 or second > 60:  # 60: RFC 3339 leap second
        return False
    return match[4] is None or (int(match[5]) <= 23 and int(match[6]) <= 59)


@FORMAT_CHECKER.checks("uuid")
def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or _UUID_RE.fullmatch(value) is not None


@FORMAT_CHECKER.checks("email")
def _is_email(value: object) -> bool:
    return not isinstance(value, str) or _EMAIL_RE.fullmatch(value) is not None


@FORMAT_CHECKER.checks("date-time")
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    day, sep, clock = value.partition("T") if "T" in value else value.partition("t")
    return bool(sep) and _valid_date(day) and _valid_time(clock)


@FORMAT_CHECKER.checks("date")
def _is_date(value: object) -> bool:
    return not isinstance(value, str) or _valid_date(value)


@FORMAT_CHECKER.checks("time")
def _is_time(value: object) -> bool:
    return not isinstance(value, str) or _valid_time(value)


@FORMAT_CHECKER.checks("uri")
def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return _URI_RE.fullmatch(value) is not None and re.search(r"%(?![0-9A-Fa-f]{2})", value) is None


@FORMAT_CHECKER.checks("hostname")
def _is_hostname(value: object) -> bool:
    if not isinstance(value, str):
        return True
    name = value.removesuffix(".")
    return 0 < len(name) <= 253 and all(_LABEL_RE.fullmatch(label) for label in name.split("."))


@FORMAT_CHECKER.checks("ipv4")
def _is_ipv4(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


@FORMAT_CHECKER.checks("ipv6")
def _is_ipv6(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return "%" not in value


@FORMAT_CHECKER.checks("regex")
def _is_regex(value: object) -> bool:
    return not isinstance(value, str) or is_supported(value)


# --- regex keywords on RE2 (ADR-0006) ----------------------------------------------------------


def _pattern(validator: Any, pattern: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _extras(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    declared = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return [k for k in instance if k not in declared and not any(search(p, k) for p in patterns)]


def _additional_properties(
    validator: Any, extra: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    extras = _extras(instance, schema)
    if validator.is_type(extra, "object"):
        for key in extras:
            yield from validator.descend(instance[key], extra, path=key)
    elif extra is False and extras:
        listed = ", ".join(repr(k) for k in sorted(extras))
        yield ValidationError(f"Additional properties are not allowed ({listed} unexpected)")


def _evaluated_keys(validator: Any, instance: Mapping[str, Any], schema: Any) -> set[str]:
    """Keys of ``instance`` some keyword of ``schema`` evaluates (for unevaluatedProperties)."""
    if not isinstance(schema, Mapping):
        return set()
    keys: set[str] = set()
    for keyword in ("$ref", "$dynamicRef", "$recursiveRef"):
        ref = schema.get(keyword)
        if isinstance(ref, str):
            resolved = validator._resolver.lookup(ref)
            nested = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
            keys |= _evaluated_keys(nested, instance, resolved.contents)
    props = schema.get("properties")
    if isinstance(props, Mapping):
        keys |= set(props) & set(instance)
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        if keyword in schema:
            sub = schema[keyword]
            keys |= {
                k for k, v in instance.items() if next(validator.descend(v, sub), None) is None
            }
    for pattern in schema.get("patternProperties", {}) or {}:
        keys |= {k for k in instance if search(pattern, k)}
    for name, sub in (schema.get("dependentSchemas") or {}).items():
        if name in instance:
            keys |= _evaluated_keys(validator, instance, sub)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for sub in schema.get(keyword, []) or []:
            if next(validator.descend(instance, sub), None) is None:
                keys |= _evaluated_keys(validator, instance, sub)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys |= _evaluated_keys(validator, instance, schema["if"])
            keys |= _evaluated_keys(validator, instance, schema.get("then"))
        else:
            keys |= _evaluated_keys(validator, instance, schema.get("else"))
    return keys


def _unevaluated_properties(
    validator: Any, extra: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    rest = sorted(k for k in instance if k not in evaluated)
    if extra is False:
        if rest:
            listed = ", ".join(repr(k) for k in rest)
            yield ValidationError(
                f"Unevaluated properties are not allowed ({listed} were unexpected)"
            )
        return
    for key in rest:
        yield from validator.descend(instance[key], extra, path=key)


_CLASSES: dict[str, Any] = {}
_CLASSES_LOCK = threading.Lock()


def validator_class(dialect: str) -> Any:
    """The dialect's ``jsonschema`` validator class with the GTS keywords and RE2 regexes."""
    cls = _CLASSES.get(dialect)
    if cls is not None:
        return cls
    keywords: dict[str, Any] = {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
        refs.KEYWORD: refs.keyword,
    }
    if dialect != "draft-07":
        keywords["unevaluatedProperties"] = _unevaluated_properties
    extend: Any = jsonschema.validators.extend  # untyped in jsonschema
    cls = extend(_BASE_CLASSES[dialect], keywords, format_checker=FORMAT_CHECKER)
    with _CLASSES_LOCK:
        _CLASSES[dialect] = cls
    return cls


# --- GTS $ref retrieval ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Retrieval:
    lookup: Callable[[str], GtsEntity | None]
    dialect: str


_retrieval: ContextVar[_Retrieval | None] = ContextVar("gts_retrieval", default=None)
_RESOURCES: dict[tuple[int, str], tuple[Any, referencing.Resource[Any]]] = {}


def for_jsonschema(schema: Mapping[str, Any], dialect: str) -> dict[str, Any]:
    """``schema`` without ``$schema`` at any schema position (root included).

    ``jsonschema`` picks the validator class of a subschema from its ``$schema``, which would
    swap the GTS class (RE2 regexes, x-gts-ref) for the stock one; the dialect is fixed by the
    type's root instead (§11.0: one dialect per hierarchy, mismatches are refused earlier).
    """
    nested = [
        path for path, node in iter_schema_nodes(schema, dialect) if path and "$schema" in node
    ]
    result = copy.deepcopy(dict(schema)) if nested else dict(schema)
    result.pop("$schema", None)
    for path in nested:
        found, node = _resolve_pointer(result, path)
        if found and isinstance(node, dict):
            node.pop("$schema", None)
    return result


def _resource(content: Mapping[str, Any], dialect: str) -> referencing.Resource[Any]:
    key = (id(content), dialect)
    cached = _RESOURCES.get(key)
    if cached is not None and cached[0] is content:
        return cached[1]
    resource = _SPECIFICATIONS[dialect].create_resource(for_jsonschema(content, dialect))
    if len(_RESOURCES) > 20_000:
        _RESOURCES.clear()
    _RESOURCES[key] = (content, resource)
    return resource


def _no_such_resource(uri: str) -> Exception:
    make: Any = referencing.exceptions.NoSuchResource  # an attrs class mypy does not see through
    error: Exception = make(ref=uri)
    return error


def _retrieve(uri: str) -> referencing.Resource[Any]:
    """``gts://<type id>`` from the store of the validation in progress."""
    context = _retrieval.get()
    if context is None or not uri.startswith(GTS_URI_PREFIX):
        raise _no_such_resource(uri)
    entity = context.lookup(uri[len(GTS_URI_PREFIX) :])
    if entity is None or not entity.is_type:
        raise _no_such_resource(uri)
    return _resource(entity.content, context.dialect)


_make_registry: Any = referencing.Registry
_REGISTRY: referencing.Registry[Any] = _make_registry(retrieve=_retrieve)
_VALIDATORS: dict[tuple[int, str], tuple[Any, Any]] = {}


def compiled_validator(schema: Mapping[str, Any], dialect: str) -> Any:
    """A validator for ``schema``, cached on the schema object's identity."""
    key = (id(schema), dialect)
    cached = _VALIDATORS.get(key)
    if cached is not None and cached[0] is schema:
        return cached[1]
    validator = validator_class(dialect)(
        for_jsonschema(schema, dialect), registry=_REGISTRY, format_checker=FORMAT_CHECKER
    )
    if len(_VALIDATORS) > 20_000:
        _VALIDATORS.clear()
    _VALIDATORS[key] = (schema, validator)
    return validator


def _format_error(error: ValidationError) -> str:
    path = "/".join(str(part) for part in error.absolute_path)
    message = " ".join(error.message.split())
    if len(message) > 300:
        message = message[:297] + "..."
    return f"{path}: {message}" if path else message


def run_validator(
    validator: Any, instance: Any, lookup: Callable[[str], GtsEntity | None], dialect: str
) -> list[ValidationError]:
    """All errors of ``instance``; raises :class:`GtsError` when the schema cannot be evaluated."""
    token = _retrieval.set(_Retrieval(lookup, dialect))
    try:
        return list(validator.iter_errors(instance))
    except referencing.exceptions.Unresolvable as error:
        raise GtsError(f"Unresolvable $ref: {getattr(error, 'ref', error)}") from None
    except RecursionError:
        raise GtsError("schema references recurse without end (cyclic $ref)") from None
    finally:
        _retrieval.reset(token)


# --- per-document facts -------------------------------------------------------------------------

SUPPORTED_KEYWORDS = frozenset(
    {"x-gts-ref", "x-gts-final", "x-gts-abstract", "x-gts-traits", "x-gts-traits-schema"}
)
DOCUMENT_KEYWORDS = frozenset(
    {"x-gts-final", "x-gts-abstract", "x-gts-traits", "x-gts-traits-schema"}
)


@dataclass(slots=True)
class SchemaFacts:
    """What one type schema document says, independent of the rest of the registry."""

    dialect: str | None = None
    dialect_error: str | None = None
    basic: list[str] = field(default_factory=list)
    regex: list[str] = field(default_factory=list)
    meta: str | None = None
    gts_refs: list[str] = field(default_factory=list)
    operands: list[str] = field(default_factory=list)


def _ref_problem(ref: str) -> str | None:
    if ref.startswith("#"):
        return None
    if not ref.startswith(GTS_URI_PREFIX):
        return f"$ref {ref!r} must be a local reference ('#...') or a 'gts://' URI"
    target = ref[len(GTS_URI_PREFIX) :].partition("#")[0]
    if not is_valid_id(target):
        return f"$ref {ref!r} does not name a valid, wildcard-free GTS identifier"
    return None


def _modifier_problems(content: Mapping[str, Any]) -> list[str]:
    problems = [
        f"{key} must be a boolean, not {type(content[key]).__name__}"
        for key in ("x-gts-final", "x-gts-abstract")
        if key in content and not isinstance(content[key], bool)
    ]
    if content.get("x-gts-final") is True and content.get("x-gts-abstract") is True:
        problems.append("a type cannot be both x-gts-final and x-gts-abstract")
    if traits.TRAITS in content and not isinstance(content[traits.TRAITS], Mapping):
        problems.append("x-gts-traits must be a JSON object")
    if traits.TRAITS_SCHEMA in content and not isinstance(
        content[traits.TRAITS_SCHEMA], (Mapping, bool)
    ):
        problems.append("x-gts-traits-schema must be a JSON Schema (object or boolean)")
    return problems


def _node_problems(path: str, node: Mapping[str, Any], facts: SchemaFacts) -> None:
    where = path or "/"
    for key in node:
        if not key.startswith("x-gts-"):
            continue
        if key not in SUPPORTED_KEYWORDS:
            facts.basic.append(f"Unsupported GTS extension keyword {key!r} at {where}")
        elif key in DOCUMENT_KEYWORDS and path:
            facts.basic.append(f"{key} must be at the schema top level, not at {where}")
    ref = node.get("$ref")
    if isinstance(ref, str):
        problem = _ref_problem(ref)
        if problem is not None:
            facts.basic.append(f"Invalid $ref at {where}: {problem}")
        elif ref.startswith(GTS_URI_PREFIX):
            target = ref[len(GTS_URI_PREFIX) :].partition("#")[0]
            if target not in facts.gts_refs:
                facts.gts_refs.append(target)
    if refs.KEYWORD in node:
        operand = node[refs.KEYWORD]
        problem = refs.operand_error(operand)
        if problem is not None:
            facts.basic.append(f"x-gts-ref validation failed: {where}: {problem}")
        elif operand != refs.SELF_ID and operand not in facts.operands:
            facts.operands.append(operand)
    pattern = node.get("pattern")
    if isinstance(pattern, str) and (reason := check_profile(pattern)) is not None:
        facts.regex.append(f"Unsupported pattern at {where}: {reason}")
    for key in (
        node.get("patternProperties", {})
        if isinstance(node.get("patternProperties"), Mapping)
        else {}
    ):
        if (reason := check_profile(key)) is not None:
            facts.regex.append(
                f"Unsupported pattern {key!r} in patternProperties at {where}: {reason}"
            )


def _meta_problem(content: Mapping[str, Any], dialect: str) -> str | None:
    base = _BASE_CLASSES[dialect]
    meta = base(base.META_SCHEMA)
    for document in (content, content.get(traits.TRAITS_SCHEMA, True)):
        error = best_match(meta.iter_errors(document))
        if error is not None:
            return _format_error(error)
    return None


_FACTS: dict[int, tuple[Any, SchemaFacts]] = {}


def schema_facts(content: Mapping[str, Any]) -> SchemaFacts:
    """The :class:`SchemaFacts` of a type schema document (cached on its identity)."""
    cached = _FACTS.get(id(content))
    if cached is not None and cached[0] is content:
        return cached[1]
    facts = SchemaFacts()
    try:
        facts.dialect = dialect_of(content)
    except GtsError as error:
        facts.dialect_error = str(error)
    schema_url = content.get("$schema")
    if isinstance(schema_url, str) and schema_url.startswith(("gts.", GTS_URI_PREFIX)):
        facts.basic.append(
            f"$schema {schema_url!r} must be a JSON Schema dialect URL, not a GTS id"
        )
    facts.basic.extend(_modifier_problems(content))
    for path, node in iter_schema_nodes(content, facts.dialect or "2020-12"):
        _node_problems(path, node, facts)
    if facts.dialect is not None:
        facts.meta = _meta_problem(content, facts.dialect)
    if len(_FACTS) > 20_000:
        _FACTS.clear()
    _FACTS[id(content)] = (content, facts)
    return facts


def check_schema_basic(content: Mapping[str, Any]) -> list[str]:
    """Checks every type schema registration runs, with or without validation (§9.6, §9.11).

    GTS keywords (known names, top-level placement, boolean modifiers), ``$ref`` forms, and the
    ``x-gts-ref`` operand syntax. The registry does not need to be consulted.
    """
    return list(schema_facts(content).basic)


# --- validation engine --------------------------------------------------------------------------


@dataclass(slots=True)
class _Outcome:
    error: str | None
    deps: dict[str, GtsEntity | None]


@dataclass(slots=True)
class _Frame:
    key: str
    deps: dict[str, GtsEntity | None] = field(default_factory=dict)
    cacheable: bool = True


_RESULTS: dict[tuple[str, str], _Outcome] = {}
_MAX_RESULTS = 100_000


class _Engine:
    """One validation request: transitive checks with cycle cut-off and result caching."""

    def __init__(self, store: GtsStore, mode: RefValidation) -> None:
        self.store = store
        self.mode = mode
        self.frames: list[_Frame] = []
        self.memo: dict[str, _Outcome] = {}

    # -- registry access and dependency recording

    def get(self, gts_id: str) -> GtsEntity | None:
        entity = self.store.get(gts_id)
        for frame in self.frames:
            frame.deps[gts_id] = entity
        return entity

    def type_content(self, gts_id: str) -> Mapping[str, Any] | None:
        entity = self.get(gts_id)
        return entity.content if entity is not None and entity.is_type else None

    def uncacheable(self) -> None:
        for frame in self.frames:
            frame.cacheable = False

    def _record(self, deps: Mapping[str, GtsEntity | None]) -> None:
        for frame in self.frames:
            frame.deps.update(deps)

    def run(self, key: str, compute: Callable[[], str | None]) -> str | None:
        """The memoised, cached result of ``compute`` for ``key`` (``t:<id>``, ``i:<id>``)."""
        if key in self.memo:
            outcome = self.memo[key]
            self._record(outcome.deps)
            return outcome.error
        for index, frame in enumerate(self.frames):
            if frame.key == key:
                # A cycle: assume valid while in progress; results above depend on that guess.
                for above in self.frames[index + 1 :]:
                    above.cacheable = False
                return None
        cached = _RESULTS.get((key, self.mode))
        if cached is not None and all(self.store.get(i) is e for i, e in cached.deps.items()):
            self._record(cached.deps)
            self.memo[key] = cached
            return cached.error
        frame = _Frame(key)
        self.frames.append(frame)
        try:
            error = compute()
        finally:
            self.frames.pop()
        outcome = _Outcome(error, frame.deps)
        self._record(frame.deps)
        self.memo[key] = outcome
        if frame.cacheable:
            if len(_RESULTS) > _MAX_RESULTS:
                _RESULTS.clear()
            _RESULTS[(key, self.mode)] = outcome
        else:
            self.uncacheable()
        return error

    # -- entities

    def entity_error(self, gts_id: str) -> str | None:
        entity = self.get(gts_id)
        if entity is None:
            return f"Entity '{gts_id}' not found"
        if entity.is_type:
            return self.type_error(gts_id)
        return self.instance_error(gts_id)

    def instance_error(self, instance_id: str) -> str | None:
        return self.run(f"i:{instance_id}", lambda: self._instance(instance_id))

    def type_error(self, type_id: str) -> str | None:
        return self.run(f"t:{type_id}", lambda: self._type(type_id))

    def _instance(self, instance_id: str) -> str | None:
        entity = self.get(instance_id)
        if entity is None:
            return f"Instance '{instance_id}' not found"
        if entity.is_type:
            return f"'{instance_id}' is a GTS Type Schema, not an instance"
        if entity.type_id is None:
            return f"Cannot determine the GTS Type of instance '{instance_id}'"
        return self.content_error(entity.content, entity.type_id)

    def content_error(self, content: Any, type_id: str) -> str | None:
        """OP#6 for one instance document against a registered type."""
        type_entity = self.get(type_id)
        if type_entity is None:
            return f"GTS Type Schema not found: {type_id}"
        if not type_entity.is_type:
            return f"'{type_id}' is not a GTS Type Schema"
        schema = type_entity.content
        if schema.get("x-gts-abstract") is True:
            return f"type '{type_id}' is abstract and cannot have direct instances"
        problem = self.type_error(type_id)
        if problem is not None:
            return f"Instance type '{type_id}' is invalid: {problem}"
        dialect = dialect_of(schema)
        context = refs.RefContext(self.get, self.mode, type_id)
        try:
            with refs.ref_context(context):
                errors = run_validator(
                    compiled_validator(schema, dialect), content, self.get, dialect
                )
        except GtsError as error:
            return str(error)
        if errors:
            return "; ".join(_format_error(e) for e in _ordered(errors)[:3])
        if self.mode == "any-valid":
            # A reference back to an entity being validated is cut off by run() (cycle rule).
            for target in sorted(context.referenced):
                problem = self.entity_error(target)
                if problem is not None:
                    return f"Referenced entity '{target}' is invalid: {problem}"
        return None

    def _type(self, type_id: str) -> str | None:
        entity = self.get(type_id)
        if entity is None:
            return f"GTS Type Schema not found: {type_id}"
        if not entity.is_type:
            return f"'{type_id}' is not a GTS Type Schema"
        return self.schema_error(type_id, entity.content)

    def schema_error(self, type_id: str, content: Mapping[str, Any]) -> str | None:
        """OP#12 + OP#13 for one type schema document registered (or staged) as ``type_id``."""
        facts = schema_facts(content)
        if facts.basic:
            return facts.basic[0]
        if facts.dialect is None:
            return facts.dialect_error
        if facts.meta is not None:
            return f"JSON Schema validation failed for '{type_id}': {facts.meta}"
        if facts.regex:
            return facts.regex[0]
        try:
            chain = self._chain(type_id, content, facts.dialect)
        except GtsError as error:
            return str(error)
        checks: tuple[Callable[[], str | None], ...] = (
            lambda: self._ancestors(chain),
            lambda: self._references(facts),
            lambda: self._derivation(chain, facts.dialect or ""),
            lambda: self._traits(type_id, chain, content, facts.dialect or ""),
            lambda: self._operands(facts),
        )
        for check in checks:
            problem = check()
            if problem is not None:
                return problem
        return None

    def _chain(
        self, type_id: str, content: Mapping[str, Any], dialect: str
    ) -> list[tuple[str, Mapping[str, Any]]]:
        """The ``$id`` chain root first, the type itself last; raises for a broken chain."""
        gid = GtsId.parse(type_id)
        chain: list[tuple[str, Mapping[str, Any]]] = []
        prefix = "gts."
        for segment in gid.segments[:-1]:
            prefix = f"{prefix}{segment.text}~"
            ancestor = self.type_content(prefix)
            if ancestor is None:
                raise GtsError(f"Parent GTS Type Schema not found: {prefix}")
            try:
                ancestor_dialect = dialect_of(ancestor)
            except GtsError as error:
                raise GtsError(f"Ancestor type '{prefix}' is invalid: {error}") from None
            if ancestor_dialect != dialect:
                raise GtsError(
                    f"GTS derivation chain mixes JSON Schema dialects: '{prefix}' uses "
                    f"{ancestor_dialect}, '{type_id}' uses {dialect}"
                )
            if ancestor.get("x-gts-final") is True:
                raise GtsError(f"base type '{prefix}' is final and cannot be extended")
            chain.append((prefix, ancestor))
        chain.append((type_id, content))
        return chain

    def _ancestors(self, chain: list[tuple[str, Mapping[str, Any]]]) -> str | None:
        for ancestor_id, _ in chain[:-1]:
            problem = self.type_error(ancestor_id)
            if problem is not None:
                return f"Ancestor type '{ancestor_id}' is invalid: {problem}"
        return None

    def _references(self, facts: SchemaFacts) -> str | None:
        for target in facts.gts_refs:
            content = self.type_content(target)
            if content is None:
                return f"Unresolvable $ref 'gts://{target}': GTS Type Schema not found"
            try:
                target_dialect = dialect_of(content)
            except GtsError as error:
                return f"Referenced type '{target}' is invalid: {error}"
            if target_dialect != facts.dialect:
                return (
                    f"GTS schema reference graph mixes JSON Schema dialects: $ref target "
                    f"'{target}' uses {target_dialect}, the referrer {facts.dialect}"
                )
            problem = self.type_error(target)
            if problem is not None:
                return f"Referenced type '{target}' is invalid: {problem}"
        return None

    def accepts(self, dialect: str) -> Callable[[Any, Any], bool]:
        """A one-value check for the inclusion test (schemas with refs already inlined)."""

        def check(schema: Any, value: Any) -> bool:
            try:
                document = (
                    for_jsonschema(schema, dialect) if isinstance(schema, Mapping) else schema
                )
                validator = validator_class(dialect)(
                    document, registry=_REGISTRY, format_checker=FORMAT_CHECKER
                )
                return not run_validator(validator, value, self.get, dialect)
            except (GtsError, jsonschema.exceptions.SchemaError):
                return False

        return check

    def _derivation(self, chain: list[tuple[str, Mapping[str, Any]]], dialect: str) -> str | None:
        if len(chain) < 2:
            return None
        (base_id, base), (type_id, content) = chain[-2], chain[-1]
        siblings = ref_siblings_apply(dialect)
        try:
            base_full = inline_refs(
                base, self.type_content, ref_siblings=siblings, stack=[f"gts:{base_id}"]
            )
            derived_full = inline_refs(
                parent_first(content, base_id),
                self.type_content,
                ref_siblings=siblings,
                stack=[f"gts:{type_id}"],
            )
        except (RefCycleError, GtsError) as error:
            return f"Schema '{type_id}' is not compatible with base '{base_id}': {error}"
        problems = derivation_problems(
            base_full, derived_full, self.accepts(dialect), derived_raw=content
        )
        if problems:
            return f"Schema '{type_id}' is not compatible with base '{base_id}': " + "; ".join(
                problems[:3]
            )
        return None

    def _traits(
        self,
        type_id: str,
        chain: list[tuple[str, Mapping[str, Any]]],
        content: Mapping[str, Any],
        dialect: str,
    ) -> str | None:
        def run(document: Mapping[str, Any], value: Any) -> list[ValidationError]:
            validator = _trait_validator(document, chain, dialect)
            with refs.ref_context(context):
                return run_validator(validator, value, self.get, dialect)

        context = refs.RefContext(self.get, self.mode, type_id)
        problems = traits.check_traits(
            type_id,
            chain,
            abstract=content.get("x-gts-abstract") is True,
            dialect_uri=DIALECT_URIS[dialect],
            resolve=self.type_content,
            ref_siblings=ref_siblings_apply(dialect),
            accepts=self.accepts(dialect),
            run=run,
        )
        if problems:
            return f"Schema '{type_id}' traits: " + "; ".join(problems)
        if self.mode == "any-valid":
            for target in sorted(context.referenced):
                problem = self.entity_error(target)
                if problem is not None:
                    return f"Referenced x-gts-ref entity '{target}' is invalid: {problem}"
        return None

    def _operands(self, facts: SchemaFacts) -> str | None:
        """§9.6 registry checks of the schema's own x-gts-ref operands under the mode."""
        if self.mode == "none":
            return None
        for operand in facts.operands:
            if refs.is_wildcard(operand):
                problem = self._wildcard(operand)
            else:
                problem = self._concrete(operand)
            if problem is not None:
                return problem
        return None

    def _concrete(self, operand: str) -> str | None:
        if self.get(operand) is None:
            return f"x-gts-ref validation failed: constraint '{operand}' is not registered"
        if self.mode == "any-valid":
            problem = self.entity_error(operand)
            if problem is not None:
                return f"x-gts-ref validation failed: constraint '{operand}' is invalid: {problem}"
        return None

    def _wildcard(self, pattern: str) -> str | None:
        for candidate in self.store.ids():
            try:
                if not match_pattern(pattern, candidate):
                    continue
            except GtsIdError:
                continue
            self.get(candidate)
            if self.mode == "any-present" or self.entity_error(candidate) is None:
                return None
        # The answer depends on the whole registry, not on recorded entries.
        self.uncacheable()
        qualifier = "registered" if self.mode == "any-present" else "registered, valid"
        return (
            f"x-gts-ref validation failed: wildcard '{pattern}' matches no {qualifier} GTS entity"
        )


def _ordered(errors: list[ValidationError]) -> list[ValidationError]:
    best = best_match(errors)
    return [best, *[e for e in errors if e is not best]] if best is not None else errors


_TRAIT_VALIDATORS: dict[tuple[Any, ...], tuple[list[Any], Any]] = {}


def _trait_validator(
    document: Mapping[str, Any], chain: list[tuple[str, Mapping[str, Any]]], dialect: str
) -> Any:
    """The effective trait-schema validator, cached on the identity of the chain's documents."""
    key = (dialect, *(id(content) for _, content in chain))
    cached = _TRAIT_VALIDATORS.get(key)
    contents = [content for _, content in chain]
    if cached is not None and all(a is b for a, b in zip(cached[0], contents, strict=True)):
        return cached[1]
    validator = validator_class(dialect)(
        for_jsonschema(document, dialect), registry=_REGISTRY, format_checker=FORMAT_CHECKER
    )
    if len(_TRAIT_VALIDATORS) > 20_000:
        _TRAIT_VALIDATORS.clear()
    _TRAIT_VALIDATORS[key] = (contents, validator)
    return validator


@contextlib.contextmanager
def _staged(store: GtsStore, entity: GtsEntity) -> Iterator[GtsStore]:
    """A private copy of ``store`` with ``entity`` put in (the store itself is never written)."""
    staged = store.snapshot()
    staged.put(entity)
    yield staged


# --- operations ---------------------------------------------------------------------------------


def _result(gts_id: str, error: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": gts_id, "ok": error is None}
    if error is not None:
        body["error"] = error
    return body


def validate_instance(
    store: GtsStore, instance_id: str, ref_validation: str = refs.DEFAULT_REF_VALIDATION
) -> dict[str, Any]:
    """OP#6 ``/validate-instance`` body: ``{"id", "ok", "error"?}``.

    Raises :class:`GtsError` only for an unknown ``ref_validation`` mode.
    """
    engine = _Engine(store, refs.check_mode(ref_validation))
    return _result(instance_id, engine.instance_error(instance_id))


def validate_type_schema(
    store: GtsStore, type_id: str, ref_validation: str = refs.DEFAULT_REF_VALIDATION
) -> dict[str, Any]:
    """OP#12/OP#13 ``/validate-type-schema`` body: ``{"id", "ok", "error"?}``."""
    engine = _Engine(store, refs.check_mode(ref_validation))
    return _result(type_id, engine.type_error(type_id))


def validate_entity(
    store: GtsStore, gts_id: str, ref_validation: str = refs.DEFAULT_REF_VALIDATION
) -> dict[str, Any]:
    """``/validate-entity`` body: ``{"id", "ok", "entity_type": "schema"|"instance", "error"?}``."""
    mode = refs.check_mode(ref_validation)
    entity = store.get(gts_id)
    is_type = entity.is_type if entity is not None else gts_id.endswith("~")
    engine = _Engine(store, mode)
    error = engine.type_error(gts_id) if is_type else engine.instance_error(gts_id)
    body = _result(gts_id, error)
    body["entity_type"] = "schema" if is_type else "instance"
    return body


def entity_errors(
    store: GtsStore, gts_id: str, ref_validation: str = refs.DEFAULT_REF_VALIDATION
) -> list[str]:
    """Errors of a registered entity under the transitive rule; [] = valid."""
    error = _Engine(store, refs.check_mode(ref_validation)).entity_error(gts_id)
    return [] if error is None else [error]


def check_registration(
    store: GtsStore, entity: GtsEntity, ref_validation: str = refs.DEFAULT_REF_VALIDATION
) -> list[str]:
    """Errors that refuse registering ``entity`` with validation (§9.3); [] = acceptable.

    ``entity`` is validated as if it were in ``store`` (replacing any entry with its id); the
    store is not modified. For a batch, stage every entry into one snapshot and call this per
    entry against it.
    """
    mode = refs.check_mode(ref_validation)
    if entity.is_type:
        basic = check_schema_basic(entity.content)
        if basic:
            return basic
    with _staged(store, entity) as staged:
        error = _Engine(staged, mode).entity_error(entity.id)
    return [] if error is None else [error]


def _json_result(
    ok: bool, gts_id: str | None, type_id: str | None, is_type: bool, error: str | None
) -> dict[str, Any]:
    return {"ok": ok, "id": gts_id, "type_id": type_id, "is_type_schema": is_type, "error": error}


def validate_json(
    store: GtsStore,
    content: Mapping[str, Any],
    gts_type: str | None = None,
    ref_validation: str = refs.DEFAULT_REF_VALIDATION,
) -> dict[str, Any]:
    """``/validate-json`` and ``/validate-json/{gts_type}`` body (ValidateJsonResult).

    Validates a transient document (type schema or instance) without storing it; with
    ``gts_type`` the document must be an instance and is validated against that type. Raises
    :class:`GtsError` for a body that is not a JSON object or an unknown mode.
    """
    mode = refs.check_mode(ref_validation)
    found = extract(content)
    if gts_type is not None:
        return _validate_json_as(store, content, gts_type, found, mode)
    if found.is_type:
        if found.gts_id is None:
            return _json_result(False, found.id, None, True, "Unable to detect GTS ID in schema")
        entity = GtsEntity(found.gts_id.id, dict(content), True, found.type_id)
        with _staged(store, entity) as staged:
            error = _Engine(staged, mode).schema_error(entity.id, entity.content)
        return _json_result(error is None, entity.id, entity.type_id, True, error)
    if found.type_id is None:
        return _json_result(False, found.id, None, False, "Unable to determine instance type")
    error = _Engine(store, mode).content_error(dict(content), found.type_id)
    return _json_result(error is None, found.id, found.type_id, False, error)


def _validate_json_as(
    store: GtsStore,
    content: Mapping[str, Any],
    gts_type: str,
    found: Extraction,
    mode: RefValidation,
) -> dict[str, Any]:
    try:
        explicit = GtsId.parse(gts_type)
    except GtsIdError:
        explicit = None
    if explicit is None or not explicit.is_type:
        if explicit is None and not gts_type.startswith("gts."):
            return _json_result(False, None, None, False, f"Invalid GTS Type Schema ID: {gts_type}")
        return _json_result(
            False, None, None, False, f"Explicit type '{gts_type}' must be GTS Type schema"
        )
    if found.is_type:
        return _json_result(
            False, None, None, True, "Explicit type validation only accepts instance JSON"
        )
    if found.type_id is not None and found.type_id != gts_type:
        message = f"Declared type '{found.type_id}' does not match path type '{gts_type}'"
        return _json_result(False, found.id, gts_type, False, message)
    engine = _Engine(store, mode)
    if engine.type_content(gts_type) is None:
        return _json_result(
            False, found.id, gts_type, False, f"GTS Type Schema not found: {gts_type}"
        )
    error = engine.content_error(dict(content), gts_type)
    return _json_result(error is None, found.id, gts_type, False, error)
