"""``hyperspot migrate``: show and apply the enabled modules' schema migrations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from hyperspot.cli.common import ConfigOption, fail, out
from hyperspot.platform.errors import HyperspotError

if TYPE_CHECKING:
    from hyperspot.platform.db.migrations import MigrationRunner

migrate_app = typer.Typer(
    help="Show and apply the modules' database migrations.", no_args_is_help=True
)

LockTimeoutOption = Annotated[
    float,
    typer.Option("--lock-timeout", min=0, help="Seconds to wait for another migration run."),
]


def _runner(config: Path | None, lock_timeout_s: float) -> MigrationRunner:
    from hyperspot.platform.db.migrations import MigrationRunner
    from hyperspot.platform.db.urls import parse_database_url
    from hyperspot.platform.server import prepare

    loaded, runtime = prepare(config, quiet=True)
    # runtime.records lists the enabled modules in dependency order (disabled ones last).
    modules = [record.module for record in runtime.records if record.context is not None]
    return MigrationRunner(
        parse_database_url(loaded.settings.database_url),
        [(module.name, module.migrations) for module in modules if module.migrations],
        lock_timeout_s=lock_timeout_s,
    )


@migrate_app.command()
def status(config: ConfigOption = None, lock_timeout: LockTimeoutOption = 60) -> None:
    """List every migration: applied (when), pending, changed since applied, or unknown."""
    try:
        runner = _runner(config, lock_timeout)
        rows = runner.status()
    except HyperspotError as error:
        raise fail(str(error)) from None
    table = Table(title=f"Migrations on {runner.url.masked}")
    for column in ("module", "version", "name", "state", "applied at (UTC)"):
        table.add_column(column)
    for row in rows:
        state = {"changed": "[yellow]changed[/]", "unknown": "[red]unknown[/]"}.get(
            row.state, row.state
        )
        applied_at = row.applied_at.isoformat(sep=" ", timespec="seconds") if row.applied_at else ""
        table.add_row(row.module, str(row.version), row.name, state, applied_at)
    out.print(table)
    if not rows:
        out.print("no module declares migrations")


@migrate_app.command()
def up(
    config: ConfigOption = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the SQL of the pending migrations; change nothing."),
    ] = False,
    lock_timeout: LockTimeoutOption = 60,
) -> None:
    """Apply the pending migrations in dependency order (exactly once, under a lock)."""
    try:
        runner = _runner(config, lock_timeout)
        if dry_run:
            pending = runner.plan()
            for migration in pending:
                out.print(
                    f"-- {migration.module} v{migration.version}: {migration.name}",
                    highlight=False,
                    markup=False,
                )
                for statement in migration.statements:
                    out.print(f"{statement};", highlight=False, soft_wrap=True, markup=False)
            out.print(f"{len(pending)} pending migration(s); dry run, nothing applied")
            return
        applied = runner.up()
    except HyperspotError as error:
        raise fail(str(error)) from None
    for migration in applied:
        out.print(f"applied {migration.module} v{migration.version}: {migration.name}")
    out.print(f"{len(applied)} migration(s) applied" if applied else "nothing to apply")
