"""Portable schema changes: what a module's migrations are made of.

Modules never write backend-specific SQL; each step below is rendered for SQLite, PostgreSQL and
MariaDB by the migration runner. Column types match what Pony maps entity attributes to, so an
entity declared with the same names and types binds to the migrated table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class ColumnType(StrEnum):
    STRING = "string"  # Pony: Required(str, max_len) -> VARCHAR(length)
    TEXT = "text"  # Pony: str without max_len, or LongStr
    INTEGER = "integer"  # Pony: int
    BIGINT = "bigint"  # Pony: int with size=64
    BOOLEAN = "boolean"  # Pony: bool
    FLOAT = "float"  # Pony: float
    DATETIME = "datetime"  # Pony: datetime (naive UTC by platform convention)


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    length: int | None = None  # required for STRING
    nullable: bool = False
    primary_key: bool = False
    default: str | int | float | bool | None = None  # applied to existing rows when added later
    # The database numbers new rows (Pony: PrimaryKey(int, auto=True)); INTEGER/BIGINT primary
    # key only, and the table's only primary key column.
    autoincrement: bool = False


@dataclass(frozen=True)
class CreateTable:
    table: str
    columns: tuple[Column, ...]
    tenant_scoped: bool  # adds the tenant_id row-level security policy on PostgreSQL


@dataclass(frozen=True)
class AddColumn:
    table: str
    column: Column


@dataclass(frozen=True)
class DropColumn:
    table: str
    column: str


@dataclass(frozen=True)
class CreateIndex:
    table: str
    name: str
    columns: tuple[str, ...]
    unique: bool = False


@dataclass(frozen=True)
class DropIndex:
    table: str
    name: str


@dataclass(frozen=True)
class DropTable:
    table: str


Step = CreateTable | AddColumn | DropColumn | CreateIndex | DropIndex | DropTable


@dataclass(frozen=True)
class Migration:
    """One versioned change of a module's schema; versions start at 1 and increase by 1."""

    version: int
    name: str
    steps: tuple[Step, ...]


def tenant_tables(migrations: Sequence[Migration], *, up_to: int) -> list[str]:
    """The tenant tables that ``migrations`` up to version ``up_to`` leave in the database."""
    tables: set[str] = set()
    for migration in migrations:
        if migration.version > up_to:
            break
        for step in migration.steps:
            if isinstance(step, CreateTable) and step.tenant_scoped:
                tables.add(step.table)
            elif isinstance(step, DropTable):
                tables.discard(step.table)
    return sorted(tables)
