"""The data layer's public API: what module code imports."""

from hyperspot.platform.db.database import PlatformDatabase
from hyperspot.platform.db.faults import DatabaseUnavailableError, is_conflict, is_contention
from hyperspot.platform.db.listing import (
    ListField,
    ListParams,
    ListQueryError,
    ListSpec,
    Page,
    page,
)
from hyperspot.platform.db.schema import (
    AddColumn,
    Column,
    ColumnType,
    CreateIndex,
    CreateTable,
    DropColumn,
    DropIndex,
    DropTable,
    Migration,
)
from hyperspot.platform.db.session import Global, ScopedSession, TenantScoped, TenantViolationError

__all__ = [
    "AddColumn",
    "Column",
    "ColumnType",
    "CreateIndex",
    "CreateTable",
    "DatabaseUnavailableError",
    "DropColumn",
    "DropIndex",
    "DropTable",
    "Global",
    "ListField",
    "ListParams",
    "ListQueryError",
    "ListSpec",
    "Migration",
    "Page",
    "PlatformDatabase",
    "ScopedSession",
    "TenantScoped",
    "TenantViolationError",
    "is_conflict",
    "is_contention",
    "page",
]
