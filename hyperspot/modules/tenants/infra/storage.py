"""Where tenants live: the entity (Pony) and the migrations that shape its table."""

from __future__ import annotations

from datetime import datetime

from pony.orm import Database, Optional, PrimaryKey, Required

from hyperspot.modules.tenants.domain.ports import TenantEntities
from hyperspot.platform.db import Column, ColumnType, CreateIndex, CreateTable, Global, Migration

TABLE = "tenants_tenant"

MIGRATIONS = (
    Migration(
        version=1,
        name="create tenants",
        steps=(
            CreateTable(
                TABLE,
                columns=(
                    Column("id", ColumnType.STRING, length=64, primary_key=True),
                    Column("name", ColumnType.STRING, length=200),
                    Column("parent_id", ColumnType.STRING, length=64, nullable=True),
                    Column("state", ColumnType.STRING, length=16),
                    Column("created_at", ColumnType.DATETIME),
                ),
                # The tree is not tenant data: the service decides who sees which tenant.
                tenant_scoped=False,
            ),
            CreateIndex(TABLE, "tenants_tenant_parent", ("parent_id",)),
        ),
    ),
)


def define_entities(db: Database) -> TenantEntities:
    class TenantRecord(Global, db.Entity):  # type: ignore[misc]
        _table_ = TABLE
        id = PrimaryKey(str, 64)
        name = Required(str, 200)
        parent_id = Optional(str, 64, nullable=True)
        state = Required(str, 16)
        created_at = Required(datetime, precision=6)

    return TenantEntities(Tenant=TenantRecord)
