"""Metrics, traces and logs of a real server, and the pieces they are computed with."""

from __future__ import annotations

import asyncio
import http.server
import json
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, Launcher, Server, add_tenant, bearer, secured_config
from prometheus_client.parser import text_string_to_metric_families

from hyperspot.platform.observability.instrument import statement_summary
from hyperspot.platform.observability.metrics import (
    OTHER,
    RequestWindow,
    Sample,
    TenantLabels,
    ThresholdLookup,
)
from hyperspot.platform.observability.tracing import TraceRing
from hyperspot.sandbox.databases import ProvisionedDatabase

DEPLOY = Path(__file__).parents[1] / "deploy" / "prometheus"
NOTES = "/notes/v1/notes"


@pytest.fixture
def server(launcher: Launcher, database: ProvisionedDatabase, tmp_path: Path) -> Server:
    config = secured_config(
        database.url.url,
        {
            "logging": {"format": "json"},
            # Every notes list is "slow": the breach must be logged and counted.
            "observability": {
                "latency_thresholds_ms": {"GET /notes/v1/notes": 0.0001},
                "tracing": {"sample_ratio": 1.0},
            },
        },
    )
    started = launcher.start(config)
    add_tenant(started, "acme")
    add_tenant(started, "globex")
    return started


def samples(server: Server, name: str) -> list[Any]:
    text = server.client.get("/metrics", headers=bearer(ROOT)).text
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def test_metrics_count_what_was_sent(server: Server) -> None:
    client = server.client
    for tenant, count in (("acme", 3), ("globex", 2)):
        headers = bearer(tenant, roles=("member",))
        for n in range(count):
            assert client.post(NOTES, json={"title": f"n{n}"}, headers=headers).status_code == 201
        assert client.get(NOTES, headers=headers).status_code == 200
    assert (
        client.get(f"{NOTES}/{uuid.uuid4()}", headers=bearer("acme", roles=("member",))).status_code
        == 404
    )
    counted = {
        (s.labels["method"], s.labels["route"], s.labels["status"], s.labels["tenant"]): s.value
        for s in samples(server, "hyperspot_http_requests_total")
        if s.labels["module"] == "notes"
    }
    assert counted == {
        ("POST", NOTES, "201", "acme"): 3,
        ("POST", NOTES, "201", "globex"): 2,
        ("GET", NOTES, "200", "acme"): 1,
        ("GET", NOTES, "200", "globex"): 1,
        ("GET", f"{NOTES}/{{note_id}}", "404", "acme"): 1,
    }
    buckets = [
        s
        for s in samples(server, "hyperspot_http_request_duration_seconds_count")
        if s.labels["route"] == NOTES and s.labels["method"] == "POST"
    ]
    assert sorted(s.value for s in buckets) == [2, 3]
    inf = [
        s
        for s in samples(server, "hyperspot_http_request_duration_seconds_bucket")
        if s.labels["route"] == NOTES and s.labels["le"] == "+Inf" and s.labels["tenant"] == "acme"
    ]
    assert sum(s.value for s in inf) == 4
    db = samples(server, "hyperspot_db_query_duration_seconds_count")
    assert {s.labels["operation"] for s in db} >= {"SELECT", "INSERT"}
    healthy = {s.labels["module"]: s.value for s in samples(server, "hyperspot_module_healthy")}
    assert healthy["notes"] == 1
    assert samples(server, "process_resident_memory_bytes")[0].value > 0
    slow = samples(server, "hyperspot_http_slow_requests_total")
    assert [(s.labels["route"], s.value) for s in slow] == [(NOTES, 2)]
    assert "slow request: GET /notes/v1/notes" in server.log()
    stats = client.get(
        "/admin/stats", params={"module": "notes", "window_minutes": 15}, headers=bearer(ROOT)
    ).json()
    assert stats["window_minutes"] == 15
    bad_window = client.get("/admin/stats", params={"window_minutes": 7}, headers=bearer(ROOT))
    assert bad_window.status_code == 400
    by_route = {(r["method"], r["route"]): r for r in stats["routes"]}
    assert by_route[("POST", NOTES)]["requests"] == 5
    assert by_route[("GET", NOTES)]["over_threshold"] is True
    assert [t["tenant"] for t in stats["tenants"]] == ["acme", "globex"]


def test_request_id_logs_and_trace_share_ids(server: Server) -> None:
    client = server.client
    parent_trace = uuid.uuid4().hex
    traceparent = f"00-{parent_trace}-{'1' * 16}-01"
    response = client.post(
        NOTES,
        json={"title": "traced"},
        headers={**bearer("acme", roles=("member",)), "traceparent": traceparent},
    )
    assert response.status_code == 201
    request_id, trace_id = response.headers["X-Request-Id"], response.headers["X-Trace-Id"]
    assert trace_id == parent_trace  # the caller's trace continues here
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("request_id") == request_id]
    assert mine and all(line["trace_id"] == trace_id for line in mine)
    assert all(line["tenant"] == "acme" and line["module"] == "notes" for line in mine)
    detail = client.get(f"/admin/traces/{trace_id}", headers=bearer(ROOT)).json()
    assert (detail["route"], detail["status"], detail["tenant"]) == (NOTES, 201, "acme")
    names = [span["name"] for span in detail["span_tree"]]
    assert names[0] == "POST /notes/v1/notes"
    assert "handler notes.create_note" in names
    assert any(name.startswith("INSERT notes_note") for name in names)
    assert any(name.startswith("client ") for name in names)
    handler = next(s for s in detail["span_tree"] if s["name"] == "handler notes.create_note")
    insert = next(s for s in detail["span_tree"] if s["name"].startswith("INSERT"))
    assert insert["depth"] > handler["depth"] > 0
    assert "traced" not in json.dumps(detail["span_tree"])  # no parameter values in spans
    assert any(log["message"].startswith("POST /notes/v1/notes 201") for log in detail["logs"])
    listed = client.get(
        "/admin/traces", params={"route": NOTES, "order": "slowest"}, headers=bearer(ROOT)
    ).json()["items"]
    assert trace_id in [t["trace_id"] for t in listed]


def test_monitoring_is_for_platform_administrators_only(server: Server) -> None:
    tenant_admin = bearer("acme")
    for path in ("/metrics", "/admin/stats", "/admin/traces", f"/admin/traces/{'0' * 32}"):
        response = server.client.get(path, headers=tenant_admin)
        assert response.status_code == 403, path
    assert server.client.get(f"/admin/traces/{'0' * 32}", headers=bearer(ROOT)).status_code == 404
    me = server.client.get("/access/v1/me", headers=tenant_admin).json()
    assert "platform:observe" not in me["permissions"]


def test_prometheus_rules_use_the_metrics_the_server_exports(server: Server) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert config["rule_files"] == ["hyperspot-rules.yml"]
    assert "retention.time=90d" in (DEPLOY / "prometheus.yml").read_text()
    groups = yaml.safe_load((DEPLOY / "hyperspot-rules.yml").read_text())["groups"]
    assert [g["interval"] for g in groups] == ["5m", "1h"]
    exported = server.client.get("/metrics", headers=bearer(ROOT)).text
    recorded = {rule["record"] for group in groups for rule in group["rules"]}
    for group in groups:
        for rule in group["rules"]:
            for name in re.findall(r"\b(hyperspot_\w+|\w+:\w+:\w+)", rule["expr"]):
                exported_sample = re.search(rf"^{name}[{{ ]", exported, re.MULTILINE)
                assert name in recorded or exported_sample, name


# ---- the pieces ---------------------------------------------------------------------------


def test_statement_summaries_hold_no_values() -> None:
    assert statement_summary('SELECT "n"."id" FROM "notes_note" "n" WHERE x = %s') == (
        "SELECT",
        "notes_note",
    )
    assert statement_summary("INSERT INTO `t1` (a) VALUES (?)") == ("INSERT", "t1")
    assert statement_summary("update t2 set a = 1") == ("UPDATE", "t2")
    assert statement_summary("  ") == ("SQL", "")


def test_tenant_labels_are_bounded() -> None:
    labels = TenantLabels(2)
    assert [labels.label(t) for t in ("a", "b", "c", "a", "-")] == ["a", "b", OTHER, "a", "-"]


def test_window_percentiles_and_thresholds() -> None:
    window = RequestWindow(60)
    now = time.time()
    for n in range(1, 101):
        window.add(Sample(now, "m", "GET", "/r", 500 if n <= 2 else 200, "t", float(n)))
    report = window.report(window_minutes=5, thresholds=ThresholdLookup({"GET /r": 90}), modules=[])
    route = report.routes[0]
    assert (route.p50_ms, route.p95_ms, route.p99_ms) == (50, 95, 99)
    assert (route.breaches, route.over_threshold, route.errors) == (10, True, 2)
    assert ThresholdLookup({})("GET", "/x") == 1000
    window.add(Sample(now + 120, "m", "GET", "/r", 200, "t", 1.0))  # older samples fall out
    assert window.report(window_minutes=5, thresholds=ThresholdLookup({}), modules=[]).requests <= 1


def test_window_filters_by_tenant_module_and_route() -> None:
    window = RequestWindow(600)
    now = time.time()
    for tenant, module, route, status in [
        ("acme", "notes", "/n", 200),
        ("acme", "notes", "/n", 503),
        ("globex", "notes", "/n", 200),
        ("globex", "hello", "/h", 200),
    ]:
        window.add(Sample(now, module, "GET", route, status, tenant, 5.0))
    lookup = ThresholdLookup({})

    def report(**filters: str) -> Any:
        return window.report(window_minutes=5, thresholds=lookup, modules=[], **filters)

    acme = report(tenant="acme")
    assert (acme.requests, acme.error_rate) == (2, 0.5)
    assert [(t.tenant, t.requests, t.errors) for t in acme.tenants] == [("acme", 2, 1)]
    assert [r.route for r in report(module="hello").routes] == ["/h"]
    assert report(route="/n", tenant="globex").requests == 1
    assert report(tenant="nobody").requests == 0
    everyone = report()
    assert [(r.module, r.requests, r.errors) for r in everyone.routes] == [
        ("hello", 1, 0),
        ("notes", 3, 1),
    ]


def test_window_frees_expired_requests_and_stays_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    from hyperspot.platform.observability import metrics

    monkeypatch.setattr(metrics, "CHUNK", 4)
    monkeypatch.setattr(metrics, "MAX_SAMPLES", 12)
    window = RequestWindow(10)
    for second in range(10):
        window.add(Sample(1000.0 + second, "m", "GET", "/r", 200, "t", 1.0))
    assert len(window) == 10
    window.add(Sample(1015.0, "m", "GET", "/r", 200, "t", 1.0))  # 1000-1004 leave the span
    assert len(window) == 6
    for second in range(20):  # all within the span: only the cap removes them
        window.add(Sample(1016.0 + second / 100, "m", "GET", "/r", 200, "t", 1.0))
    assert len(window) <= 12
    assert len(window._chunks) <= 3


def test_trace_ring_keeps_the_newest_traces() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    ring = TraceRing(2)
    provider = TracerProvider()
    provider.add_span_processor(ring)
    tracer = provider.get_tracer("test")
    for n in range(3):
        with tracer.start_as_current_span(f"root{n}"), tracer.start_as_current_span("child"):
            pass
    assert [s.name for s in ring.summaries()] == ["root2", "root1"]
    newest = ring.summaries()[0]
    detail = ring.detail(newest.trace_id, lambda trace_id: [])
    assert detail is not None and [s.depth for s in detail.span_tree] == [0, 1]
    assert ring.detail("not-hex", lambda trace_id: []) is None
    provider.shutdown()


def test_outgoing_calls_carry_the_trace_to_the_next_server(launcher: Launcher) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from hyperspot.platform.observability.instrument import traced_http_client
    from hyperspot.platform.observability.tracing import trace_hex

    callee = launcher.start()
    tracer = TracerProvider().get_tracer("caller")

    async def call() -> tuple[str, str]:
        with tracer.start_as_current_span("caller") as span:
            async with traced_http_client(base_url=callee.url) as client:
                response = await client.get("/hello/v1/greetings/fr", params={"name": "Ann"})
            return trace_hex(span.get_span_context().trace_id), response.headers["X-Trace-Id"]

    mine, theirs = asyncio.run(call())
    assert mine == theirs


def test_otlp_exporter_ships_spans_to_a_collector(launcher: Launcher) -> None:
    received: list[tuple[str, str]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{collector.server_address[1]}/v1/traces"
        tracing = {"exporters": ["otlp"], "otlp_endpoint": endpoint, "sample_ratio": 1.0}
        server = launcher.start({"observability": {"tracing": tracing}})
        assert server.client.get("/hello/v1/greetings/fr").status_code == 200
        assert server.stop() == 0  # shutting down flushes the batch
        assert ("/v1/traces", "application/x-protobuf") in received
    finally:
        collector.shutdown()
        collector.server_close()
