"""What the usage and quota endpoints answer."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hyperspot.modules.ai.config import Period
from hyperspot.platform.fields import UtcDatetime

FAILED = "failed"
REFUSED = frozenset({"policy", "quota", "refused"})


class UsageRow(BaseModel):
    """One day, model and provider (and tenant, in the administrators' report)."""

    tenant: str | None = Field(default=None, description="Set in the all-tenants report only.")
    day: date
    model: str
    provider: str = Field(
        description="The provider that answered, or the last one tried; empty for calls "
        "refused before any provider (policy, quota)."
    )
    requests: int = Field(description="Calls recorded, refused ones included.")
    tokens_in: int
    tokens_out: int
    failures: int = Field(description="Calls every provider failed (or failed mid-stream).")
    refused: int = Field(description="Calls refused by policy, quota or the provider.")


class UsageTotals(BaseModel):
    requests: int
    tokens_in: int
    tokens_out: int
    failures: int
    refused: int


class UsageReport(BaseModel):
    start: date = Field(alias="from", description="The first day reported (UTC).")
    end: date = Field(alias="to", description="The last day reported (UTC).")
    rows: list[UsageRow]
    totals: UsageTotals

    model_config = ConfigDict(populate_by_name=True)

    @classmethod
    def of(
        cls, first: date, last: date, grouped: Iterable[tuple[Any, ...]], *, per_tenant: bool
    ) -> UsageReport:
        """From (tenant, day, model, provider, outcome, calls, tokens_in, tokens_out) groups."""
        rows: dict[tuple[str | None, str, str, str], UsageRow] = {}
        for tenant, day, model, provider, outcome, calls, tokens_in, tokens_out in grouped:
            key = (tenant if per_tenant else None, day, model, provider or "")
            row = rows.get(key)
            if row is None:
                row = rows[key] = UsageRow(
                    tenant=key[0],
                    day=date.fromisoformat(day),
                    model=model,
                    provider=key[3],
                    requests=0,
                    tokens_in=0,
                    tokens_out=0,
                    failures=0,
                    refused=0,
                )
            row.requests += int(calls)
            row.tokens_in += int(tokens_in or 0)
            row.tokens_out += int(tokens_out or 0)
            if outcome == FAILED:
                row.failures += int(calls)
            elif outcome in REFUSED:
                row.refused += int(calls)
        ordered = [rows[key] for key in sorted(rows, key=lambda k: (k[1], k[0] or "", k[2], k[3]))]
        totals = UsageTotals(
            requests=sum(r.requests for r in ordered),
            tokens_in=sum(r.tokens_in for r in ordered),
            tokens_out=sum(r.tokens_out for r in ordered),
            failures=sum(r.failures for r in ordered),
            refused=sum(r.refused for r in ordered),
        )
        return cls(start=first, end=last, rows=ordered, totals=totals)


class QuotaStatus(BaseModel):
    """The caller's tenant's budget in the current period."""

    period: Period
    period_start: UtcDatetime
    resets_at: UtcDatetime
    tokens_used: int
    tokens_limit: int | None = Field(description="Null: unlimited.")
    requests_used: int
    requests_limit: int | None = Field(description="Null: unlimited.")
