"""What every ``hyperspot`` command shares: the --config option and the one-line error exit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="HYPERSPOT_CONFIG",
        help="YAML config file (defaults apply without one).",
        dir_okay=False,
    ),
]

out = Console()


def fail(message: str) -> typer.Exit:
    """Print one line to stderr and return the exit to raise."""
    # Text, not markup: URLs and driver messages may contain brackets.
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        Text.assemble(("error:", "bold red"), " ", message)
    )
    return typer.Exit(code=1)
