"""Where notes live: the entity (Pony) and the migrations that shape its table."""

from __future__ import annotations

from datetime import datetime

from pony.orm import Database, Optional, PrimaryKey, Required

from hyperspot.modules.notes.domain.ports import NoteEntities
from hyperspot.platform.db import (
    AddColumn,
    Column,
    ColumnType,
    CreateIndex,
    CreateTable,
    Migration,
    TenantScoped,
)

TABLE = "notes_note"

MIGRATIONS = (
    Migration(
        version=1,
        name="create notes",
        steps=(
            CreateTable(
                TABLE,
                columns=(
                    Column("id", ColumnType.STRING, length=36, primary_key=True),
                    Column("tenant_id", ColumnType.STRING, length=64),
                    Column("title", ColumnType.STRING, length=200),
                    Column("body", ColumnType.TEXT),
                    Column("priority", ColumnType.INTEGER, default=0),
                    Column("created_at", ColumnType.DATETIME),
                    Column("updated_at", ColumnType.DATETIME),
                ),
                tenant_scoped=True,
            ),
            CreateIndex(TABLE, "notes_note_tenant_created", ("tenant_id", "created_at")),
        ),
    ),
    # The second version changes the schema of a table that already holds data.
    Migration(
        version=2,
        name="pinned notes",
        steps=(
            AddColumn(TABLE, Column("pinned", ColumnType.BOOLEAN, default=False)),
            CreateIndex(TABLE, "notes_note_tenant_pinned", ("tenant_id", "pinned")),
        ),
    ),
)


def define_entities(db: Database) -> NoteEntities:
    class NoteRow(TenantScoped, db.Entity):  # type: ignore[misc]
        _table_ = TABLE
        id = PrimaryKey(str, 36)
        tenant_id = Required(str, 64)
        title = Required(str, 200)
        body = Optional(str, autostrip=False)
        priority = Required(int)
        pinned = Required(bool)
        created_at = Required(datetime, precision=6)
        updated_at = Required(datetime, precision=6)

    return NoteEntities(Note=NoteRow)
