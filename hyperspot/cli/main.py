"""The ``hyperspot`` command."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hyperspot import __version__
from hyperspot.cli.check import check
from hyperspot.cli.common import ConfigOption, fail, out
from hyperspot.cli.contracts import contracts
from hyperspot.cli.dashboard import dashboard
from hyperspot.cli.gts import gts_app
from hyperspot.cli.lint import lint
from hyperspot.cli.migrate import migrate_app
from hyperspot.cli.new import new
from hyperspot.cli.onboard import onboard
from hyperspot.cli.sandbox import sandbox_app
from hyperspot.cli.tenants import tenants_app
from hyperspot.platform.config import flatten, load_config, mask_secrets
from hyperspot.platform.errors import HyperspotError

app = typer.Typer(
    name="hyperspot",
    help="HyperSpot: build, check and run modular multi-tenant services.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(migrate_app, name="migrate")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(tenants_app, name="tenants")
app.add_typer(gts_app, name="gts")
app.command()(dashboard)
app.command()(lint)
app.command()(new)
app.command()(check)
app.command()(contracts)
app.command()(onboard)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"hyperspot {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    """HyperSpot: build, check and run modular multi-tenant services."""


@app.command()
def up(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address (server.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (server.port).")] = None,
    reload: Annotated[bool, typer.Option(help="Restart when the code changes.")] = False,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Server processes sharing the port (server.workers)."),
    ] = None,
) -> None:
    """Start the server (embedded SQLite unless database.url says otherwise)."""
    import os

    from hyperspot.platform import server

    # Command-line options are the strongest source: they become environment overrides.
    if host is not None:
        os.environ["HYPERSPOT_SERVER__HOST"] = host
    if port is not None:
        os.environ["HYPERSPOT_SERVER__PORT"] = str(port)
    if workers is not None:
        if reload and workers > 1:
            raise fail("--reload serves one process: leave out --workers")
        os.environ["HYPERSPOT_SERVER__WORKERS"] = str(workers)
    try:
        if reload:
            _serve_reloading(config)
        else:
            server.serve(config)
    except HyperspotError as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        raise typer.Exit(code=130) from None


def _serve_reloading(config: Path | None) -> None:
    import os

    import uvicorn

    from hyperspot.platform.server import check_auth_mode, prepare

    # Fail fast, with the CLI's message, before the reloader starts; its worker process is the
    # one that serves (and writes the log file).
    loaded, _ = prepare(config)
    check_auth_mode(loaded)
    if config is not None:
        os.environ["HYPERSPOT_CONFIG"] = str(config.resolve())
    watched = [str(Path(__file__).resolve().parents[1]), *map(str, loaded.settings.modules_path)]
    uvicorn.run(
        "hyperspot.platform.server:app_from_environment",
        factory=True,
        host=loaded.settings.server.host,
        port=loaded.settings.server.port,
        reload=True,
        reload_dirs=watched,
        log_config=None,
        access_log=False,
    )


@app.command("run-module")
def run_module(
    name: Annotated[str, typer.Argument(help="The module to run in this process.")],
    *,
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port (0: any free port).")] = 0,
    grpc_port: Annotated[
        int | None, typer.Option(help="Also serve its contracts over gRPC (0: any free port).")
    ] = None,
    parent_url: Annotated[
        str | None,
        typer.Option(help="The platform's address, for the modules this one calls there."),
    ] = None,
    parent_pid: Annotated[
        int | None, typer.Option(help="Stop when this process (the platform) is gone.")
    ] = None,
) -> None:
    """Run one module in its own process (the platform starts this for `runtime: oop`; run it on
    another host for `runtime: remote`). It prints its addresses once ready."""
    from hyperspot.platform.rpc.child import run_module as run

    try:
        run(
            name,
            config,
            host=host,
            port=port,
            grpc_port=grpc_port,
            parent_url=parent_url,
            parent_pid=parent_pid,
        )
    except HyperspotError as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        raise typer.Exit(code=130) from None


@app.command()
def modules(config: ConfigOption = None) -> None:
    """List the modules: name, version, dependencies, capabilities and state."""
    from hyperspot.platform.server import prepare

    try:
        _, runtime = prepare(config, quiet=True)
    except HyperspotError as error:
        raise fail(str(error)) from None
    table = Table(title="HyperSpot modules")
    for column in ("name", "version", "depends on", "capabilities", "state"):
        # On a narrow terminal only the dependency list wraps: the other cells stay whole.
        table.add_column(column, no_wrap=column != "depends on")
    for record in runtime.records:
        module = record.module
        table.add_row(
            module.name,
            module.version,
            ", ".join(module.depends_on) or "-",
            ", ".join(sorted(module.capabilities)) or "-",
            "disabled" if record.state == "disabled" else f"enabled ({record.runtime})",
        )
    out.print(table)


@app.command()
def openapi(
    config: ConfigOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the OpenAPI 3.1 document generated from the modules' operations."""
    from hyperspot.platform.server import prepare

    try:
        _, runtime = prepare(config, quiet=True)
        document = asyncio.run(_openapi_of(runtime))
    except HyperspotError as error:
        raise fail(str(error)) from None
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}")


async def _openapi_of(runtime: Any) -> dict[str, Any]:
    await runtime.boot(migrate=False)
    try:
        document: dict[str, Any] = runtime.openapi()
    finally:
        await runtime.stop()
    return document


@config_app.command("show")
def config_show(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the effective configuration, secrets masked, with each value's source."""
    from hyperspot.platform.server import prepare

    try:
        loaded, runtime = prepare(config, quiet=True)
    except HyperspotError as error:
        raise fail(str(error)) from None
    effective = loaded.settings.model_dump(mode="json")
    effective["database"]["url"] = loaded.settings.database_url
    # Module sections as the modules see them: validated, with their defaults filled in.
    effective["modules"] = {
        record.module.name: {
            "enabled": record.context is not None,
            **(record.context.config.model_dump(mode="json") if record.context else {}),
        }
        for record in sorted(runtime.records, key=lambda r: r.module.name)
    }
    rows = [
        (".".join(map(str, path)), mask_secrets(str(path[-1]), value), str(loaded.source_of(path)))
        for path, value in flatten(effective)
    ]
    if as_json:
        sys.stdout.write(
            json.dumps([{"key": k, "value": v, "source": s} for k, v, s in rows], indent=2) + "\n"
        )
        return
    table = Table(title="Effective configuration")
    for column in ("key", "value", "source"):
        table.add_column(column)
    for key, value, source in rows:
        table.add_row(key, json.dumps(value), source)
    out.print(table)


token_app = typer.Typer(help="Development bearer tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("issue")
def token_issue(
    tenant: Annotated[str, typer.Option(help="The tenant the token acts in.")],
    subject: Annotated[str, typer.Option(help="Who the token speaks for.")],
    roles: Annotated[
        str,
        typer.Option(help="Comma-separated roles in that tenant, e.g. member or tenant-admin."),
    ] = "member",
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.", min=1)] = 3600,
    config: ConfigOption = None,
) -> None:
    """Mint a token signed with auth.jwt.secret (for development; printed to stdout)."""
    from hyperspot.platform.auth import issue_token

    try:
        settings = load_config(config).settings.auth.jwt
        granted = [r.strip() for r in roles.split(",") if r.strip()]
        token = issue_token(settings, tenant=tenant, subject=subject, roles=granted, ttl_s=ttl)
    except HyperspotError as error:
        raise fail(str(error)) from None
    sys.stdout.write(token + "\n")


def main() -> None:
    app()
