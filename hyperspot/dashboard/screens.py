"""The dashboard's screens: the routes overview, one route's traces, one trace."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextlib import suppress
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, ClassVar, TypeVar, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.events import DescendantBlur
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, Static

from hyperspot.dashboard.client import WINDOWS, BadResponseError, Filters, TraceOrder
from hyperspot.dashboard.widgets import (
    Link,
    RoutesTable,
    StatusBar,
    Suggestions,
    TracesTable,
    modules_panel,
    ms,
    percent,
    precise_time,
    rate,
    tenants_panel,
    timeline,
    trace_extent,
    tree_prefixes,
)
from hyperspot.platform.observability.models import (
    RouteStats,
    StatsReport,
    TraceDetail,
)

if TYPE_CHECKING:
    from hyperspot.dashboard.app import DashboardApp

T = TypeVar("T")

TRACE_LIMIT = 50
OVER = "bold red"
LEVEL_STYLES = {"CRITICAL": OVER, "ERROR": OVER, "WARNING": "yellow", "DEBUG": "dim"}


class DashboardScreen(Screen[None]):
    """What every screen shares: the status bar, and greying its data while the server is lost.

    Textual calls ``on_mount`` of every class in the MRO, so subclasses add their own.
    """

    @property
    def dash(self) -> DashboardApp:
        return cast("DashboardApp", self.app)

    def status_bar(self) -> StatusBar:
        return StatusBar(self.dash.source.url, self.dash.interval_s)

    def on_mount(self) -> None:
        self.watch(self.dash, "link", self._link_changed)

    # Textual cancels a closing screen's workers (and drops its watchers) only after removing its
    # widgets; ``display`` turns False as soon as it starts closing, so nothing touches them then.

    def _link_changed(self, link: Link) -> None:
        if self.display:
            self.query_one(StatusBar).show(link)
            self.set_class(link.state in ("unreachable", "rejected"), "stale")

    async def fetch(self, call: Awaitable[T]) -> T | None:
        """``DashboardApp.fetch``; a bad answer is shown under the title. None: nothing to show."""
        try:
            value = await self.dash.fetch(call)
        except BadResponseError as error:
            if self.display:
                self.show_problem(str(error))
            return None
        return value if self.display else None

    def show_problem(self, problem: str) -> None:
        """A reachable server's unusable answer (bad data, a missing trace), under the title."""
        line = self.query_one("#problem", Static)
        line.update(Text(problem, style="bold yellow"))
        line.display = bool(problem)


class MainScreen(DashboardScreen):
    """Every route's rate, errors and latency; module health; the busiest tenants."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "focus_filter('tenant')", "Tenant"),
        Binding("m", "focus_filter('module')", "Module"),
        Binding("slash", "focus_filter('route')", "Route"),
        Binding("w", "cycle_window", "Window"),
        Binding("1", "window(0)", "5 min", show=False),
        Binding("2", "window(1)", "15 min", show=False),
        Binding("3", "window(2)", "60 min", show=False),
        Binding("c", "clear_filters", "Clear"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape", "focus_routes", "Done", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filters = Filters()
        self._routes: dict[str, RouteStats] = {}
        # What the last report named, to complete the filter inputs with.
        self._known: dict[str, list[str]] = {"tenant": [], "module": [], "route": []}
        self._wake = asyncio.Event()

    def compose(self) -> ComposeResult:
        yield self.status_bar()
        with Horizontal(id="filters"):
            for name in ("tenant", "module", "route"):
                yield Label(f"{name} ")
                yield Input(
                    id=name,
                    placeholder="all",
                    compact=True,
                    suggester=Suggestions(partial(self._known_values, name)),
                )
            yield Static(id="window")
        yield Static(id="summary")
        yield Static(id="problem", classes="problem")
        yield RoutesTable(id="routes", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="panels"):
            yield Static(id="modules", classes="panel")
            yield Static(id="tenants", classes="panel")
        yield Footer()

    def _known_values(self, name: str) -> list[str]:
        return self._known[name]

    def on_mount(self) -> None:
        table = self.query_one(RoutesTable)
        table.border_title = "Routes"
        table.add_columns(
            "module", "method", "route", "req", "req/s", "err %", "p50", "p95", "p99", "threshold"
        )
        self.query_one("#modules").border_title = "Modules"
        self.query_one("#tenants").border_title = "Top tenants"
        self.show_problem("")
        self._show_window()
        table.focus()
        self.poll()

    @work(exclusive=True, group="poll")
    async def poll(self) -> None:
        """Refresh every interval (at once when the filters change) for as long as the app runs."""
        while True:
            self._wake.clear()
            await self._refresh()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.dash.interval_s)

    async def _refresh(self) -> None:
        dash, filters = self.dash, self.filters
        # Stats first: a rejected token must not flip the state through "ok" on the public /health.
        report = await self.fetch(dash.source.stats(filters))
        if report is None:
            return
        health = await self.fetch(dash.source.health())
        if filters != self.filters or not self.display:
            return
        dash.link = replace(dash.link, last_data=dash.clock(), health=health or dash.link.health)
        self.show_problem("")
        self._show(report)

    def _show(self, report: StatsReport) -> None:
        table = self.query_one(RoutesTable)
        highlighted = (
            table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            if table.row_count
            else None
        )
        table.clear()
        self._routes = {}
        for route in report.routes:
            key = f"{route.module} {route.method} {route.route}"
            if key not in self._routes:  # a row key must be unique, whatever the server says
                self._routes[key] = route
                table.add_row(*_route_cells(route), key=key)
        if highlighted in self._routes:
            table.move_cursor(row=table.get_row_index(highlighted))
        self.query_one("#summary", Static).update(
            Text.assemble(
                (f"{report.requests:,}", "bold"),
                f" requests in {report.window_minutes} min · ",
                (rate(report.rate_per_s), "bold"),
                " req/s · ",
                (percent(report.error_rate), "bold red" if report.error_rate else "bold"),
                " errors",
            )
        )
        self.query_one("#modules", Static).update(modules_panel(report.modules))
        self.query_one("#tenants", Static).update(tenants_panel(report.tenants))
        self._known = {
            "tenant": [t.tenant for t in report.tenants],
            "module": sorted({r.module for r in report.routes}),
            "route": sorted({r.route for r in report.routes}),
        }

    def _show_window(self) -> None:
        text = Text("window ")
        for minutes in WINDOWS:
            selected = minutes == self.filters.window_minutes
            text.append(f" {minutes} ", style="reverse bold" if selected else "dim")
        text.append(" min")
        self.query_one("#window", Static).update(text)

    def _apply(self, filters: Filters) -> None:
        if filters != self.filters:
            self.filters = filters
            self._show_window()
            self._wake.set()

    def _apply_inputs(self) -> None:
        def value(name: str) -> str:
            return self.query_one(f"#{name}", Input).value.strip()

        self._apply(
            replace(
                self.filters, tenant=value("tenant"), module=value("module"), route=value("route")
            )
        )

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._apply_inputs()
        self.query_one(RoutesTable).focus()

    @on(DescendantBlur)
    def _left_input(self, event: DescendantBlur) -> None:
        if isinstance(event.widget, Input):
            self._apply_inputs()

    @on(DataTable.RowSelected, "#routes")
    def _open_route(self, event: DataTable.RowSelected) -> None:
        route = self._routes.get(str(event.row_key.value))
        if route is not None:
            self.dash.push_screen(TracesScreen(route, self.filters.tenant))

    def action_focus_filter(self, name: str) -> None:
        self.query_one(f"#{name}", Input).focus()

    def action_focus_routes(self) -> None:
        self.query_one(RoutesTable).focus()

    def action_window(self, index: int) -> None:
        self._apply(replace(self.filters, window_minutes=WINDOWS[index]))

    def action_cycle_window(self) -> None:
        index = WINDOWS.index(self.filters.window_minutes)
        self.action_window((index + 1) % len(WINDOWS))

    def action_clear_filters(self) -> None:
        for name in self._known:
            self.query_one(f"#{name}", Input).value = ""
        self._apply(Filters(window_minutes=self.filters.window_minutes))

    def action_refresh(self) -> None:
        self._wake.set()


def _route_cells(route: RouteStats) -> list[Text]:
    over = route.over_threshold
    style = OVER if over else ""
    errors = "red" if route.errors else ""
    return [
        Text(route.module, style=style),
        Text(route.method, style=style),
        Text(route.route, style=style),
        Text(f"{route.requests:,}", style=style, justify="right"),
        Text(rate(route.rate_per_s), style=style, justify="right"),
        Text(percent(route.error_rate), style=style or errors, justify="right"),
        Text(ms(route.p50_ms), style=style, justify="right"),
        Text(ms(route.p95_ms), style=style, justify="right"),
        Text(ms(route.p99_ms), style=style, justify="right"),
        Text(("▲ " if over else "") + ms(route.threshold_ms), style=style, justify="right"),
    ]


class TracesScreen(DashboardScreen):
    """One route's slowest (or most recent) traces."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("o", "toggle_order", "Slowest/recent"),
        Binding("r", "load", "Reload"),
    ]

    def __init__(self, route: RouteStats, tenant: str) -> None:
        super().__init__()
        self.route = route
        self.tenant = tenant
        self.order: TraceOrder = "slowest"

    def compose(self) -> ComposeResult:
        yield self.status_bar()
        yield Static(id="heading")
        yield Static(id="problem", classes="problem")
        yield TracesTable(id="traces", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(TracesTable)
        table.border_title = "Traces"
        table.add_columns("started", "duration ms", "status", "tenant", "spans", "trace")
        self.show_problem("")
        table.focus()
        self.action_load()

    def _show_heading(self) -> None:
        route = self.route
        self.query_one("#heading", Static).update(
            Text.assemble(
                (f"{route.method} {route.route}", "bold cyan"),
                f" · module {route.module} · tenant {self.tenant or 'all'} · ",
                (f"p95 {ms(route.p95_ms)} ms", OVER if route.over_threshold else ""),
                f" (threshold {ms(route.threshold_ms)} ms) · {self.order} first",
            )
        )

    def action_load(self) -> None:
        self._show_heading()
        self._load()

    @work(exclusive=True, group="load")
    async def _load(self) -> None:
        route = self.route
        found = await self.fetch(
            self.dash.source.traces(
                route=route.route,
                module=route.module,
                tenant=self.tenant,
                order=self.order,
                limit=TRACE_LIMIT,
            )
        )
        if found is None:
            return
        # The endpoint filters by route template; the route's row is one method of it.
        traces = {t.trace_id: t for t in found.items if t.method == route.method}
        self.show_problem(
            ""
            if traces
            else "no recent trace of this route: the server keeps its latest traces, of the share "
            "of requests it samples (observability.tracing.sample_ratio)"
        )
        table = self.query_one(TracesTable)
        table.clear()
        for trace in traces.values():
            style = OVER if trace.error else ""
            table.add_row(
                Text(precise_time(trace.started_at), style=style),
                Text(ms(trace.duration_ms), style=style, justify="right"),
                Text(str(trace.status or "-"), style=style, justify="right"),
                Text(trace.tenant, style=style),
                Text(str(trace.spans), style=style, justify="right"),
                Text(trace.trace_id, style=style),
                key=trace.trace_id,
            )

    def action_toggle_order(self) -> None:
        self.order = "recent" if self.order == "slowest" else "slowest"
        self.action_load()

    @on(DataTable.RowSelected, "#traces")
    def _open_trace(self, event: DataTable.RowSelected) -> None:
        self.dash.push_screen(TraceScreen(str(event.row_key.value)))


class TraceScreen(DashboardScreen):
    """One trace: its span tree on a timeline, the highlighted span's attributes, its logs."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "load", "Reload"),
        Binding("tab", "app.focus_next", "Spans/logs"),
    ]

    def __init__(self, trace_id: str) -> None:
        super().__init__()
        self.trace_id = trace_id
        self._detail: TraceDetail | None = None

    def compose(self) -> ComposeResult:
        yield self.status_bar()
        yield Static(id="heading")
        yield Static(id="problem", classes="problem")
        yield DataTable[Text](id="spans", cursor_type="row")
        yield Static(id="attributes")
        yield DataTable[Text](id="logs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        spans = self.query_one("#spans", DataTable)
        spans.border_title = "Spans"
        spans.add_columns("span", "offset ms", "duration ms", "timeline", "status")
        logs = self.query_one("#logs", DataTable)
        logs.border_title = "Logs"
        logs.add_columns("time", "level", "span", "message", "logger")
        self.show_problem("")
        self.query_one("#heading", Static).update(Text(f"trace {self.trace_id}", style="bold"))
        spans.focus()
        self.action_load()

    def action_load(self) -> None:
        self._load()

    @work(exclusive=True, group="load")
    async def _load(self) -> None:
        detail = await self.fetch(self.dash.source.trace(self.trace_id))
        if detail is not None:
            self.show_problem("")
            self._show(detail)

    def _show(self, detail: TraceDetail) -> None:
        self._detail = detail
        self.query_one("#heading", Static).update(
            Text.assemble(
                (f"{detail.method} {detail.route}", "bold cyan"),
                " → ",
                (str(detail.status or "-"), OVER if detail.error else "bold"),
                f" · {ms(detail.duration_ms)} ms · tenant {detail.tenant} · module {detail.module}",
                (
                    f"\ntrace {detail.trace_id} · started {precise_time(detail.started_at)}"
                    f" · {len(detail.span_tree)} spans · {len(detail.logs)} log lines",
                    "dim",
                ),
            )
        )
        extent = trace_extent(detail.span_tree, detail.duration_ms)
        prefixes = tree_prefixes([span.depth for span in detail.span_tree])
        spans = self.query_one("#spans", DataTable)
        spans.clear()
        for prefix, span in zip(prefixes, detail.span_tree, strict=True):
            failed = span.status == "error"
            spans.add_row(
                Text.assemble((prefix, "dim"), (span.name, OVER if failed else "")),
                Text(ms(span.start_offset_ms), justify="right"),
                Text(ms(span.duration_ms), justify="right"),
                timeline(span, extent),
                Text(span.status, style=OVER if failed else "dim"),
            )
        names = {span.span_id: span.name for span in detail.span_tree}
        logs = self.query_one("#logs", DataTable)
        logs.clear()
        for line in detail.logs:
            level = line.level.upper()
            style = LEVEL_STYLES.get(level, "")
            logs.add_row(
                Text(precise_time(line.at)),
                Text(level, style=style),
                Text(names.get(line.span_id, line.span_id), style="dim"),
                Text(line.message, style=style),
                Text(line.logger, style="dim"),
            )
        self._show_attributes(0)

    @on(DataTable.RowHighlighted, "#spans")
    def _span_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_attributes(event.cursor_row)

    def _show_attributes(self, row: int) -> None:
        if self._detail is None or not 0 <= row < len(self._detail.span_tree):
            return
        span = self._detail.span_tree[row]
        text = Text.assemble((span.name, "bold"), "  ")
        if not span.attributes:
            text.append("no attributes", style="dim")
        for name, value in sorted(span.attributes.items()):
            text.append(f"{name}", style="cyan")
            text.append(f"={value}  ")
        self.query_one("#attributes", Static).update(text)
