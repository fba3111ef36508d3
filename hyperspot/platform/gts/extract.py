"""OP#2: find the GTS identifier and GTS Type of a JSON document (spec §9.1, §11.1).

Rule A: a document is a type schema exactly when it has a top-level ``$schema``. A schema's
identifier is its ``$id`` in ``gts://`` form; its ``type_id`` is its parent in the ``$id`` chain.
An instance's identifier comes from the first identifier field holding a valid GTS identifier
(else the first one holding any string: an anonymous instance). A chained identifier fixes the
instance's type (it wins over any explicit type field); otherwise the first type field holding a
GTS Type Identifier does. ``type_id`` is always a GTS Type Identifier or None, never ``$schema``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hyperspot.platform.gts.ids import GTS_URI_PREFIX, GtsError, GtsId, GtsIdError

# Field names are implementation-defined (§11.1); these are the spec's defaults and aliases.
ENTITY_ID_FIELDS: tuple[str, ...] = ("id", "gtsId", "gts_id", "gtsIid", "gtsOid", "$id")
TYPE_ID_FIELDS: tuple[str, ...] = (
    "type",
    "gtsType",
    "gts_type",
    "gtsTid",
    "gtsT",
    "gts_tid",
    "schema",
)


@dataclass(frozen=True, slots=True)
class Extraction:
    """What OP#2 found in a document."""

    id: str | None
    type_id: str | None
    selected_entity_field: str | None
    selected_type_id_field: str | None
    is_type: bool
    # The identifier parsed as a GTS id (None for anonymous/non-GTS ids).
    gts_id: GtsId | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type_id": self.type_id,
            "selected_entity_field": self.selected_entity_field,
            "selected_type_id_field": self.selected_type_id_field,
            "is_type": self.is_type,
        }


def _as_gts(value: object) -> GtsId | None:
    """``value`` as a canonical GTS identifier (``gts://`` stripped), or None."""
    if not isinstance(value, str):
        return None
    text = value[len(GTS_URI_PREFIX) :] if value.startswith(GTS_URI_PREFIX) else value
    try:
        return GtsId.parse(text)
    except GtsIdError:
        return None


def _extract_schema(content: Mapping[str, Any]) -> Extraction:
    raw = content.get("$id")
    # §9.1: only the gts:// form names a GTS type; a bare "gts." $id is not a GTS $id.
    parsed = _as_gts(raw) if isinstance(raw, str) and raw.startswith(GTS_URI_PREFIX) else None
    if parsed is None or not parsed.is_type:
        return Extraction(
            id=raw if isinstance(raw, str) and raw else None,
            type_id=None,
            selected_entity_field="$id" if isinstance(raw, str) and raw else None,
            selected_type_id_field=None,
            is_type=True,
        )
    parent = parsed.parent_type_id
    return Extraction(
        id=parsed.id,
        type_id=parent,
        selected_entity_field="$id",
        selected_type_id_field="$id" if parent is not None else None,
        is_type=True,
        gts_id=parsed,
    )


def _extract_instance(content: Mapping[str, Any]) -> Extraction:
    entity_field: str | None = None
    entity_id: str | None = None
    parsed: GtsId | None = None
    for name in ENTITY_ID_FIELDS:
        candidate = _as_gts(content.get(name))
        if candidate is not None:
            entity_field, entity_id, parsed = name, candidate.id, candidate
            break
    if parsed is None:
        for name in ENTITY_ID_FIELDS:
            value = content.get(name)
            if isinstance(value, str) and value:
                entity_field, entity_id = name, value
                break
    if parsed is not None and not parsed.is_type:
        # A chained instance identifier carries its type; explicit type fields are ignored.
        return Extraction(
            id=entity_id,
            type_id=parsed.type_id,
            selected_entity_field=entity_field,
            selected_type_id_field=entity_field,
            is_type=False,
            gts_id=parsed,
        )
    for name in TYPE_ID_FIELDS:
        type_ref = _as_gts(content.get(name))
        if type_ref is not None and type_ref.is_type:
            return Extraction(
                id=entity_id,
                type_id=type_ref.id,
                selected_entity_field=entity_field,
                selected_type_id_field=name,
                is_type=False,
                gts_id=parsed,
            )
    return Extraction(
        id=entity_id,
        type_id=None,
        selected_entity_field=entity_field,
        selected_type_id_field=None,
        is_type=False,
        gts_id=parsed,
    )


def extract(content: Mapping[str, Any]) -> Extraction:
    """Classify ``content`` and find its identifier and type; raises :class:`GtsError`."""
    if not isinstance(content, Mapping):
        raise GtsError(f"a GTS entity must be a JSON object, not {type(content).__name__}")
    if "$schema" in content:
        return _extract_schema(content)
    return _extract_instance(content)


def extract_id(content: Mapping[str, Any]) -> dict[str, Any]:
    """OP#2 body: id, type_id, selected_entity_field, selected_type_id_field, is_type."""
    return extract(content).to_dict()
