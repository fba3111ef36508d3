"""The platform's administration operations: /metrics, /admin/stats, /admin/traces, /admin/reload.

The monitoring ones show every tenant's traffic, so they require ``platform:observe``; reloading
the configuration requires ``platform:configure``. Only platform administrators hold either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

from hyperspot.platform.gateway.operations import Call, Reply, RestApi
from hyperspot.platform.gateway.problems import Problem
from hyperspot.platform.identity import Permission
from hyperspot.platform.observability.instrument import Observability
from hyperspot.platform.observability.models import (
    ModuleStatus,
    StatsReport,
    TraceDetail,
    TraceList,
    TraceSummary,
)
from hyperspot.platform.observability.tracing import LogsFor

OBSERVE = Permission("platform:observe", "Read every tenant's metrics, statistics and traces")
CONFIGURE = Permission("platform:configure", "Reload the configuration without a restart")
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

ModuleStatuses = Callable[[], Awaitable[list[ModuleStatus]]]


class ReloadReport(BaseModel):
    """What a configuration reload did; ``rejected`` leaves the running configuration as it was."""

    status: Literal["applied", "unchanged", "partial", "rejected"] = Field(
        description=(
            "'applied': every changed module section took effect; 'unchanged': nothing a reload "
            "can apply changed; 'partial': a module refused its new section and keeps its old "
            "one (see errors); 'rejected': the new configuration is invalid, nothing changed."
        )
    )
    applied: list[str] = Field(
        default_factory=list, description="Modules whose new section is now in force."
    )
    restart_required: list[str] = Field(
        default_factory=list,
        description="Changed settings a reload cannot apply (ports, database, placement...).",
    )
    errors: list[str] = Field(default_factory=list)
    detail: str = ""


Reload = Callable[[], Awaitable[ReloadReport]]


class StatsQuery(BaseModel):
    # Query values arrive as text; the literal check needs the number.
    window_minutes: Annotated[Literal[5, 15, 60], BeforeValidator(int)] = 5
    tenant: str | None = None
    module: str | None = None
    route: str | None = Field(default=None, description="A route template, e.g. /notes/v1/notes.")


class TracesQuery(BaseModel):
    route: str | None = None
    module: str | None = None
    tenant: str | None = None
    min_ms: float | None = Field(default=None, ge=0, description="Only traces at least this slow.")
    order: Literal["recent", "slowest"] = "recent"
    limit: int = Field(default=50, ge=1, le=500)


class TracePath(BaseModel):
    trace_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="32 hex digits.")


def _matches(summary: TraceSummary, query: TracesQuery) -> bool:
    return (
        (query.route is None or summary.route == query.route)
        and (query.module is None or summary.module == query.module)
        and (query.tenant is None or summary.tenant == query.tenant)
        and (query.min_ms is None or summary.duration_ms >= query.min_ms)
    )


def register_admin(
    api: RestApi,
    observability: Observability,
    modules: ModuleStatuses,
    logs_for: LogsFor,
    rate_class: str,
) -> None:
    async def metrics(call: Call) -> Reply:
        if observability.metrics is None:
            raise Problem(404, "metrics are disabled (observability.metrics.enabled)")
        text = observability.metrics.render(await modules()).decode()
        return Reply(200, text=text)

    async def stats(call: Call) -> StatsReport:
        if observability.metrics is None:
            raise Problem(404, "metrics are disabled (observability.metrics.enabled)")
        query = call.query(StatsQuery)
        return observability.metrics.window.report(
            window_minutes=query.window_minutes,
            thresholds=observability.thresholds,
            modules=await modules(),
            tenant=query.tenant,
            module=query.module,
            route=query.route,
        )

    async def traces(call: Call) -> TraceList:
        query = call.query(TracesQuery)
        ring = observability.ring
        found = [s for s in ring.summaries() if _matches(s, query)] if ring else []
        if query.order == "slowest":
            found.sort(key=lambda s: s.duration_ms, reverse=True)
        return TraceList(items=found[: query.limit])

    async def trace(call: Call) -> TraceDetail:
        trace_id = call.path(TracePath).trace_id
        ring = observability.ring
        detail = ring.detail(trace_id, logs_for) if ring else None
        if detail is None:
            raise Problem(404, f"no recent trace {trace_id}")
        return detail

    (
        api.operation("GET", "/metrics", "platform.metrics")
        .summary("Prometheus metrics of this instance")
        .text(200, PROMETHEUS_TEXT, "Prometheus text exposition format")
        .error(404, "Metrics are disabled")
        .require(OBSERVE.name)
        .rate_limit(rate_class)
        .handler(metrics)
    )
    (
        api.operation("GET", "/admin/stats", "platform.request_stats")
        .summary("Request rate, errors and latency percentiles per route over a recent window")
        .query(StatsQuery)
        .response(200, StatsReport)
        .error(404, "Metrics are disabled")
        .require(OBSERVE.name)
        .rate_limit(rate_class)
        .handler(stats)
    )
    (
        api.operation("GET", "/admin/traces", "platform.list_traces")
        .summary("Recent traces (kept in memory by the 'ring' exporter)")
        .query(TracesQuery)
        .response(200, TraceList)
        .require(OBSERVE.name)
        .rate_limit(rate_class)
        .handler(traces)
    )
    (
        api.operation("GET", "/admin/traces/{trace_id}", "platform.get_trace")
        .summary("One recent trace: its span tree and its log lines")
        .path_params(TracePath)
        .response(200, TraceDetail)
        .error(404, "No such recent trace")
        .require(OBSERVE.name)
        .rate_limit(rate_class)
        .handler(trace)
    )


def register_reload(api: RestApi, reload: Reload, rate_class: str) -> None:
    async def reload_config(call: Call) -> ReloadReport:
        report = await reload()
        if report.status == "rejected":
            raise Problem(
                422,
                "invalid configuration, the running one stays: " + "; ".join(report.errors),
                kind="invalid-configuration",
            )
        return report

    (
        api.operation("POST", "/admin/reload", "platform.reload_config")
        .summary("Re-read the config file and environment, and apply what can change live")
        .description(
            "The same as SIGHUP to the server. Each module whose section changed gets it through "
            "its reload hook; settings that need a restart are listed, not applied. With several "
            "worker processes, the others reload too."
        )
        .response(200, ReloadReport)
        .error(422, "The new configuration is invalid; the running one stays")
        .require(CONFIGURE.name)
        .rate_limit(rate_class)
        .handler(reload_config)
    )
