"""Where usage lives: one row per call, and one row per tenant of running totals for the current
hour, day and month; both tenant-scoped, and the migrations that shape their tables."""

from __future__ import annotations

from datetime import datetime

from pony.orm import Database, Optional, PrimaryKey, Required

from hyperspot.modules.ai.domain.ports import (
    MODEL_LENGTH,
    PROVIDER_LENGTH,
    SUBJECT_LENGTH,
    AiEntities,
)
from hyperspot.platform.db import (
    Column,
    ColumnType,
    CreateIndex,
    CreateTable,
    Migration,
    TenantScoped,
)

TABLE = "ai_usage"
BUDGET_TABLE = "ai_budget"

MIGRATIONS = (
    Migration(
        version=1,
        name="create usage",
        steps=(
            CreateTable(
                TABLE,
                columns=(
                    Column("id", ColumnType.STRING, length=36, primary_key=True),
                    Column("tenant_id", ColumnType.STRING, length=64),
                    Column("subject", ColumnType.STRING, length=SUBJECT_LENGTH),
                    Column("model", ColumnType.STRING, length=MODEL_LENGTH),
                    Column("provider", ColumnType.STRING, length=PROVIDER_LENGTH),
                    Column("kind", ColumnType.STRING, length=16),
                    Column("tokens_in", ColumnType.INTEGER),
                    Column("tokens_out", ColumnType.INTEGER),
                    Column("latency_ms", ColumnType.INTEGER),
                    Column("outcome", ColumnType.STRING, length=16),
                    # The UTC day (YYYY-MM-DD): reports group by it the same way on every engine.
                    Column("day", ColumnType.STRING, length=10),
                    Column("created_at", ColumnType.DATETIME),
                ),
                tenant_scoped=True,
            ),
            # Budget totals are rebuilt from a tenant's period; reports read a tenant's days.
            CreateIndex(TABLE, "ai_usage_tenant_created", ("tenant_id", "created_at")),
            CreateIndex(TABLE, "ai_usage_tenant_day", ("tenant_id", "day")),
        ),
    ),
    Migration(
        version=2,
        name="create budget totals",
        steps=(
            CreateTable(
                BUDGET_TABLE,
                columns=(
                    # The tenant's id: one row per tenant.
                    Column("id", ColumnType.STRING, length=64, primary_key=True),
                    Column("tenant_id", ColumnType.STRING, length=64),
                    Column("epoch", ColumnType.STRING, length=36),
                    Column("hour_start", ColumnType.DATETIME),
                    Column("hour_tokens", ColumnType.BIGINT),
                    Column("hour_requests", ColumnType.BIGINT),
                    Column("day_start", ColumnType.DATETIME),
                    Column("day_tokens", ColumnType.BIGINT),
                    Column("day_requests", ColumnType.BIGINT),
                    Column("month_start", ColumnType.DATETIME),
                    Column("month_tokens", ColumnType.BIGINT),
                    Column("month_requests", ColumnType.BIGINT),
                ),
                tenant_scoped=True,
            ),
        ),
    ),
)


def define_entities(db: Database) -> AiEntities:
    class UsageRow(TenantScoped, db.Entity):  # type: ignore[misc]
        _table_ = TABLE
        id = PrimaryKey(str, 36)
        tenant_id = Required(str, 64)
        subject = Optional(str, SUBJECT_LENGTH)
        model = Required(str, MODEL_LENGTH)
        # Empty when no provider was reached (refused by policy or quota).
        provider = Optional(str, PROVIDER_LENGTH)
        kind = Required(str, 16)
        tokens_in = Required(int)
        tokens_out = Required(int)
        latency_ms = Required(int)
        outcome = Required(str, 16)
        day = Required(str, 10)
        created_at = Required(datetime, precision=6)

    class BudgetRow(TenantScoped, db.Entity):  # type: ignore[misc]
        _table_ = BUDGET_TABLE
        id = PrimaryKey(str, 64)
        tenant_id = Required(str, 64)
        epoch = Required(str, 36)
        hour_start = Required(datetime, precision=6)
        hour_tokens = Required(int, size=64)
        hour_requests = Required(int, size=64)
        day_start = Required(datetime, precision=6)
        day_tokens = Required(int, size=64)
        day_requests = Required(int, size=64)
        month_start = Required(datetime, precision=6)
        month_tokens = Required(int, size=64)
        month_requests = Required(int, size=64)

    return AiEntities(Usage=UsageRow, Budget=BudgetRow)
