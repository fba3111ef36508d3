"""``hyperspot dashboard``: the Textual app against a real server, and SVG snapshots of fixed data.

Snapshots live in tests/snapshots/; a missing or changed one fails unless
HYPERSPOT_UPDATE_SNAPSHOTS=1, which (re)writes them and docs/dashboard.svg.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT, Launcher, Server, add_tenant, bearer, merge, secured_config
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static
from typer.testing import CliRunner

from hyperspot.cli.main import app as cli
from hyperspot.dashboard.app import DashboardApp
from hyperspot.dashboard.client import (
    AdminClient,
    BadResponseError,
    Filters,
    RejectedError,
    TraceOrder,
    UnreachableError,
)
from hyperspot.dashboard.screens import MainScreen, TraceScreen, TracesScreen
from hyperspot.dashboard.widgets import StatusBar, ms, timeline, trace_extent, tree_prefixes
from hyperspot.platform.observability.models import (
    LogLine,
    ModuleStatus,
    RouteStats,
    SpanView,
    StatsReport,
    TenantStats,
    TraceDetail,
    TraceList,
    TraceSummary,
)
from hyperspot.platform.runtime import Readiness
from hyperspot.sandbox.databases import ProvisionedDatabase

SNAPSHOTS = Path(__file__).parent / "snapshots"
DOCS_SCREENSHOT = Path(__file__).parents[1] / "docs" / "dashboard.svg"
UPDATE = os.environ.get("HYPERSPOT_UPDATE_SNAPSHOTS") == "1"
SIZE = (120, 34)
NOTES = "/notes/v1/notes"
MEMBER = ("member",)
WAIT_S = 10


# Fixed data: the snapshots must not depend on the clock or on real latencies.

AT = datetime(2026, 11, 25, 14, 30, 5)  # naive: shown as is in every time zone


def _route(
    module: str, method: str, route: str, requests: int, p95: float, errors: int = 0
) -> RouteStats:
    return RouteStats(
        module=module,
        method=method,
        route=route,
        requests=requests,
        rate_per_s=requests / 300,
        errors=errors,
        error_rate=errors / requests,
        p50_ms=p95 / 3,
        p95_ms=p95,
        p99_ms=p95 * 1.4,
        threshold_ms=250,
        breaches=int(p95 > 250),
        over_threshold=p95 > 250,
    )


REPORT = StatsReport(
    window_minutes=5,
    generated_at=AT,
    requests=412,
    rate_per_s=1.373,
    error_rate=0.0097,
    routes=[
        _route("hello", "GET", "/hello/v1/greet", 22, 1.2),
        _route("notes", "GET", NOTES, 240, 18.2),
        _route("notes", "POST", NOTES, 96, 412.5, errors=4),
        _route("notes", "GET", "/notes/v1/notes/{note_id}", 51, 7.9),
        _route("tenants", "POST", "/tenants/v1/tenants", 3, 35.0),
    ],
    tenants=[
        TenantStats(tenant="acme", requests=301, errors=4),
        TenantStats(tenant="globex", requests=108, errors=0),
        TenantStats(tenant="root", requests=3, errors=0),
    ],
    modules=[
        *(ModuleStatus(name=n, state="ready", healthy=True) for n in ("audit", "tenants", "hello")),
        ModuleStatus(name="notes", state="ready", healthy=False, detail="database is locked"),
    ],
)
HEALTH = Readiness(status="degraded", version="0.1.0", uptime_s=3725, modules=[])


def _span(
    span_id: str, parent: str | None, depth: int, name: str, offset: float, took: float, **kw: Any
) -> SpanView:
    status = kw.pop("status", "ok")
    return SpanView(
        span_id=span_id,
        parent_id=parent,
        depth=depth,
        name=name,
        start_offset_ms=offset,
        duration_ms=took,
        status=status,
        attributes=kw,
    )


TRACE = TraceDetail(
    trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    name=f"POST {NOTES}",
    module="notes",
    method="POST",
    route=NOTES,
    status=500,
    tenant="acme",
    started_at=AT,
    duration_ms=412.5,
    spans=6,
    error=True,
    span_tree=[
        _span("s1", None, 0, f"POST {NOTES}", 0, 412.5, status="error", tenant="acme"),
        _span("s2", "s1", 1, "client TenantsApi.lineage", 0.4, 1.2),
        _span("s3", "s1", 1, "handler notes.create_note", 2.0, 405.1, status="error"),
        _span("s4", "s3", 2, "INSERT notes_note", 3.0, 400.0, status="error", db_system="sqlite"),
        _span("s5", "s3", 2, "client AuditApi.record", 404.0, 2.0),
        _span("s6", "s1", 1, "serialize", 408.0, 3.9, status="unset"),
    ],
    logs=[
        LogLine(
            at=AT, level="INFO", logger="hyperspot.notes", message="note [draft]", span_id="s3"
        ),
        LogLine(
            at=AT, level="ERROR", logger="hyperspot.db", message="database is locked", span_id="s4"
        ),
        LogLine(
            at=AT,
            level="WARNING",
            logger="hyperspot.observability",
            message=f"slow request: POST {NOTES} took 412.5 ms (threshold 250 ms)",
            span_id="s1",
        ),
    ],
)


class FakeSource:
    """Fixed data, a switch to play an unreachable server, and a record of what was asked."""

    url = "http://127.0.0.1:8087"

    def __init__(self) -> None:
        self.down = False
        self.asked: list[Filters] = []
        self.closed = False

    async def health(self) -> Readiness:
        self._check()
        return HEALTH

    async def stats(self, filters: Filters) -> StatsReport:
        self._check()
        self.asked.append(filters)
        return REPORT

    async def traces(
        self, *, route: str, module: str, tenant: str, order: TraceOrder, limit: int
    ) -> TraceList:
        self._check()
        return TraceList(items=[TraceSummary.model_validate(TRACE.model_dump())])

    async def trace(self, trace_id: str) -> TraceDetail:
        self._check()
        return TRACE

    async def aclose(self) -> None:
        self.closed = True

    def _check(self) -> None:
        if self.down:
            raise UnreachableError("cannot connect: All connection attempts failed")


# Reading what the app shows.


async def until(pilot: Pilot[None], condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            # What the screen says (e.g. the server's refusal) is usually why.
            shown = [
                str(w.content) for w in pilot.app.screen.query("#status, #problem").results(Static)
            ]
            raise AssertionError(f"timed out waiting for {what}; the screen says {shown}")
        await pilot.pause(0.05)


def rows(app: DashboardApp, selector: str) -> list[list[str]]:
    table = app.screen.query_one(selector, DataTable)
    return [[cell.plain for cell in table.get_row_at(i)] for i in range(table.row_count)]


def route_rows(app: DashboardApp) -> dict[tuple[str, str, str], list[str]]:
    return {(r[0], r[1], r[2]): r for r in rows(app, "#routes")}


def text_of(app: DashboardApp, selector: str) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(app.screen.query_one(selector, Static).content)
    return console.export_text()


def status(app: DashboardApp) -> str:
    return text_of(app, "#status")


async def type_filter(pilot: Pilot[None], key: str, value: str) -> None:
    """Focus a filter with its key, replace its text, and apply it with Enter."""
    await pilot.press(key)
    field = pilot.app.focused
    assert isinstance(field, Input)
    field.value = value
    await pilot.press("enter")


async def screenshot(pilot: Pilot[None]) -> str:
    await pilot.pause()  # let every widget (the footer last) catch up
    return pilot.app.export_screenshot()


def check_snapshot(name: str, svg: str, tmp_path: Path) -> None:
    path = SNAPSHOTS / f"{name}.svg"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(svg, encoding="utf-8")
        return
    assert path.exists(), f"no baseline {path}: run with HYPERSPOT_UPDATE_SNAPSHOTS=1 to write it"
    if path.read_text(encoding="utf-8") != svg:
        actual = tmp_path / f"{name}.svg"
        actual.write_text(svg, encoding="utf-8")
        pytest.fail(
            f"{name} differs from {path} (this run's screen: {actual}); if the change is "
            "intended, run with HYPERSPOT_UPDATE_SNAPSHOTS=1"
        )


def fixed_app(source: FakeSource) -> DashboardApp:
    return DashboardApp(source, interval_s=0.1, clock=lambda: AT)


# Snapshots of fixed data.


def test_snapshots_of_the_main_and_trace_screens(tmp_path: Path) -> None:
    async def scenario() -> None:
        source = FakeSource()
        app = fixed_app(source)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: len(rows(app, "#routes")) == 5, "the routes")
            check_snapshot("main", await screenshot(pilot), tmp_path)

            source.down = True
            await until(pilot, lambda: "UNREACHABLE" in status(app), "the lost server")
            check_snapshot("main_unreachable", await screenshot(pilot), tmp_path)
            source.down = False
            await until(pilot, lambda: "UNREACHABLE" not in status(app), "the server again")

            await pilot.press("down", "down", "enter")  # POST /notes/v1/notes
            await until(pilot, lambda: isinstance(app.screen, TracesScreen), "the traces")
            await until(pilot, lambda: len(rows(app, "#traces")) == 1, "the trace list")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, TraceScreen), "the trace")
            await until(pilot, lambda: len(rows(app, "#logs")) == 3, "the trace's logs")
            check_snapshot("trace", await screenshot(pilot), tmp_path)

    asyncio.run(scenario())


# The app on fixed data: keys, filters, failures.


def test_keys_change_the_window_and_filters_and_the_app_closes_its_source() -> None:
    async def scenario() -> None:
        source = FakeSource()
        app = fixed_app(source)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: bool(source.asked), "a first report")
            assert source.asked[0] == Filters()

            async def asked(filters: Filters) -> None:
                await until(pilot, lambda: source.asked[-1] == filters, f"a report for {filters}")

            await pilot.press("3")
            await asked(Filters(window_minutes=60))
            await pilot.press("w")
            await asked(Filters(window_minutes=5))
            await pilot.press("2")
            await asked(Filters(window_minutes=15))
            await type_filter(pilot, "m", "notes")
            await type_filter(pilot, "t", " acme ")
            await type_filter(pilot, "slash", NOTES)
            await asked(Filters(15, tenant="acme", module="notes", route=NOTES))
            assert isinstance(app.focused, DataTable)  # Enter in a filter returns to the routes

            # A filter completes known values (right arrow); leaving it (Escape) applies it too.
            await pilot.press("m", "ctrl+u", "t", "e", "n", "right", "escape")
            await asked(Filters(15, tenant="acme", module="tenants", route=NOTES))

            await pilot.press("c")
            await asked(Filters(15))
            assert [i.value for i in app.screen.query(Input)] == ["", "", ""]
        assert source.closed

    asyncio.run(scenario())


def test_bad_data_and_refusals_are_shown_without_crashing() -> None:
    answers: dict[str, httpx.Response] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.get(request.url.path, httpx.Response(200, json=HEALTH.model_dump()))

    async def scenario() -> None:
        client = AdminClient("http://dash.test", "t0ken", transport=httpx.MockTransport(handler))
        app = DashboardApp(client, interval_s=0.1)
        async with app.run_test(size=SIZE) as pilot:
            answers["/admin/stats"] = httpx.Response(200, json={"routes": "nonsense"})
            await until(
                pilot, lambda: "does not understand" in text_of(app, "#problem"), "bad data"
            )
            assert app.link.state == "ok"  # the server answered

            answers["/admin/stats"] = httpx.Response(403, json={"title": "Forbidden"})
            await until(pilot, lambda: "ACCESS DENIED" in status(app), "the refusal")
            assert "not a platform administrator" in status(app)

            answers["/admin/stats"] = httpx.Response(200, json=REPORT.model_dump(mode="json"))
            await until(pilot, lambda: len(rows(app, "#routes")) == 5, "good data")
            assert not app.screen.query_one("#problem").display

            answers["/admin/stats"] = httpx.Response(502, text="bad gateway")
            await until(pilot, lambda: "UNREACHABLE" in status(app), "the 5xx")
            assert "502" in status(app) and len(rows(app, "#routes")) == 5  # the data is kept
            assert app.screen.has_class("stale")

    asyncio.run(scenario())


def test_a_trace_the_server_no_longer_keeps() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/admin/stats":
            return httpx.Response(200, json=REPORT.model_dump(mode="json"))
        if path == "/admin/traces":
            return httpx.Response(200, json={"items": [TRACE.model_dump(mode="json")]})
        if path.startswith("/admin/traces/"):
            return httpx.Response(404, json={"title": "Not Found", "detail": "no recent trace"})
        return httpx.Response(200, json=HEALTH.model_dump())

    async def scenario() -> None:
        client = AdminClient("http://dash.test", "t0ken", transport=httpx.MockTransport(handler))
        app = DashboardApp(client, interval_s=0.1)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: len(rows(app, "#routes")) == 5, "the routes")
            await pilot.press("down", "down", "enter")
            await until(pilot, lambda: len(rows(app, "#traces")) == 1, "the trace list")
            await pilot.press("enter")
            await until(
                pilot, lambda: "no longer keeps" in text_of(app, "#problem"), "the missing trace"
            )
            await pilot.press("escape", "escape")
            assert isinstance(app.screen, MainScreen)

    asyncio.run(scenario())


def test_odd_data_is_shown_without_crashing() -> None:
    route = _route("x", "GET", "/odd/[b]{c}", 1, math.inf).model_copy(update={"p50_ms": math.nan})
    odd_report = REPORT.model_copy(update={"routes": [route, route], "error_rate": math.nan})
    span = _span("same", None, 10**9, "deep [bold]", -1e308, 1e308, status="error")
    odd_trace = TRACE.model_copy(
        update={
            "started_at": datetime.min,
            "duration_ms": 1e-300,
            "span_tree": [span, span.model_copy(update={"depth": -3})],
            "logs": [LogLine(at=datetime.max, level="weird", logger="", message="", span_id="?")],
        }
    )

    class OddSource(FakeSource):
        async def stats(self, filters: Filters) -> StatsReport:
            return odd_report

        async def trace(self, trace_id: str) -> TraceDetail:
            return odd_trace

    async def scenario() -> None:
        app = fixed_app(OddSource())
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: len(rows(app, "#routes")) == 1, "the one odd route")
            assert rows(app, "#routes")[0][2] == "/odd/[b]{c}"
            await pilot.press("enter")
            await until(pilot, lambda: len(rows(app, "#traces")) == 0, "no GET traces")
            assert "no recent trace" in text_of(app, "#problem")
            await app.push_screen(TraceScreen(TRACE.trace_id))
            await until(pilot, lambda: len(rows(app, "#spans")) == 2, "the odd spans")
            assert rows(app, "#spans")[0][0] == "   " * 31 + "└─ deep [bold]"

    asyncio.run(scenario())


# The HTTP client.


def _client_answering(response: httpx.Response | Exception, token: str | None = "t") -> AdminClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(response, Exception):
            raise response
        return response

    return AdminClient("http://dash.test/", token, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("answer", "token", "error", "message"),
    [
        (httpx.ConnectError("refused"), "t", UnreachableError, "cannot connect: refused"),
        (httpx.ReadTimeout("slow"), "t", UnreachableError, "no answer (timed out)"),
        (httpx.RemoteProtocolError(""), "t", UnreachableError, "RemoteProtocolError"),
        (httpx.Response(500), "t", UnreachableError, "/admin/stats answered 500"),
        (httpx.Response(503), "t", UnreachableError, "answered 503"),
        (httpx.Response(401, json={"detail": "token expired"}), "t", RejectedError, "expired"),
        (httpx.Response(401), None, RejectedError, "no token; pass --token"),
        (httpx.Response(403), "t", RejectedError, "not a platform administrator"),
        (
            httpx.Response(404, json={"detail": "metrics are disabled"}),
            "t",
            BadResponseError,
            "answered 404: metrics are disabled",
        ),
        (httpx.Response(400, text="<html>"), "t", BadResponseError, "answered 400: Bad Request"),
        (httpx.Response(422, json=["odd"]), "t", BadResponseError, "Unprocessable"),
        (httpx.Response(200, text="not json"), "t", BadResponseError, "does not understand"),
        (
            httpx.Response(200, json={"window_minutes": "x"}),
            "t",
            BadResponseError,
            "first: window_minutes",
        ),
    ],
)
def test_the_client_turns_every_failure_into_a_message(
    answer: httpx.Response | Exception, token: str | None, error: type[Exception], message: str
) -> None:
    async def fetch() -> None:
        client = _client_answering(answer, token)
        try:
            with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
                await client.stats(Filters())
        finally:
            await client.aclose()

    asyncio.run(fetch())


def test_the_client_accepts_a_degraded_health_and_sends_the_filters() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/health":
            return httpx.Response(503, json=HEALTH.model_dump())
        return httpx.Response(200, json={"items": []})

    async def fetch() -> None:
        client = AdminClient("http://dash.test", "abc", transport=httpx.MockTransport(handler))
        assert client.url == "http://dash.test"
        assert (await client.health()).status == "degraded"
        found = await client.traces(
            route=NOTES, module="notes", tenant="", order="slowest", limit=7
        )
        assert found.items == []
        await client.aclose()

    asyncio.run(fetch())
    assert seen[1].headers["Authorization"] == "Bearer abc"
    assert dict(seen[1].url.params) == {
        "route": NOTES,
        "order": "slowest",
        "limit": "7",
        "module": "notes",
    }


# Rendering helpers.


def test_the_span_tree_prefixes_follow_depth_first_order() -> None:
    assert tree_prefixes([0, 1, 2, 2, 1, 2, 1]) == [
        "",
        "├─ ",
        "│  ├─ ",
        "│  └─ ",
        "├─ ",
        "│  └─ ",
        "└─ ",
    ]
    assert tree_prefixes([0, 1, 2, 1]) == ["", "├─ ", "│  └─ ", "└─ "]
    assert tree_prefixes([0, 3, 1]) == ["", "│     └─ ", "└─ "]  # a jump: no parent drawn
    assert tree_prefixes([]) == []


def test_timelines_and_numbers_survive_odd_values() -> None:
    span = TRACE.span_tree[3]
    assert timeline(span, 412.5, width=10).plain == "██████████"
    assert timeline(TRACE.span_tree[4], 412.5, width=10).plain == "         █"
    odd = span.model_copy(update={"start_offset_ms": math.nan, "duration_ms": math.inf})
    assert timeline(odd, 0, width=4).plain == "█   "
    late = span.model_copy(update={"start_offset_ms": 900.0, "duration_ms": -5.0})
    assert timeline(late, 10, width=4).plain == "   █"
    assert trace_extent(TRACE.span_tree, 100) == 412.5
    assert trace_extent([], math.nan) == 0
    assert [ms(v) for v in (0.001, 12.34, 1234.5, math.nan)] == ["0.00", "12.3", "1,234", "-"]


# The command.


def test_the_command_builds_the_app_from_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[DashboardApp] = []

    def run(self: DashboardApp) -> None:
        started.append(self)

    monkeypatch.setattr(DashboardApp, "run", run)
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["dashboard", "--url", "http://h:1/", "--interval", "0.5"],
        env={"HYPERSPOT_TOKEN": "from-env"},
    )
    assert result.exit_code == 0, result.output
    (app,) = started
    assert app.source.url == "http://h:1" and app.interval_s == 0.5
    assert runner.invoke(cli, ["dashboard", "--interval", "0"]).exit_code == 2
    assert "HYPERSPOT_TOKEN" in runner.invoke(cli, ["dashboard", "--help"]).output


# Against a real server.


def traffic_config(database: ProvisionedDatabase) -> dict[str, Any]:
    # Every request is traced, and every note creation is over its threshold: its row is
    # highlighted and its trace has a log line saying so.
    extra = {
        "observability": {
            "tracing": {"sample_ratio": 1.0},
            "latency_thresholds_ms": {f"POST {NOTES}": 0.5},
        }
    }
    return secured_config(database.url.url, extra)


def start_on_port(launcher: Launcher, config: dict[str, Any], port: int) -> Server:
    """Like ``launcher.start``, on a given port (``start`` waits on a port of its own choice)."""
    process, log_path, _ = launcher.spawn(merge(config, {"server": {"port": port}}))
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    launcher.servers.append(server)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"server did not come up:\n{server.log()}")


def make_traffic(server: Server) -> None:
    for tenant, notes in (("acme", 3), ("globex", 1)):
        add_tenant(server, tenant)
        for n in range(notes):
            response = server.client.post(
                f"{NOTES}", json={"title": f"note {n}"}, headers=bearer(tenant, roles=MEMBER)
            )
            assert response.status_code == 201, response.text
    listed = server.client.get(NOTES, headers=bearer("globex", roles=MEMBER))
    assert listed.status_code == 200


def admin_token() -> str:
    return bearer(ROOT)["Authorization"].removeprefix("Bearer ")


def test_live_routes_filters_and_drill_down(
    launcher: Launcher, database: ProvisionedDatabase, tmp_path: Path
) -> None:
    server = launcher.start(traffic_config(database))
    make_traffic(server)

    async def scenario() -> None:
        app = DashboardApp(AdminClient(server.url, admin_token()), interval_s=0.2)
        async with app.run_test(size=SIZE) as pilot:
            post = ("notes", "POST", NOTES)
            await until(pilot, lambda: post in route_rows(app), "the notes traffic")
            routes = route_rows(app)
            assert routes[post][3] == "4"  # requests
            assert routes[post][-1].startswith("▲")  # over its threshold
            assert ("tenants", "POST", "/tenants/v1/tenants") in routes
            assert "acme" in text_of(app, "#tenants") and "globex" in text_of(app, "#tenants")
            assert "notes" in text_of(app, "#modules")
            assert server.url in status(app) and "● ok" in status(app)
            if UPDATE:
                DOCS_SCREENSHOT.write_text(await screenshot(pilot), encoding="utf-8")

            await type_filter(pilot, "m", "notes")
            await until(
                pilot,
                lambda: {m for m, _, _ in route_rows(app)} == {"notes"},
                "only the notes module's routes",
            )
            await type_filter(pilot, "t", "globex")
            await until(pilot, lambda: route_rows(app).get(post, [""] * 4)[3] == "1", "globex's")
            assert ("notes", "GET", NOTES) in route_rows(app)
            assert "acme" not in text_of(app, "#tenants")

            # Drill down: the route's slowest traces, then one trace's spans and logs.
            table = app.screen.query_one("#routes", DataTable)
            table.move_cursor(row=table.get_row_index(f"notes POST {NOTES}"))
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, TracesScreen), "the traces screen")
            await until(pilot, lambda: len(rows(app, "#traces")) == 1, "globex's one note")
            assert rows(app, "#traces")[0][2:4] == ["201", "globex"]
            await pilot.press("o")
            await until(pilot, lambda: "recent first" in text_of(app, "#heading"), "recent")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, TraceScreen), "the trace screen")
            await until(pilot, lambda: len(rows(app, "#spans")) > 1, "the span tree")
            spans = rows(app, "#spans")
            assert spans[0][0] == f"POST {NOTES}"
            assert any(row[0].startswith(("├─ ", "└─ ")) for row in spans)
            assert any("INSERT notes_note" in row[0] for row in spans)
            logs = rows(app, "#logs")
            assert any("slow request" in row[3] for row in logs), logs
            assert "hyperspot.tenant" in text_of(app, "#attributes")

            await pilot.press("escape")
            assert isinstance(app.screen, TracesScreen)
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)

    asyncio.run(scenario())


def test_live_unreachable_then_recovered_on_the_same_port(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    server = launcher.start(traffic_config(database))
    port = int(server.url.rsplit(":", 1)[1])

    async def scenario() -> None:
        app = DashboardApp(AdminClient(server.url, admin_token()), interval_s=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "updated" in status(app), "a first report")
            assert rows(app, "#routes")

            await asyncio.to_thread(server.stop)
            await until(pilot, lambda: "UNREACHABLE since" in status(app), "the lost server")
            assert "cannot connect" in status(app)
            # The last data stays on screen, marked stale, while polls keep failing.
            shown = rows(app, "#routes")
            assert shown
            await pilot.pause(0.6)
            assert app.screen.has_class("stale") and rows(app, "#routes") == shown

            again = await asyncio.to_thread(start_on_port, launcher, traffic_config(database), port)
            assert again.url == server.url
            await until(pilot, lambda: "● ok" in status(app), "the server again")
            assert not app.screen.has_class("stale")

    asyncio.run(scenario())


def test_live_token_problems_are_explained(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    server = launcher.start(secured_config(database.url.url))
    add_tenant(server, "acme")
    member = bearer("acme", roles=MEMBER)["Authorization"].removeprefix("Bearer ")

    async def shown_with(token: str | None) -> str:
        app = DashboardApp(AdminClient(server.url, token), interval_s=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "ACCESS DENIED" in status(app), "the refusal")
            assert app.screen.query_one(StatusBar).has_class("-down")
            return status(app)

    assert "403 Forbidden" in asyncio.run(shown_with(member))
    assert "401 Unauthorized: the server rejected" in asyncio.run(shown_with("not-a-jwt"))
    assert "no token" in asyncio.run(shown_with(None))
