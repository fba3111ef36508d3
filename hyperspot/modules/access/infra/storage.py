"""Where roles, role assignments and API keys live: entities and migrations."""

from __future__ import annotations

from datetime import datetime

from pony.orm import Database, Optional, PrimaryKey, Required

from hyperspot.modules.access.domain.ports import AccessEntities
from hyperspot.platform.db import (
    Column,
    ColumnType,
    CreateIndex,
    CreateTable,
    Migration,
    TenantScoped,
)

ROLES = "access_role"
ASSIGNMENTS = "access_assignment"
API_KEYS = "access_api_key"


def _tenant_table(table: str, *columns: Column) -> CreateTable:
    return CreateTable(
        table,
        columns=(
            Column("id", ColumnType.STRING, length=36, primary_key=True),
            Column("tenant_id", ColumnType.STRING, length=64),
            *columns,
            Column("created_at", ColumnType.DATETIME),
            Column("created_by", ColumnType.STRING, length=200),
        ),
        tenant_scoped=True,
    )


MIGRATIONS = (
    Migration(
        version=1,
        name="roles, assignments and API keys",
        steps=(
            _tenant_table(
                ROLES,
                Column("name", ColumnType.STRING, length=63),
                Column("description", ColumnType.STRING, length=500),
                # Space-separated permission names (Pony's Json type is broken on MariaDB).
                Column("permissions", ColumnType.TEXT),
            ),
            CreateIndex(ROLES, "access_role_tenant_name", ("tenant_id", "name"), unique=True),
            _tenant_table(
                ASSIGNMENTS,
                Column("subject", ColumnType.STRING, length=200),
                Column("role", ColumnType.STRING, length=63),
            ),
            CreateIndex(
                ASSIGNMENTS,
                "access_assignment_tenant_subject_role",
                ("tenant_id", "subject", "role"),
                unique=True,
            ),
            _tenant_table(
                API_KEYS,
                Column("name", ColumnType.STRING, length=100),
                Column("subject", ColumnType.STRING, length=200),
                Column("roles", ColumnType.TEXT),
                Column("secret_hash", ColumnType.STRING, length=64),
                Column("revoked_at", ColumnType.DATETIME, nullable=True),
            ),
            CreateIndex(API_KEYS, "access_api_key_tenant_name", ("tenant_id", "name")),
        ),
    ),
)


def define_entities(db: Database) -> AccessEntities:
    class RoleRow(TenantScoped, db.Entity):  # type: ignore[misc]
        _table_ = ROLES
        id = PrimaryKey(str, 36)
        tenant_id = Required(str, 64)
        name = Required(str, 63)
        description = Optional(str, 500)
        permissions = Optional(str, autostrip=False)
        created_at = Required(datetime, precision=6)
        created_by = Required(str, 200)

    class AssignmentRow(TenantScoped, db.Entity):  # type: ignore[misc]
        _table_ = ASSIGNMENTS
        id = PrimaryKey(str, 36)
        tenant_id = Required(str, 64)
        subject = Required(str, 200)
        role = Required(str, 63)
        created_at = Required(datetime, precision=6)
        created_by = Required(str, 200)

    class ApiKeyRow(TenantScoped, db.Entity):  # type: ignore[misc]
        _table_ = API_KEYS
        id = PrimaryKey(str, 36)
        tenant_id = Required(str, 64)
        name = Required(str, 100)
        subject = Required(str, 200)
        roles = Optional(str, autostrip=False)
        secret_hash = Required(str, 64)
        revoked_at = Optional(datetime, precision=6)
        created_at = Required(datetime, precision=6)
        created_by = Required(str, 200)

    return AccessEntities(Role=RoleRow, Assignment=AssignmentRow, ApiKey=ApiKeyRow)
