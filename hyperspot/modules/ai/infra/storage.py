"""Where usage lives: one row per call, and per tenant and period the budget's running totals;
both tenant-scoped, and the migrations that shape their tables."""

from __future__ import annotations

from datetime import datetime

from pony.orm import Database, Optional, PrimaryKey, Required

from hyperspot.modules.ai.domain.ports import (
    BUDGET_ID_LENGTH,
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
            # Quotas sum a tenant's current period; reports read a tenant's days.
            CreateIndex(TABLE, "ai_usage_tenant_created", ("tenant_id", "created_at")),
            CreateIndex(TABLE, "ai_usage_tenant_day", ("tenant_id", "day")),
        ),
    ),
    Migration(
        version=2,
        name="create budget counters",
        steps=(
            CreateTable(
                BUDGET_TABLE,
                columns=(
                    Column("id", ColumnType.STRING, length=BUDGET_ID_LENGTH, primary_key=True),
                    Column("tenant_id", ColumnType.STRING, length=64),
                    Column("period", ColumnType.STRING, length=8),
                    Column("starts_at", ColumnType.DATETIME),
                    Column("ends_at", ColumnType.DATETIME),
                    Column("tokens", ColumnType.BIGINT),
                    Column("requests", ColumnType.BIGINT),
                    Column("epoch", ColumnType.STRING, length=36),
                ),
                tenant_scoped=True,
            ),
            # Old periods' counters are deleted by tenant and end.
            CreateIndex(BUDGET_TABLE, "ai_budget_tenant_ends", ("tenant_id", "ends_at")),
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
        id = PrimaryKey(str, BUDGET_ID_LENGTH)
        tenant_id = Required(str, 64)
        period = Required(str, 8)
        starts_at = Required(datetime, precision=6)
        ends_at = Required(datetime, precision=6)
        tokens = Required(int, size=64)
        requests = Required(int, size=64)
        epoch = Required(str, 36)

    return AiEntities(Usage=UsageRow, Budget=BudgetRow)
