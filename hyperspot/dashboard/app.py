"""``hyperspot dashboard``: a live terminal view of the admin observability endpoints."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import ClassVar, TypeVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive

from hyperspot.dashboard.client import (
    BadResponseError,
    DashboardError,
    RejectedError,
    Source,
    UnreachableError,
)
from hyperspot.dashboard.screens import MainScreen
from hyperspot.dashboard.widgets import Link, LinkState

T = TypeVar("T")


class DashboardApp(App[None]):
    """Polls a ``Source``; every screen follows ``link``, the server's reachability."""

    TITLE = "HyperSpot dashboard"
    CSS = """
    #filters { height: 1; padding: 0 1; margin-top: 1; }
    #filters Input { width: 20; margin-right: 2; }
    #summary, #heading, #attributes, .problem { height: auto; padding: 0 1; }
    #routes, #traces, #spans { height: 1fr; border: round $primary; }
    #panels { height: auto; }
    .panel { width: 1fr; height: auto; border: round $secondary; padding: 0 1; }
    #logs { height: 1fr; border: round $secondary; }
    .stale DataTable, .stale #summary, .stale .panel { opacity: 50%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "Quit")]

    link: reactive[Link] = reactive(Link())

    def __init__(
        self,
        source: Source,
        *,
        interval_s: float = 2.0,
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        super().__init__()
        self.source = source
        self.interval_s = interval_s
        # Injected so that snapshot tests can show fixed times.
        self.clock = clock

    def on_mount(self) -> None:
        self.push_screen(MainScreen())

    async def on_unmount(self) -> None:
        await self.source.aclose()

    async def fetch(self, call: Awaitable[T]) -> T | None:
        """Await a call to the source; when the server is lost or refuses, say so and give None.

        ``BadResponseError`` is raised on to the screen that asked: the server did answer.
        """
        try:
            value = await call
        except UnreachableError as error:
            self._lost("unreachable", error)
            return None
        except RejectedError as error:
            self._lost("rejected", error)
            return None
        except BadResponseError:
            self._answered()
            raise
        self._answered()
        return value

    def _answered(self) -> None:
        if self.link.state != "ok":
            self.link = replace(self.link, state="ok", message="", since=None)

    def _lost(self, state: LinkState, error: DashboardError) -> None:
        since = self.link.since if self.link.state == state else self.clock()
        self.link = replace(self.link, state=state, message=str(error), since=since)
