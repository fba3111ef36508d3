"""Budgets per tenant and period (UTC): when a period starts and when it resets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from hyperspot.modules.ai.config import Period, Quota
from hyperspot.modules.ai.contract import AiQuotaExceededError

# Seconds a call refused for the reservations of calls in progress is told to wait.
IN_PROGRESS_RETRY_S = 5
# Outcomes that count against the request budget: a provider answered (fully or in part). Calls
# refused before a provider was reached, and calls every provider failed, are free.
BILLED_OUTCOMES = frozenset({"ok", "refused", "quota_stopped", "disconnected"})
# Every period's totals are kept, whichever a tenant's quota uses, so that a quota changed to
# another period finds its totals right. Locked in this order.
PERIODS: tuple[Period, ...] = ("hour", "day", "month")


def period_bounds(period: Period, now: datetime) -> tuple[datetime, datetime]:
    """The current period's start and the next one's (naive UTC), around ``now``."""
    if period == "hour":
        start = now.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else (start.replace(month=start.month + 1))
    )
    return start, following


@dataclass(frozen=True)
class Spent:
    """What a tenant used in the current period."""

    tokens: int
    requests: int


class QuotaSpentError(AiQuotaExceededError):
    """The tenant's budget for the period is spent (rule ``quota.tokens`` or ``quota.requests``)."""

    def __init__(
        self,
        rule: str,
        limit: int,
        used: int,
        resets_at: datetime,
        now: datetime,
        *,
        needed: int | None = None,
    ):
        what = rule.removeprefix("quota.")
        if needed is None:
            state = f"is spent ({used} of {limit})"
        else:
            # Admitted, then found over the budget with the calls in progress counted.
            state = (
                f"has {max(limit - used, 0)} of {limit} left, counting calls in progress; "
                f"this call needs {needed}"
            )
        super().__init__(
            f"the tenant's {what} budget for this period {state}; it resets at "
            f"{resets_at.isoformat()}Z (rule {rule})"
        )
        self.rule = rule
        self.limit = limit
        self.used = used
        self.resets_at = resets_at
        until_reset = max(1, math.ceil((resets_at - now).total_seconds()))
        # Calls in progress give back what they do not use when they end: worth a retry soon.
        soon = min(IN_PROGRESS_RETRY_S, until_reset)
        self.retry_after_s = until_reset if needed is None else soon


def check_budget(quota: Quota, spent: Spent, resets_at: datetime, now: datetime) -> int | None:
    """The tokens left in the period (None: unlimited); raises when either budget is spent."""
    if quota.requests is not None and spent.requests >= quota.requests:
        raise QuotaSpentError("quota.requests", quota.requests, spent.requests, resets_at, now)
    if quota.tokens is None:
        return None
    if spent.tokens >= quota.tokens:
        raise QuotaSpentError("quota.tokens", quota.tokens, spent.tokens, resets_at, now)
    return quota.tokens - spent.tokens
