"""Where audit events live: the entity (Pony) and the migrations that shape its table."""

from __future__ import annotations

from datetime import datetime

from pony.orm import Database, Optional, PrimaryKey, Required

from hyperspot.modules.audit.domain.ports import (
    ACTION_LENGTH,
    ACTOR_LENGTH,
    CLIENT_LENGTH,
    REQUEST_ID_LENGTH,
    RESULT_LENGTH,
    TARGET_LENGTH,
    TENANT_LENGTH,
    AuditEntities,
)
from hyperspot.platform.db import (
    Column,
    ColumnType,
    CreateIndex,
    CreateTable,
    Migration,
    TenantScoped,
)

TABLE = "audit_event"

# Column lengths, also used to clip values: an event is never lost to an over-long field.

MIGRATIONS = (
    Migration(
        version=1,
        name="create audit events",
        steps=(
            CreateTable(
                TABLE,
                columns=(
                    Column("id", ColumnType.STRING, length=36, primary_key=True),
                    Column("tenant_id", ColumnType.STRING, length=TENANT_LENGTH),
                    Column("at", ColumnType.DATETIME),
                    Column("actor", ColumnType.STRING, length=ACTOR_LENGTH),
                    Column("actor_tenant", ColumnType.STRING, length=TENANT_LENGTH),
                    Column("action", ColumnType.STRING, length=ACTION_LENGTH),
                    Column("target", ColumnType.STRING, length=TARGET_LENGTH),
                    Column("result", ColumnType.STRING, length=RESULT_LENGTH),
                    Column("client", ColumnType.STRING, length=CLIENT_LENGTH),
                    Column("request_id", ColumnType.STRING, length=REQUEST_ID_LENGTH),
                    Column("detail", ColumnType.TEXT),
                ),
                tenant_scoped=True,
            ),
            CreateIndex(TABLE, "audit_event_tenant_at", ("tenant_id", "at")),
        ),
    ),
)


def define_entities(db: Database) -> AuditEntities:
    class AuditEntry(TenantScoped, db.Entity):  # type: ignore[misc]
        _table_ = TABLE
        id = PrimaryKey(str, 36)
        tenant_id = Required(str, TENANT_LENGTH)
        at = Required(datetime, precision=6)
        actor = Required(str, ACTOR_LENGTH, autostrip=False)
        actor_tenant = Required(str, TENANT_LENGTH)
        action = Required(str, ACTION_LENGTH)
        # Optional: Pony's Required refuses empty strings, and these may be empty.
        target = Optional(str, TARGET_LENGTH, autostrip=False)
        result = Required(str, RESULT_LENGTH)
        client = Optional(str, CLIENT_LENGTH)
        request_id = Optional(str, REQUEST_ID_LENGTH)
        detail = Optional(str, autostrip=False)

    return AuditEntities(AuditEntry=AuditEntry)
