"""``hyperspot lint``: the architecture rules (HS000-HS009) over a project's code."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from hyperspot.cli.common import fail


class Format(StrEnum):
    text = "text"
    json = "json"


def default_paths(cwd: Path) -> list[Path]:
    """The platform's own package in the platform repo, else the whole project folder."""
    if (cwd / "hyperspot" / "platform" / "__init__.py").is_file():
        return [cwd / "hyperspot"]
    return [cwd]


def lint(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Files or folders to check (default: the hyperspot package in the platform "
            "repo, else the current folder). Test code and virtual environments are skipped.",
            show_default=False,
        ),
    ] = None,
    output_format: Annotated[
        Format, typer.Option("--format", help="text: one finding per line; json: for tools.")
    ] = Format.text,
    list_rules: Annotated[
        bool, typer.Option("--list-rules", help="Print the rules' codes and exit.")
    ] = False,
) -> None:
    """Check the architecture rules (HS000-HS009); exit 1 on findings, 2 if it cannot run.

    Each finding prints as `path:line:col: CODE message`: what is wrong, why, and how to fix it.

    Suppress one line with `# hyperspot: ignore[CODE] reason` (the reason is required).
    """
    from hyperspot.lint_rules import RULES, LintUsageError
    from hyperspot.lint_rules import lint as run
    from hyperspot.lint_rules.report import as_json, as_text

    if list_rules:
        sys.stdout.writelines(f"{r.code} {r.name}: {r.summary}\n" for r in RULES.values())
        return
    cwd = Path.cwd()
    try:
        report = run(paths or default_paths(cwd))
    except LintUsageError as error:
        fail(str(error))  # prints the one-line error
        raise typer.Exit(code=2) from None  # 2, not 1: nothing was checked
    render = as_json if output_format is Format.json else as_text
    sys.stdout.write(render(report, cwd))
    if not report.ok:
        raise typer.Exit(code=1)
