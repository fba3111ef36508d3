"""What the admin observability endpoints answer (and the dashboard reads)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

AttributeValue = str | int | float | bool


class RouteStats(BaseModel):
    module: str
    method: str
    route: str = Field(description="The route template, e.g. /notes/v1/notes/{note_id}.")
    requests: int
    rate_per_s: float
    errors: int = Field(description="Answers with a 5xx status.")
    error_rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    threshold_ms: float
    breaches: int = Field(description="Requests slower than the threshold.")
    over_threshold: bool = Field(description="p95 is above the route's latency threshold.")


class TenantStats(BaseModel):
    tenant: str
    requests: int
    errors: int


class ModuleStatus(BaseModel):
    name: str
    state: str
    healthy: bool
    detail: str = ""


class StatsReport(BaseModel):
    window_minutes: int
    generated_at: datetime
    requests: int
    rate_per_s: float
    error_rate: float
    routes: list[RouteStats]
    tenants: list[TenantStats] = Field(description="Busiest first.")
    modules: list[ModuleStatus]


class TraceSummary(BaseModel):
    trace_id: str
    name: str
    module: str
    method: str
    route: str
    status: int | None
    tenant: str
    started_at: datetime
    duration_ms: float
    spans: int
    error: bool


class TraceList(BaseModel):
    items: list[TraceSummary]


class SpanView(BaseModel):
    span_id: str
    parent_id: str | None
    depth: int = Field(description="0 for the root; the list is in depth-first order.")
    name: str
    start_offset_ms: float = Field(description="From the start of the trace.")
    duration_ms: float
    status: Literal["ok", "error", "unset"]
    attributes: dict[str, AttributeValue]


class LogLine(BaseModel):
    at: datetime
    level: str
    logger: str
    message: str
    span_id: str


class TraceDetail(TraceSummary):
    span_tree: list[SpanView]
    logs: list[LogLine]
