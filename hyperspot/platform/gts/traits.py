"""OP#13 schema traits (spec §9.7, §9.11.4, ADR-0002..0004).

A type's *effective trait schema* is the ``allOf`` of every ``x-gts-traits-schema`` declared
along its ``$id`` chain (object subschema, ``true`` or ``false``); each declaration is referenced
in place (``gts://<host>#/x-gts-traits-schema``) so its local ``$ref``s resolve against its host.
Its *effective traits* are the chain's ``x-gts-traits`` objects merged root to leaf as JSON Merge
Patches (RFC 7396), then completed with the leaf-most ``default`` of every absent property.

A type is trait-valid when: a descendant's own trait schema narrows its ancestors' (the OP#12
derivation rules, applied to the trait layers); trait values are only given where some trait
schema exists; and the materialized traits validate against the effective trait schema. A type
marked ``x-gts-abstract`` skips completeness (``required`` failures) but its given values must
still be valid; a type that gives no trait value at all only answers for completeness.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import ValidationError

from hyperspot.platform.gts.derivation import (
    RefCycleError,
    ValueCheck,
    bool_value,
    derivation_problems,
    flatten,
    inline_refs,
)
from hyperspot.platform.gts.ids import GtsError, GtsId
from hyperspot.platform.gts.store import GtsStore

TRAITS_SCHEMA = "x-gts-traits-schema"
TRAITS = "x-gts-traits"

Resolver = Callable[[str], "Mapping[str, Any] | None"]
# Validates a trait value object against an effective trait-schema document; raises GtsError
# when the schema cannot be evaluated (unsupported regex, unresolvable reference, cycle).
TraitRunner = Callable[[Mapping[str, Any], Any], list[ValidationError]]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: ``patch`` applied to ``target`` (neither is modified)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass(frozen=True, slots=True)
class TraitLayer:
    """One ``x-gts-traits-schema`` declaration: its host type and the declared subschema."""

    host_id: str
    host: Mapping[str, Any]
    schema: Any

    @property
    def reference(self) -> dict[str, str]:
        return {"$ref": f"gts://{self.host_id}#/{TRAITS_SCHEMA}"}


def trait_layers(chain: Sequence[tuple[str, Mapping[str, Any]]]) -> list[TraitLayer]:
    """The trait-schema declarations along a chain (root first)."""
    return [
        TraitLayer(tid, content, content[TRAITS_SCHEMA])
        for tid, content in chain
        if TRAITS_SCHEMA in content
    ]


def merged_traits(chain: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[dict[str, Any], bool]:
    """The chain's ``x-gts-traits`` merged root to leaf, and whether any layer gave one."""
    merged: Any = {}
    given = False
    for _, content in chain:
        if TRAITS in content:
            given = True
            merged = merge_patch(merged, content[TRAITS])
    return (merged if isinstance(merged, dict) else {}), given


def effective_schema_document(layers: Sequence[TraitLayer], dialect_uri: str) -> dict[str, Any]:
    """A schema document for the effective trait schema (``allOf`` of in-place references)."""
    return {"$schema": dialect_uri, "allOf": [layer.reference for layer in layers]}


def _inlined(layer: TraitLayer, resolve: Resolver, ref_siblings: bool) -> Any:
    try:
        return inline_refs(layer.schema, resolve, ref_siblings=ref_siblings, root=layer.host)
    except RefCycleError as error:
        raise GtsError(f"x-gts-traits-schema of '{layer.host_id}': {error}") from None


def _apply_defaults(values: dict[str, Any], schema: Any, depth: int = 0) -> None:
    """Fill absent properties that ``schema`` gives a default (recursing into present objects)."""
    flat = flatten(schema)
    props = flat.get("properties") if isinstance(flat, Mapping) else None
    if not isinstance(props, Mapping) or depth > 32:
        return
    for name, prop in props.items():
        if not isinstance(prop, Mapping):
            continue
        if name not in values:
            if "default" in prop:
                values[name] = copy.deepcopy(prop["default"])
        elif isinstance(values[name], dict):
            _apply_defaults(values[name], prop, depth + 1)


def materialize(values: Mapping[str, Any], inlined_layers: Sequence[Any]) -> dict[str, Any]:
    """ADR-0003: ``values`` completed with defaults; the leaf-most declared default wins."""
    result = copy.deepcopy(dict(values))
    for schema in reversed(inlined_layers):
        _apply_defaults(result, schema)
    return result


def _layer_problems(
    type_id: str, inlined: Sequence[tuple[TraitLayer, Any]], accepts: ValueCheck
) -> list[str]:
    """The type's own trait-schema layer against the aggregated ancestor layers (ADR-0002)."""
    own = [schema for layer, schema in inlined if layer.host_id == type_id]
    ancestors = [schema for layer, schema in inlined if layer.host_id != type_id]
    if not own or not ancestors:
        return []
    if any(bool_value(schema) is False for schema in ancestors):
        if bool_value(own[0]) is False:
            return []
        return ["an ancestor's x-gts-traits-schema is false, so no trait schema may be added"]
    base = {"allOf": [s for s in ancestors if bool_value(s) is not True]}
    derived = {"allOf": [*base["allOf"], own[0]]}
    return [f"x-gts-traits-schema: {p}" for p in derivation_problems(base, derived, accepts)]


def _format(error: ValidationError) -> str:
    path = "/".join(str(p) for p in error.absolute_path)
    message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    return f"{path}: {message}" if path else message


def check_traits(
    type_id: str,
    chain: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    abstract: bool,
    dialect_uri: str,
    resolve: Resolver,
    ref_siblings: bool,
    accepts: ValueCheck,
    run: TraitRunner,
) -> list[str]:
    """OP#13 problems of ``type_id`` (its chain given root first, itself last); [] = valid."""
    layers = trait_layers(chain)
    values, given = merged_traits(chain)
    if given and not layers:
        return ["x-gts-traits given but no x-gts-traits-schema is declared in the type's chain"]
    if not layers:
        return []
    try:
        inlined = [(layer, _inlined(layer, resolve, ref_siblings)) for layer in layers]
    except GtsError as error:
        return [str(error)]
    problems = _layer_problems(type_id, inlined, accepts)
    if problems:
        return problems
    effective = materialize(values, [schema for _, schema in inlined])
    try:
        errors = run(effective_schema_document(layers, dialect_uri), effective)
    except GtsError as error:
        return [f"trait schema cannot be evaluated: {error}"]
    if abstract:
        # Abstractness permits incompleteness (ADR-0003), not invalid values.
        errors = [e for e in errors if e.validator != "required"]
    elif not effective:
        # No trait value anywhere: only completeness (required traits) can fail.
        errors = [e for e in errors if e.validator == "required"]
    return [f"trait validation failed: {_format(e)}" for e in errors[:3]]


def type_chain(store: GtsStore, type_id: str) -> list[tuple[str, Mapping[str, Any]]]:
    """The registered ``$id`` chain of ``type_id``, root first; raises :class:`GtsError`."""
    parsed = GtsId.parse(type_id)
    if not parsed.is_type:
        raise GtsError(f"'{type_id}' is not a GTS Type Identifier")
    chain: list[tuple[str, Mapping[str, Any]]] = []
    prefix = "gts."
    for segment in parsed.segments:
        prefix = f"{prefix}{segment.text}~"
        entity = store.get(prefix)
        if entity is None or not entity.is_type:
            raise GtsError(f"GTS Type Schema not found: {prefix}")
        chain.append((prefix, entity.content))
    return chain


def effective_traits(store: GtsStore, type_id: str) -> dict[str, Any]:
    """The materialized effective traits of a registered type (§9.7.5), for consumers.

    Values merged root to leaf, then defaults of the effective trait schema filled in. This
    reads, it does not validate: call the type validation first when validity matters.
    """
    chain = type_chain(store, type_id)

    def resolve(target: str) -> Mapping[str, Any] | None:
        entity = store.get(target)
        return entity.content if entity is not None and entity.is_type else None

    siblings = not str(chain[-1][1].get("$schema", "")).startswith(
        "http://json-schema.org/draft-07"
    )
    values, _ = merged_traits(chain)
    inlined = [_inlined(layer, resolve, siblings) for layer in trait_layers(chain)]
    return materialize(values, inlined)
