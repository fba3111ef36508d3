"""Traces: an OpenTelemetry tracer per runtime, and a ring buffer of recent traces.

The ring buffer is an exporter like any other (beside console and OTLP, chosen in config); it keeps
whole traces, newest last, so administrators can list and open them (``/admin/traces``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import StatusCode

from hyperspot import __version__
from hyperspot.platform.config import TracingSettings
from hyperspot.platform.observability.models import (
    AttributeValue,
    LogLine,
    SpanView,
    TraceDetail,
    TraceSummary,
)

# Attributes the gateway sets on a request's root span; summaries are read from them.
ROUTE = "http.route"
METHOD = "http.request.method"
STATUS = "http.response.status_code"
MODULE = "hyperspot.module"
TENANT = "hyperspot.tenant"
REQUEST_ID = "hyperspot.request_id"

LogsFor = Callable[[str], list[LogLine]]


def trace_hex(trace_id: int) -> str:
    return format(trace_id, "032x")


def span_hex(span_id: int) -> str:
    return format(span_id, "016x")


_STATUS_NAMES: dict[StatusCode, Literal["ok", "error", "unset"]] = {
    StatusCode.OK: "ok",
    StatusCode.ERROR: "error",
    StatusCode.UNSET: "unset",
}


def _ms(nanoseconds: int) -> float:
    return round(nanoseconds / 1e6, 3)


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """What the ring keeps of a span: plain values only.

    A ReadableSpan drags a dozen objects along (attributes with a lock, context, status, ...);
    thousands of those kept alive make every full garbage collection slower for the server.
    """

    span_id: int
    parent_id: int | None
    name: str
    start: int
    end: int
    status: Literal["ok", "error", "unset"]
    attributes: tuple[tuple[str, AttributeValue], ...]

    def attribute(self, key: str, default: AttributeValue = "") -> AttributeValue:
        return next((value for name, value in self.attributes if name == key), default)


def _record(span: ReadableSpan) -> SpanRecord:
    assert span.context is not None
    return SpanRecord(
        span_id=span.context.span_id,
        parent_id=span.parent.span_id if span.parent is not None else None,
        name=span.name,
        start=span.start_time or 0,
        end=span.end_time or span.start_time or 0,
        status=_STATUS_NAMES[span.status.status_code],
        attributes=tuple(
            (key, value if isinstance(value, str | int | float | bool) else str(value))
            for key, value in (span.attributes or {}).items()
        ),
    )


class TraceRing(SpanProcessor):
    """The most recent ``max_traces`` traces, whole. Spans arrive from any thread.

    A processor rather than an exporter: handing each span to an exporter costs a context switch
    per span, and keeping a small record is all the ring needs.
    """

    def __init__(self, max_traces: int) -> None:
        self.max_traces = max_traces
        self._traces: OrderedDict[int, list[SpanRecord]] = OrderedDict()
        self._lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None:
            return
        trace_id, record = span.context.trace_id, _record(span)
        with self._lock:
            self._traces.setdefault(trace_id, []).append(record)
            self._traces.move_to_end(trace_id)
            if len(self._traces) > self.max_traces:
                self._traces.popitem(last=False)

    def shutdown(self) -> None:
        with self._lock:
            self._traces.clear()

    def summaries(self) -> list[TraceSummary]:
        """Every complete trace (its root span has ended), newest first."""
        with self._lock:
            traces = [(trace_id, list(spans)) for trace_id, spans in self._traces.items()]
        found = [_summary(trace_id, spans) for trace_id, spans in reversed(traces)]
        return [summary for summary in found if summary is not None]

    def detail(self, trace_hex_id: str, logs_for: LogsFor) -> TraceDetail | None:
        try:
            trace_id = int(trace_hex_id, 16)
        except ValueError:
            return None
        with self._lock:
            spans = list(self._traces.get(trace_id, ()))
        summary = _summary(trace_id, spans)
        if summary is None:
            return None
        return TraceDetail(
            **summary.model_dump(), span_tree=_tree(spans), logs=logs_for(summary.trace_id)
        )


def _root(spans: list[SpanRecord]) -> SpanRecord | None:
    ids = {span.span_id for span in spans}
    roots = [s for s in spans if s.parent_id is None or s.parent_id not in ids]
    return min(roots, key=lambda s: s.start) if roots else None


def _summary(trace_id: int, spans: list[SpanRecord]) -> TraceSummary | None:
    root = _root(spans)
    if root is None:
        return None
    status = root.attribute(STATUS, 0)
    return TraceSummary(
        trace_id=trace_hex(trace_id),
        name=root.name,
        module=str(root.attribute(MODULE)),
        method=str(root.attribute(METHOD)),
        route=str(root.attribute(ROUTE)),
        status=int(status) if isinstance(status, int) and status else None,
        tenant=str(root.attribute(TENANT)),
        started_at=datetime.fromtimestamp(root.start / 1e9, UTC),
        duration_ms=_ms(root.end - root.start),
        spans=len(spans),
        error=any(s.status == "error" for s in spans),
    )


def _tree(spans: list[SpanRecord]) -> list[SpanView]:
    root = _root(spans)
    assert root is not None
    children: dict[int | None, list[SpanRecord]] = {}
    for span in spans:
        children.setdefault(None if span is root else span.parent_id, []).append(span)
    views: list[SpanView] = []

    def walk(span: SpanRecord, depth: int) -> None:
        views.append(
            SpanView(
                span_id=span_hex(span.span_id),
                parent_id=span_hex(span.parent_id) if span.parent_id and depth else None,
                depth=depth,
                name=span.name,
                start_offset_ms=_ms(span.start - root.start),
                duration_ms=_ms(span.end - span.start),
                status=span.status,
                attributes=dict(span.attributes),
            )
        )
        for child in sorted(children.get(span.span_id, []), key=lambda s: s.start):
            walk(child, depth + 1)

    walk(root, 0)
    return views


def build_tracer(
    settings: TracingSettings,
) -> tuple[trace.Tracer, TracerProvider, TraceRing | None]:
    """The runtime's tracer; not installed globally, so several runtimes never share state."""
    sampler = ParentBased(TraceIdRatioBased(settings.sample_ratio))
    resource = Resource.create({"service.name": "hyperspot", "service.version": __version__})
    provider = TracerProvider(sampler=sampler, resource=resource)
    ring = None
    if not settings.enabled:
        provider = TracerProvider(sampler=TraceIdRatioBased(0.0), resource=resource)
        return provider.get_tracer("hyperspot"), provider, None
    for exporter in settings.exporters:
        if exporter == "ring":
            ring = TraceRing(settings.ring_traces)
            provider.add_span_processor(ring)
        elif exporter == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            # Imported here: the exporter and its protobuf code cost ~10 MB, for OTLP users only.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint))
            )
    return provider.get_tracer("hyperspot"), provider, ring
