"""In-memory GTS registry: entities (type schemas and instances) keyed by identifier (§9.3).

The store does no validation; callers decide what may be put. Reads take no lock (single dict
lookups are atomic in CPython), writes and whole-store reads serialise on one lock, so readers
stay consistent while one writer writes. ``snapshot`` gives a private copy for an atomic
register-with-validation: validate against the copy, then put into the real store.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hyperspot.platform.gts.extract import extract
from hyperspot.platform.gts.ids import GtsError, GtsId, GtsIdError

# §9.6: how x-gts-ref targets are checked (none / registered / registered and valid).
RefValidation = Literal["none", "any-present", "any-valid"]


@dataclass(frozen=True, slots=True)
class GtsEntity:
    """A registered document.

    ``id`` is the GTS identifier, or for an anonymous instance its id value as extracted.
    ``type_id`` is an instance's GTS Type, or a type schema's parent type (None for a base type).
    """

    id: str
    content: dict[str, Any]
    is_type: bool
    type_id: str | None

    @classmethod
    def from_content(cls, content: Mapping[str, Any]) -> GtsEntity:
        """Build an entity from a JSON document (OP#2 rules); raises :class:`GtsError`.

        A type schema needs a ``$id`` of the form ``gts://<GTS Type Identifier>``; an instance
        needs an identifier field (``id``, ``gtsId``, ...).
        """
        found = extract(content)
        if found.is_type:
            if found.gts_id is None:
                raw = content.get("$id")
                if raw is None:
                    raise GtsError("type schema has no $id")
                if isinstance(raw, str) and raw.startswith("gts."):
                    raise GtsError(f"type schema $id must use the gts:// form: {raw!r}")
                raise GtsError(
                    f"type schema $id is not 'gts://' + a GTS Type Identifier: {str(raw)[:120]!r}"
                )
            return cls(
                id=found.gts_id.id, content=dict(content), is_type=True, type_id=found.type_id
            )
        if found.id is None:
            raise GtsError("instance has no identifier field (id, gtsId, gts_id or $id)")
        return cls(id=found.id, content=dict(content), is_type=False, type_id=found.type_id)

    @property
    def gts_id(self) -> GtsId | None:
        """The parsed identifier, or None for an anonymous instance's non-GTS id."""
        try:
            return GtsId.parse(self.id)
        except GtsIdError:
            return None


class GtsStore:
    """Entities by identifier, in registration order; see the module docstring for threading."""

    __slots__ = ("_by_id", "_lock")

    def __init__(self, entities: Mapping[str, GtsEntity] | None = None) -> None:
        self._by_id: dict[str, GtsEntity] = dict(entities) if entities else {}
        self._lock = threading.Lock()

    def get(self, gts_id: str) -> GtsEntity | None:
        return self._by_id.get(gts_id)

    def put(self, entity: GtsEntity) -> None:
        """Add or replace (a replaced entity keeps its place in the order)."""
        with self._lock:
            self._by_id[entity.id] = entity

    def remove(self, gts_id: str) -> bool:
        with self._lock:
            return self._by_id.pop(gts_id, None) is not None

    def entities(self) -> list[GtsEntity]:
        with self._lock:
            return list(self._by_id.values())

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._by_id)

    def snapshot(self) -> GtsStore:
        with self._lock:
            return GtsStore(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, gts_id: object) -> bool:
        return gts_id in self._by_id

    def __repr__(self) -> str:
        return f"GtsStore({len(self._by_id)} entities)"
