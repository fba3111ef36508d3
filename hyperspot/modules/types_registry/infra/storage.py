"""Where the registry lives: two global tables (entities, and the change counter), migrations,
and the storage port the domain is written against.

GTS identifiers can be longer than an index allows on MariaDB, so a row's key is the SHA-256 of
the identifier and the identifier itself is text. Deleted entities stay as tombstones
(``deleted``): other workers learn of a deletion from the change counter like of any change.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pony.orm import Database, LongStr, Optional, PrimaryKey, Required

from hyperspot.modules.types_registry.domain.ports import EntityRecord, StoredChange
from hyperspot.platform.db import (
    Column,
    ColumnType,
    CreateIndex,
    CreateTable,
    Global,
    Migration,
    ScopedSession,
)

ENTITIES = "types_registry_entity"
STATE = "types_registry_state"
GENERATION = "generation"
# Rows of one change are ordered after those of earlier changes: position = change * this + index.
BATCH_SPAN = 1_000_000

MIGRATIONS = (
    Migration(
        version=1,
        name="GTS entities and the change counter",
        steps=(
            CreateTable(
                ENTITIES,
                columns=(
                    Column("id", ColumnType.STRING, length=64, primary_key=True),
                    Column("gts_id", ColumnType.TEXT),
                    Column("is_type", ColumnType.BOOLEAN),
                    Column("type_id", ColumnType.TEXT, nullable=True),
                    # JSON text (Pony's Json type is broken on MariaDB); null once deleted.
                    Column("content", ColumnType.TEXT, nullable=True),
                    Column("deleted", ColumnType.BOOLEAN, default=False),
                    Column("position", ColumnType.BIGINT),
                    Column("generation", ColumnType.BIGINT),
                    Column("registered_by", ColumnType.STRING, length=200),
                    Column("created_at", ColumnType.DATETIME),
                    Column("updated_at", ColumnType.DATETIME),
                ),
                tenant_scoped=False,
            ),
            CreateIndex(ENTITIES, "types_registry_entity_generation", ("generation",)),
            CreateTable(
                STATE,
                columns=(
                    Column("id", ColumnType.STRING, length=32, primary_key=True),
                    Column("value", ColumnType.BIGINT),
                ),
                tenant_scoped=False,
            ),
        ),
    ),
)


def row_key(gts_id: str) -> str:
    return hashlib.sha256(gts_id.encode()).hexdigest()


class PonyRegistryStorage:
    """The storage port on the platform database (Pony entities defined on its schema)."""

    def __init__(self, db: Database) -> None:
        class EntityRow(Global, db.Entity):  # type: ignore[misc]
            _table_ = ENTITIES
            id = PrimaryKey(str, 64)
            # LongStr: Pony caps a plain str at VARCHAR's 255 characters on MariaDB; not lazy,
            # since loading the registry reads every row's content (one query, not one per row).
            gts_id = Required(LongStr, autostrip=False, lazy=False)
            is_type = Required(bool)
            type_id = Optional(LongStr, nullable=True, autostrip=False, lazy=False)
            content = Optional(LongStr, nullable=True, autostrip=False, lazy=False)
            deleted = Required(bool)
            position = Required(int, size=64)
            generation = Required(int, size=64)
            registered_by = Required(str, 200)
            created_at = Required(datetime, precision=6)
            updated_at = Required(datetime, precision=6)

        class StateRow(Global, db.Entity):  # type: ignore[misc]
            _table_ = STATE
            id = PrimaryKey(str, 32)
            value = Required(int, size=64)

        self.Entity: Any = EntityRow
        self.State: Any = StateRow

    def generation(self, session: ScopedSession) -> int:
        row = session.get(self.State, GENERATION)
        return 0 if row is None else int(row.value)

    def lock_generation(self, session: ScopedSession) -> int:
        row = session.query(self.State).filter(id=GENERATION).for_update().first()
        if row is None:
            # The first change ever: two workers racing here collide on the key, and the loser's
            # unit of work fails with an integrity error, which the domain retries.
            session.create(self.State, id=GENERATION, value=0)
            return 0
        return int(row.value)

    def changes_since(self, session: ScopedSession, generation: int) -> list[StoredChange]:
        query = session.query(self.Entity).filter(lambda e: e.generation > generation)
        if generation == 0:
            query = query.filter(lambda e: not e.deleted)
        rows = query.order_by(lambda e: (e.position, e.id))
        return [
            StoredChange(
                gts_id=row.gts_id,
                content=None if row.deleted or row.content is None else json.loads(row.content),
                generation=int(row.generation),
            )
            for row in rows
        ]

    def save(
        self,
        session: ScopedSession,
        *,
        generation: int,
        put: list[EntityRecord],
        removed: list[str],
        actor: str,
        now: datetime,
    ) -> None:
        state = session.get(self.State, GENERATION)
        if state is None:
            session.create(self.State, id=GENERATION, value=generation)
        else:
            state.value = generation
        for index, record in enumerate(put):
            values = {
                "gts_id": record.gts_id,
                "is_type": record.is_type,
                "type_id": record.type_id,
                "content": json.dumps(record.content, separators=(",", ":"), sort_keys=False),
                "deleted": False,
                "generation": generation,
                "registered_by": actor[:200],
                "updated_at": now,
            }
            row = session.get(self.Entity, row_key(record.gts_id))
            if row is None:
                session.create(
                    self.Entity,
                    id=row_key(record.gts_id),
                    position=generation * BATCH_SPAN + index,
                    created_at=now,
                    **values,
                )
            else:
                if row.deleted:
                    # Registered again after a deletion: it counts as new, at the end.
                    values["position"] = generation * BATCH_SPAN + index
                    values["created_at"] = now
                row.set(**values)
        for gts_id in removed:
            row = session.get(self.Entity, row_key(gts_id))
            if row is not None and not row.deleted:
                row.set(
                    deleted=True,
                    content=None,
                    generation=generation,
                    registered_by=actor[:200],
                    updated_at=now,
                )
