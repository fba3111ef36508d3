"""GTS version casting: OP#9 (spec §9.2).

An instance of one MINOR version of a type is rewritten for another MINOR version of the same type
(same chain, same MAJOR): its declared type (``type``/``gtsType``/``gts_type``, and the type prefix
of a chained ``id``) and ``const`` fields holding the source type id are rewritten to the target
id, properties a closed level of the target does not admit are dropped, and properties the target
declares with a ``default`` are added when missing. The result must validate against the target;
violations the instance already had against its own type are carried over, not blamed on the cast.

The response reports the schema verdicts of §4.3 (source as *old*, target as *new*) separately
from the cast itself (``casted_entity`` and the ``cast_operations`` that produced it): a successful
cast does not make the schemas compatible, and incompatible schemas do not forbid a cast (§4.3,
§4.6.3 identity-field note).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from jsonschema.exceptions import ValidationError

from hyperspot.platform.gts.compat import (
    InstanceChecker,
    SchemaNode,
    compare_schemas,
    parse_type_id,
    resolve_schema,
    schema_dialect,
    type_schema,
    version_family_mismatch,
)
from hyperspot.platform.gts.ids import GtsError, strip_gts_uri
from hyperspot.platform.gts.store import GtsStore

# Fields an instance declares its type or its (possibly type-chained) identifier in (§9.1).
_TYPE_FIELDS: Final = ("type", "gtsType", "gts_type")
_ID_FIELDS: Final = ("id", "gtsId", "gts_id")


class GtsCastError(GtsError):
    """OP#9 input the caster cannot work with; the conformance suite expects ``{"error": str}``."""


def _pointer(path: tuple[str | int, ...] | list[str | int]) -> str:
    return "/" + "/".join(str(p) for p in path)


def _signature(error: ValidationError) -> tuple[tuple[str | int, ...], str, str]:
    # A "required" error names the missing property in its message; other messages quote values
    # the cast may have rewritten, so they are left out of the comparison.
    keyword = str(error.validator)
    return tuple(error.absolute_path), keyword, error.message if keyword == "required" else ""


def _describe(error: ValidationError) -> str:
    where = _pointer(list(error.absolute_path))
    if error.validator == "required":
        return f"{where}: {error.message} by the target type and has no default there"
    return f"{where}: {error.message}"


class _Caster:
    def __init__(self, source_type: str, target_type: str, target: SchemaNode) -> None:
        self.source_type = source_type
        self.target_type = target_type
        self.target = target
        self.operations: list[str] = []

    def cast(self, content: Mapping[str, Any]) -> dict[str, Any]:
        value = copy.deepcopy(dict(content))
        for name in _TYPE_FIELDS:
            if value.get(name) == self.source_type:
                value[name] = self.target_type
                self.operations.append(f"set /{name} to {self.target_type}")
        for name in _ID_FIELDS:
            current = value.get(name)
            if isinstance(current, str) and current.startswith(self.source_type):
                tail = current[len(self.source_type) :]
                if tail:
                    value[name] = self.target_type + tail
                    self.operations.append(f"set /{name} to {value[name]}")
        result = self.walk(value, self.target, "")
        assert isinstance(result, dict)  # an object stays an object
        return result

    def walk(self, value: Any, node: SchemaNode, path: str) -> Any:
        if isinstance(value, dict) and "object" in node.kinds:
            out: dict[str, Any] = {}
            for name, item in value.items():
                schema = node.value_for(name)
                if schema.is_bottom:
                    self.operations.append(f"removed {path}/{name}: not admitted by the target")
                    continue
                out[name] = self.walk(item, schema, f"{path}/{name}")
            for name, schema in node.props.items():
                if name not in value and schema.default is not None and not schema.is_bottom:
                    out[name] = copy.deepcopy(schema.default[0])
                    self.operations.append(f"added {path}/{name}: the target's default")
            return out
        if isinstance(value, list) and "array" in node.kinds:
            return [self.walk(v, node.item_at(i), f"{path}/{i}") for i, v in enumerate(value)]
        if value == self.source_type and node.enum == (self.target_type,):
            self.operations.append(f"set {path} to {self.target_type}")
            return self.target_type
        return value


def cast(store: GtsStore, from_id: str, to_type_id: str) -> dict[str, Any]:
    """OP#9: cast the registered instance ``from_id`` to the type ``to_type_id``.

    Returns the ``/cast`` response body: ``instance_id``, ``from_type_id``, ``to_type_id``, the
    three schema verdicts with their reasons, and either ``casted_entity`` (with
    ``cast_operations`` and, when the instance already violated its own type, ``cast_warnings``)
    or ``error`` when no valid target instance can be produced (for example a property the
    target requires and gives no default). Raises GtsCastError when the request itself is
    unusable: unknown ids, a type schema as the source, a target outside the instance's type
    family or MAJOR version.
    """
    source_id = strip_gts_uri(from_id.strip())
    entity = store.get(source_id)
    if entity is None:
        raise GtsCastError(f"cannot cast {source_id}: no such entity is registered")
    if entity.is_type:
        raise GtsCastError(f"cannot cast {source_id}: the source must be an instance, not a type")
    if entity.type_id is None:
        raise GtsCastError(f"cannot cast {source_id}: the instance declares no GTS type")
    source_type = entity.type_id
    try:
        target_type = parse_type_id(to_type_id, "to_type_id")
        mismatch = version_family_mismatch(source_type, target_type)
        if mismatch is not None:
            raise GtsCastError(mismatch)
        source_schema = type_schema(store, source_type)
        target_schema = type_schema(store, target_type)
    except GtsError as error:
        raise GtsCastError(f"cannot cast {source_id} to {to_type_id.strip()}: {error}") from error
    report = compare_schemas(
        source_schema,
        target_schema,
        store=store,
        old_type_id=source_type,
        new_type_id=target_type,
    )
    body: dict[str, Any] = {
        "instance_id": source_id,
        "from_type_id": source_type,
        "to_type_id": target_type,
        **report.fields(),
    }
    try:
        body.update(
            _cast_entity(
                store, entity.content, (source_schema, target_schema), (source_type, target_type)
            )
        )
    except GtsError as error:
        body["error"] = f"cannot cast {source_id} to {target_type}: {error}"
    return body


def _cast_entity(
    store: GtsStore,
    content: Mapping[str, Any],
    schemas: tuple[Mapping[str, Any], Mapping[str, Any]],
    type_ids: tuple[str, str],
) -> dict[str, Any]:
    """``casted_entity`` and how it was made; raises GtsError when the cast is impossible."""
    source_schema, target_schema = schemas
    source_type, target_type = type_ids
    target_dialect = schema_dialect(target_schema) or ""
    node = resolve_schema(target_schema, store=store, type_id=target_type)
    caster = _Caster(source_type, target_type, node)
    casted = caster.cast(content)
    target_check = InstanceChecker(
        target_schema, store=store, type_id=target_type, dialect=target_dialect
    )
    after = target_check.errors(casted)
    before: set[tuple[tuple[str | int, ...], str, str]] = set()
    source_dialect = schema_dialect(source_schema)
    if after and source_dialect == target_dialect:
        source_check = InstanceChecker(
            source_schema, store=store, type_id=source_type, dialect=source_dialect
        )
        before = {_signature(e) for e in source_check.errors(content)}
    introduced = [e for e in after if _signature(e) not in before]
    if introduced:
        shown = "; ".join(_describe(e) for e in introduced[:3])
        more = f" (and {len(introduced) - 3} more)" if len(introduced) > 3 else ""
        raise GtsCastError(f"{shown}{more}")
    result: dict[str, Any] = {"casted_entity": casted, "cast_operations": caster.operations}
    carried = [_describe(e) for e in after]
    if carried:
        result["cast_warnings"] = [f"already invalid against its own type: {c}" for c in carried]
    return result
