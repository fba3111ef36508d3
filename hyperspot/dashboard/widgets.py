"""What the dashboard screens are made of: the connection state, its status bar, tables, and
the formatting of the server's numbers.

Server data is always wrapped in ``Text``: a plain string would be parsed as Textual markup, and a
route such as ``/files/[id]`` must not break the screen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.suggester import Suggester
from textual.widgets import DataTable, Static

from hyperspot.platform.observability.models import ModuleStatus, SpanView, TenantStats
from hyperspot.platform.runtime import Readiness

LinkState = Literal["connecting", "ok", "unreachable", "rejected"]


@dataclass(frozen=True)
class Link:
    """Whether the server answers the dashboard, and since when it does not."""

    state: LinkState = "connecting"
    message: str = ""
    since: datetime | None = None
    last_data: datetime | None = None
    health: Readiness | None = None


def local(at: datetime) -> datetime:
    """``at`` in local time; a naive time is taken as local already (fixed test data is naive)."""
    try:
        return at.astimezone()
    except (OverflowError, ValueError, OSError):  # e.g. year 1 in a zone west of UTC
        return at


def clock_time(at: datetime) -> str:
    return local(at).strftime("%H:%M:%S")


def precise_time(at: datetime) -> str:
    return local(at).strftime("%H:%M:%S.%f")[:-3]


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def ms(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    if abs(value) < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if abs(value) < 100 else f"{value:,.0f}"


def percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%" if math.isfinite(fraction) else "-"


def rate(per_s: float) -> str:
    return f"{per_s:,.2f}" if math.isfinite(per_s) else "-"


def duration(seconds: float) -> str:
    total = int(_finite(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class StatusBar(Static):
    """The top line of every screen: server, state, and (prominently) why there is no data."""

    DEFAULT_CSS = """
    StatusBar { height: auto; padding: 0 1; background: $panel; }
    StatusBar.-down { background: $error; color: $text; text-style: bold; }
    """

    def __init__(self, url: str, interval_s: float) -> None:
        super().__init__(id="status")
        self._url = url
        self._interval_s = interval_s

    def show(self, link: Link) -> None:
        self.set_class(link.state in ("unreachable", "rejected"), "-down")
        line = Text.assemble(("HyperSpot ", "bold"), (self._url, "underline"), "  ")
        if link.state == "connecting":
            line.append("connecting…")
        elif link.state == "unreachable":
            since = clock_time(link.since) if link.since else "?"
            line.append(f"UNREACHABLE since {since} — {link.message}")
            line.append(f" · retrying every {self._interval_s:g}s")
            if link.last_data:
                line.append(f" · showing data from {clock_time(link.last_data)}")
        elif link.state == "rejected":
            line.append(f"ACCESS DENIED: {link.message}")
        else:
            line.append_text(_health(link.health))
            if link.last_data:
                line.append(f"  updated {clock_time(link.last_data)}")
        self.update(line)


def _health(health: Readiness | None) -> Text:
    if health is None:
        return Text("● answering", style="green")
    style = "green" if health.status == "ok" else "yellow"
    return Text.assemble(
        (f"● {health.status}", style), f"  v{health.version}  up {duration(health.uptime_s)}"
    )


class RoutesTable(DataTable[Text]):
    """The main screen's routes; Enter opens the highlighted route's slowest traces."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Traces")]


class TracesTable(DataTable[Text]):
    """A route's traces; Enter opens the highlighted trace."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Open trace")]


def modules_panel(modules: Sequence[ModuleStatus]) -> Table:
    table = Table.grid(padding=(0, 1))
    for module in modules:
        state = Text(module.state, style="dim")
        if module.detail:
            state.append(f" {module.detail}", style="" if module.healthy else "red")
        mark = Text("●", style="green") if module.healthy else Text("✖", style="bold red")
        table.add_row(mark, Text(module.name), state)
    if not modules:
        table.add_row(Text("no modules reported", style="dim"))
    return table


def tenants_panel(tenants: Sequence[TenantStats], limit: int = 10) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column()
    table.add_column(justify="right")
    table.add_column(justify="right")
    table.add_row(Text("tenant", style="bold"), Text("req", style="bold"), Text("err", "bold"))
    for tenant in tenants[:limit]:
        errors = Text(str(tenant.errors), style="red" if tenant.errors else "")
        table.add_row(Text(tenant.tenant), Text(str(tenant.requests)), errors)
    return table


MAX_DEPTH = 32  # deeper spans are drawn at this depth: a bad depth must not hang the screen


def tree_prefixes(depths: Sequence[int]) -> list[str]:
    """Box-drawing prefixes for spans listed depth first, e.g. ``│  └─ `` for a last grandchild."""
    # Backwards in one pass: more[level] says whether the nearest following span at most that
    # deep is exactly that deep, i.e. whether the tree line at that level goes on below.
    more = [False] * (MAX_DEPTH + 1)
    prefixes = []
    for depth in (max(0, min(d, MAX_DEPTH)) for d in reversed(depths)):
        parts = ["│  " if more[level] else "   " for level in range(1, depth)]
        if depth:
            parts.append("├─ " if more[depth] else "└─ ")
        prefixes.append("".join(parts))
        more[depth] = True
        more[depth + 1 :] = [False] * (MAX_DEPTH - depth)
    return prefixes[::-1]


def timeline(span: SpanView, total_ms: float, width: int = 30) -> Text:
    """Where the span lies in the trace, as a bar ``width`` cells wide."""
    total = _finite(total_ms) or 1.0

    def cells(value_ms: float) -> float:
        return min(float(width), max(0.0, _finite(value_ms) / total * width))

    start = min(width - 1, int(cells(span.start_offset_ms)))
    length = max(1, min(width - start, round(cells(span.duration_ms))))
    style = "red" if span.status == "error" else "green"
    return Text.assemble(" " * start, ("█" * length, style), " " * (width - start - length))


def trace_extent(spans: Sequence[SpanView], duration_ms: float) -> float:
    """The trace's length: its own duration, or its spans' end when a span outlives the root."""
    ends = (_finite(s.start_offset_ms) + _finite(s.duration_ms) for s in spans)
    return max([_finite(duration_ms), *ends])


class Suggestions(Suggester):
    """Completes a filter from the values the last report named (tenants, modules, routes)."""

    def __init__(self, values: Callable[[], Sequence[str]]) -> None:
        super().__init__(use_cache=False, case_sensitive=False)
        self._values = values

    async def get_suggestion(self, value: str) -> str | None:
        for candidate in self._values():
            if candidate.casefold().startswith(value):
                return candidate
        return None
