"""``hyperspot new``: generate a module (regular, gateway or plugin) into a project folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from hyperspot.cli.common import fail, out
from hyperspot.scaffolds.render import (
    BUILTIN_GATEWAYS,
    Kind,
    ScaffoldError,
    find_gateways,
    gateways_listed,
)


def _say(line: str) -> None:
    # Whole lines, never wrapped: paths and commands stay copyable.
    out.print(Text(line), soft_wrap=True)


def _interactive() -> bool:
    return sys.stdin.isatty()


def _ask_gateway(project: Path) -> str:
    """On a terminal, ask which gateway a plugin implements; elsewhere, refuse."""
    modules = project / "modules"
    if not _interactive():
        raise fail(f"--kind plugin needs --implements GATEWAY ({gateways_listed(modules)})")
    choices = [*find_gateways(modules), *BUILTIN_GATEWAYS]
    listed = ", ".join(f"{g} (built in)" if g in BUILTIN_GATEWAYS else g for g in choices)
    answer: str = typer.prompt(
        f"Gateway to implement ({listed})", default=choices[0] if len(choices) == 1 else None
    )
    return answer.strip()


def new(
    name: Annotated[
        str,
        typer.Argument(
            help="The module's name in lower_snake_case: its package, config key and URL prefix.",
            show_default=False,
        ),
    ],
    kind: Annotated[
        Kind,
        typer.Option(
            help=(
                "regular: a tenant-scoped resource with storage; gateway: routes calls to the "
                "plugins registered with it; plugin: implements a gateway's plugin contract."
            ),
            case_sensitive=False,
            show_default=False,
        ),
    ],
    directory: Annotated[
        Path,
        typer.Option(
            "--dir",
            help="The project folder (default: the current one; created if missing).",
            file_okay=False,
        ),
    ] = Path("."),
    implements: Annotated[
        str | None,
        typer.Option(
            help=(
                "The gateway a plugin implements: a gateway module of the project, or a built-in "
                "one (ai: an AI provider for the ai gateway). Asked for on a terminal if omitted."
            )
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a module (and its tests) of that name.")
    ] = False,
) -> None:
    """Generate a module: declaration, contract, domain, REST, storage, config and tests."""
    from hyperspot.scaffolds import apply, plan

    project = directory.resolve()
    if kind is Kind.PLUGIN and implements is None and project.is_dir():
        implements = _ask_gateway(project)
    try:
        planned = plan(project, kind, name, implements, force=force)
        written = apply(planned)
    except ScaffoldError as error:
        raise fail(str(error)) from None
    replaced = " (replaced)" if planned.replacing else ""
    _say(f"created {kind.value} module '{name}' in {project}{replaced}:")
    for path in written:
        _say(f"  {path}")
    if planned.config is not None:
        _say("  hyperspot.yaml: modules_path lists ./modules")
    if planned.pyproject is not None:
        _say("  pyproject.toml: ruff, mypy, pytest and coverage settings")
    for note in planned.notes:
        _say(f"note: {note}")
    if planned.scaffold.builtin_gateway and planned.scaffold.gateway == "ai":
        _say(f"models: {planned.scaffold.values['slug']}-chat, at /ai/v1/chat/completions")
    where = "" if project == Path.cwd().resolve() else f" (in {project})"
    _say(f"next{where}: `hyperspot check`, then `hyperspot up --config hyperspot.yaml`")
    if kind is Kind.GATEWAY:
        _say(f"plugins: `hyperspot new NAME --kind plugin --implements {name}`")
