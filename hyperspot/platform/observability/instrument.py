"""Wiring: what the gateway, the database and the client hub report to traces and metrics."""

from __future__ import annotations

import functools
import inspect
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from hyperspot.platform.config import ObservabilitySettings
from hyperspot.platform.db.database import PlatformDatabase
from hyperspot.platform.observability.metrics import (
    PlatformMetrics,
    Sample,
    ThresholdLookup,
)
from hyperspot.platform.observability.tracing import build_tracer

logger = logging.getLogger("hyperspot.observability")

_VERB = re.compile(r"^\s*(\w+)")
_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN|TABLE)\s+[\"`]?(\w+)", re.IGNORECASE)


def statement_summary(sql: str) -> tuple[str, str]:
    """(operation, table) of a statement: what a span may show; never its parameter values."""
    verb = _VERB.match(sql)
    table = _TABLE.search(sql)
    return (verb.group(1).upper() if verb else "SQL"), (table.group(1) if table else "")


class Observability:
    """One runtime's tracer, trace ring, metrics and latency thresholds."""

    def __init__(self, settings: ObservabilitySettings) -> None:
        self.settings = settings
        self.tracer, self.provider, self.ring = build_tracer(settings.tracing)
        self.metrics = PlatformMetrics(settings.metrics) if settings.metrics.enabled else None
        self.thresholds = ThresholdLookup(settings.latency_thresholds_ms)

    def record_request(self, sample: Sample) -> None:
        threshold = self.thresholds(sample.method, sample.route)
        slow = sample.duration_ms > threshold
        if slow:
            logger.warning(
                "slow request: %s %s took %.1f ms (threshold %.0f ms)",
                sample.method,
                sample.route,
                sample.duration_ms,
                threshold,
                extra={"duration_ms": round(sample.duration_ms, 2), "threshold_ms": threshold},
            )
        if self.metrics is not None:
            self.metrics.observe(sample, slow=slow)

    def instrument_database(self, database: PlatformDatabase) -> None:
        """A span and a latency observation per statement (Pony's provider executes them all)."""
        provider = database.schema.provider
        execute = provider.execute
        tracer, metrics = self.tracer, self.metrics
        system = database.url.backend

        @functools.wraps(execute)
        def traced_execute(cursor: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
            operation, table = statement_summary(sql)
            attributes = {"db.system": system, "db.operation.name": operation}
            if table:
                attributes["db.collection.name"] = table
            started = time.perf_counter()
            with tracer.start_as_current_span(
                f"{operation} {table}".strip(), kind=SpanKind.CLIENT, attributes=attributes
            ):
                try:
                    return execute(cursor, sql, *args, **kwargs)
                finally:
                    if metrics is not None:
                        metrics.db_latency.labels(operation).observe(time.perf_counter() - started)

        provider.execute = traced_execute

    def traced_client(self, contract: str, client: object) -> object:
        """``client`` whose async methods each run in a span named after the contract."""
        calls = [
            name
            for name in dir(client)
            if not name.startswith("_") and inspect.iscoroutinefunction(getattr(client, name))
        ]
        # Plain data (e.g. the permission catalogue) is handed out as it is.
        return _TracedClient(contract, client, self.tracer) if calls else client

    def shutdown(self) -> None:
        self.provider.shutdown()


class _TracedClient:
    def __init__(self, contract: str, client: object, tracer: trace.Tracer) -> None:
        self._contract = contract
        self._client = client
        self._tracer = tracer

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute
        wrapped = self._wrap(name, attribute)
        # Found once: later lookups hit the instance attribute, not __getattr__.
        setattr(self, name, wrapped)
        return wrapped

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        if not inspect.iscoroutinefunction(method):
            return method
        span_name = f"client {self._contract}.{name}"
        tracer = self._tracer

        @functools.wraps(method)
        async def traced(*args: Any, **kwargs: Any) -> Any:
            with tracer.start_as_current_span(span_name, kind=SpanKind.INTERNAL) as span:
                try:
                    return await method(*args, **kwargs)
                except Exception as error:
                    span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                    raise

        return traced


async def _inject_traceparent(request: httpx.Request) -> None:
    propagate.inject(request.headers)


def traced_http_client(**options: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose requests carry the current trace (W3C ``traceparent``),
    so that the server called continues the caller's trace: the way modules call out over HTTP.
    """
    hooks = options.pop("event_hooks", {})
    hooks.setdefault("request", []).append(_inject_traceparent)
    return httpx.AsyncClient(event_hooks=hooks, **options)
