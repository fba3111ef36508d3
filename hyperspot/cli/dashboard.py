"""``hyperspot dashboard``: watch a running server's routes, traces and module health."""

from __future__ import annotations

from typing import Annotated

import typer


def dashboard(
    url: Annotated[str, typer.Option(help="The server's base URL.")] = "http://127.0.0.1:8087",
    token: Annotated[
        str | None,
        typer.Option(
            envvar="HYPERSPOT_TOKEN",
            help="A platform administrator's bearer token, e.g. from `hyperspot token issue "
            "--tenant root --subject ops --roles tenant-admin`. Prefer the variable: an option "
            "shows in the process list.",
            show_default=False,
        ),
    ] = None,
    interval: Annotated[
        float, typer.Option(help="Seconds between refreshes.", min=0.2, max=3600)
    ] = 2.0,
) -> None:
    """Live dashboard: request rates, errors and latency per route, slow traces, module health."""
    from hyperspot.dashboard.app import DashboardApp
    from hyperspot.dashboard.client import AdminClient

    DashboardApp(AdminClient(url, token), interval_s=interval).run()
