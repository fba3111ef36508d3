"""Prometheus metrics (``/metrics``) and the recent-request window behind ``/admin/stats``.

Each runtime has its own registry, so tests and several runtimes never share counters. Tenant
labels are bounded: the first ``tenant_labels`` tenants seen get their own label, the rest share
``other`` (a label, once given, must keep counting in the same series).
"""

from __future__ import annotations

import bisect
import math
import time
from array import array
from collections import Counter as Tally
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

from hyperspot.platform.config import MetricsSettings
from hyperspot.platform.observability.models import (
    ModuleStatus,
    RouteStats,
    StatsReport,
    TenantStats,
)

OTHER = "other"
NO_TENANT = "-"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
DB_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)
# The window keeps at most this many requests, whatever its length in minutes.
MAX_SAMPLES = 500_000
# Requests per block of the window's memory: it is freed a block at a time.
CHUNK = 4096


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    module: str
    method: str
    route: str
    status: int
    tenant: str
    duration_ms: float


class TenantLabels:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._labelled: set[str] = set()

    def label(self, tenant: str) -> str:
        if tenant in self._labelled or tenant == NO_TENANT:
            return tenant
        if len(self._labelled) < self.limit:
            self._labelled.add(tenant)
            return tenant
        return OTHER


class ModuleMetrics:
    """A module's own metrics (``ctx.metrics``), in its runtime's registry, shown on /metrics.

    Names get the prefix ``hyperspot_<module>_``; tenant label values go through :meth:`tenant`,
    the platform's bounded labels (the first ``tenant_labels`` tenants, then ``other``). With
    metrics disabled the metrics still work but land in a registry nothing exposes.
    """

    def __init__(self, module: str, metrics: PlatformMetrics | None) -> None:
        self.prefix = f"hyperspot_{module}_"
        self.registry = metrics.registry if metrics is not None else CollectorRegistry()
        self._tenants = metrics.tenants if metrics is not None else TenantLabels(0)

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(self.prefix + name, documentation, labels, registry=self.registry)

    def histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        return Histogram(
            self.prefix + name, documentation, labels, buckets=buckets, registry=self.registry
        )

    def tenant(self, tenant_id: str) -> str:
        """The label value for ``tenant_id``: itself, or ``other`` past the platform's bound."""
        return self._tenants.label(tenant_id or NO_TENANT)


class PlatformMetrics:
    def __init__(self, settings: MetricsSettings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        labels = ["module", "route", "method", "status", "tenant"]
        self.requests = Counter(
            "hyperspot_http_requests", "Requests answered", labels, registry=self.registry
        )
        self.latency = Histogram(
            "hyperspot_http_request_duration_seconds",
            "Time to answer a request",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.slow = Counter(
            "hyperspot_http_slow_requests",
            "Requests slower than their route's latency threshold",
            ["module", "route", "method"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "hyperspot_http_requests_in_flight", "Requests being answered", registry=self.registry
        )
        self.db_latency = Histogram(
            "hyperspot_db_query_duration_seconds",
            "Time of one database statement",
            ["operation"],
            buckets=DB_BUCKETS,
            registry=self.registry,
        )
        self.module_healthy = Gauge(
            "hyperspot_module_healthy",
            "1 when the module is ready and healthy",
            ["module"],
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)  # memory, CPU, open files
        self.tenants = TenantLabels(settings.tenant_labels)
        self.window = RequestWindow(settings.window_minutes * 60)
        # labels() validates and locks on every call; the children of a label set never change.
        self._children: dict[tuple[str, ...], tuple[Counter, Histogram]] = {}

    def observe(self, sample: Sample, *, slow: bool) -> None:
        labels = (
            sample.module,
            sample.route,
            sample.method,
            str(sample.status),
            self.tenants.label(sample.tenant),
        )
        children = self._children.get(labels)
        if children is None:
            children = self._children[labels] = (
                self.requests.labels(*labels),
                self.latency.labels(*labels),
            )
        children[0].inc()
        children[1].observe(sample.duration_ms / 1000)
        if slow:
            self.slow.labels(sample.module, sample.route, sample.method).inc()
        self.window.add(sample)

    def render(self, modules: list[ModuleStatus]) -> bytes:
        for module in modules:
            self.module_healthy.labels(module.name).set(1 if module.healthy else 0)
        return generate_latest(self.registry)


class _Chunk:
    """Up to ``CHUNK`` requests as columns of machine numbers; ``start`` skips the expired ones."""

    __slots__ = ("at", "duration_ms", "route", "start", "status", "tenant")

    def __init__(self) -> None:
        self.at = array("d")
        self.route = array("I")
        self.tenant = array("I")
        self.status = array("H")
        self.duration_ms = array("f")
        self.start = 0


class RequestWindow:
    """The last ``span_s`` seconds of requests, for windowed rates and percentiles.

    Requests are kept as columns of numbers (22 bytes each, where a ``Sample`` object costs ~145),
    so a full window of ``MAX_SAMPLES`` holds ~11 MB rather than ~70 and a server's RSS under
    steady load no longer climbs for an hour. Routes and tenants are stored once each, by number;
    those tables grow with the routes and tenants seen, not with requests.
    """

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self._chunks: deque[_Chunk] = deque()
        self._routes: list[tuple[str, str, str]] = []
        self._route_ids: dict[tuple[str, str, str], int] = {}
        self._tenants: list[str] = []
        self._tenant_ids: dict[str, int] = {}

    def add(self, sample: Sample) -> None:
        route_key = (sample.module, sample.method, sample.route)
        route_id = self._route_ids.get(route_key)
        if route_id is None:
            route_id = self._route_ids[route_key] = len(self._routes)
            self._routes.append(route_key)
        tenant_id = self._tenant_ids.get(sample.tenant)
        if tenant_id is None:
            tenant_id = self._tenant_ids[sample.tenant] = len(self._tenants)
            self._tenants.append(sample.tenant)
        chunks = self._chunks
        if not chunks or len(chunks[-1].at) == CHUNK:
            chunks.append(_Chunk())
            if len(chunks) > MAX_SAMPLES // CHUNK:
                chunks.popleft()
        chunk = chunks[-1]
        chunk.at.append(sample.at)
        chunk.route.append(route_id)
        chunk.tenant.append(tenant_id)
        chunk.status.append(sample.status)
        chunk.duration_ms.append(sample.duration_ms)
        self._expire(sample.at - self.span_s)

    def _expire(self, horizon: float) -> None:
        chunks = self._chunks
        while chunks:
            chunk = chunks[0]
            while chunk.start < len(chunk.at) and chunk.at[chunk.start] < horizon:
                chunk.start += 1
            # Only whole chunks are freed, and never the one being filled.
            if chunk.start < CHUNK or len(chunks) == 1:
                return
            chunks.popleft()

    def __len__(self) -> int:
        return sum(len(chunk.at) - chunk.start for chunk in self._chunks)

    def report(
        self,
        *,
        window_minutes: int,
        thresholds: ThresholdLookup,
        modules: list[ModuleStatus],
        tenant: str | None = None,
        module: str | None = None,
        route: str | None = None,
    ) -> StatsReport:
        now = time.time()
        window_s = window_minutes * 60
        since = now - window_s
        wanted_routes = {
            route_id
            for route_id, (route_module, _, route_path) in enumerate(self._routes)
            if (module is None or route_module == module) and (route is None or route_path == route)
        }
        wanted_tenant = None if tenant is None else self._tenant_ids.get(tenant, -1)
        durations: dict[int, list[float]] = {}
        route_errors: Tally[int] = Tally()
        requests: Tally[int] = Tally()
        errors: Tally[int] = Tally()
        for chunk in self._chunks:
            rows = zip(
                chunk.at[chunk.start :],
                chunk.route[chunk.start :],
                chunk.tenant[chunk.start :],
                chunk.status[chunk.start :],
                chunk.duration_ms[chunk.start :],
                strict=True,
            )
            for at, route_id, tenant_id, status, duration_ms in rows:
                if at < since or route_id not in wanted_routes:
                    continue
                if wanted_tenant is not None and tenant_id != wanted_tenant:
                    continue
                durations.setdefault(route_id, []).append(duration_ms)
                requests[tenant_id] += 1
                if status >= 500:
                    route_errors[route_id] += 1
                    errors[tenant_id] += 1
        routes = sorted(
            (
                _route_stats(
                    (key := self._routes[route_id]),
                    durations[route_id],
                    route_errors[route_id],
                    window_s,
                    thresholds(key[1], key[2]),
                )
                for route_id in durations
            ),
            key=lambda stats: (stats.module, stats.method, stats.route),
        )
        total = requests.total()
        return StatsReport(
            window_minutes=window_minutes,
            generated_at=datetime.fromtimestamp(now, UTC),
            requests=total,
            rate_per_s=round(total / window_s, 3),
            error_rate=_ratio(errors.total(), total),
            routes=routes,
            tenants=[
                TenantStats(tenant=self._tenants[number], requests=count, errors=errors[number])
                for number, count in requests.most_common(10)
            ],
            modules=modules,
        )


class ThresholdLookup:
    """Latency threshold of a route: ``'GET /path'`` in config, else ``default``."""

    def __init__(self, thresholds: dict[str, float]) -> None:
        self.thresholds = thresholds
        self.default = thresholds.get("default", 1000.0)

    def __call__(self, method: str, route: str) -> float:
        return self.thresholds.get(f"{method} {route}", self.default)


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _percentile(ordered: list[float], fraction: float) -> float:
    # Nearest rank: a percentile is a latency that some request really had.
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return round(ordered[rank - 1], 3)


def _route_stats(
    key: tuple[str, str, str],
    durations: list[float],
    errors: int,
    window_s: float,
    threshold_ms: float,
) -> RouteStats:
    module, method, route = key
    durations.sort()
    p95 = _percentile(durations, 0.95)
    return RouteStats(
        module=module,
        method=method,
        route=route,
        requests=len(durations),
        rate_per_s=round(len(durations) / window_s, 3),
        errors=errors,
        error_rate=_ratio(errors, len(durations)),
        p50_ms=_percentile(durations, 0.5),
        p95_ms=p95,
        p99_ms=_percentile(durations, 0.99),
        threshold_ms=threshold_ms,
        breaches=len(durations) - bisect.bisect_right(durations, threshold_ms),
        over_threshold=p95 > threshold_ms,
    )
