"""``hyperspot sandbox``: development databases (PostgreSQL and MariaDB) that outlive a command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

from hyperspot.cli.common import ConfigOption, fail
from hyperspot.platform.errors import HyperspotError

if TYPE_CHECKING:
    from hyperspot.sandbox.environment import Sandbox

sandbox_app = typer.Typer(
    help="Development databases: PostgreSQL and MariaDB, in Docker or on the local servers.",
    no_args_is_help=True,
)

ShowSecretsOption = Annotated[
    bool, typer.Option("--show-secrets", help="Print passwords instead of masking them.")
]


def _say(text: str, *, stderr: bool = False) -> None:
    # Text, not markup: URLs and driver messages may contain brackets.
    Console(stderr=stderr, highlight=False, soft_wrap=True).print(Text(text))


def _data_dir(config: Path | None) -> Path:
    from hyperspot.platform.config import load_config

    return load_config(config).settings.data_dir


def _print_urls(sandbox: Sandbox, show_secrets: bool) -> None:
    where = "Docker containers" if sandbox.source == "docker" else "existing servers"
    _say(f"sandbox '{sandbox.prefix}' on {where}:")
    for database in sandbox.databases:
        url = database.url.url if show_secrets else database.url.masked
        _say(f"  {database.engine}: {url}")
        _say(f"    HYPERSPOT_DATABASE__URL={url}")


@sandbox_app.command("up")
def sandbox_up(
    config: ConfigOption = None,
    prefix: Annotated[
        str,
        typer.Option(
            help="Database names are <prefix>_postgres and <prefix>_mariadb; "
            "give each sandbox sharing a server its own."
        ),
    ] = "hyperspot_dev",
    docker: Annotated[
        bool, typer.Option(help="Use Docker containers when a Docker engine is reachable.")
    ] = True,
    show_secrets: ShowSecretsOption = False,
) -> None:
    """Create the sandbox databases (or report the existing sandbox)."""
    from hyperspot.sandbox import environment

    try:
        data_dir = _data_dir(config)
        sandbox, created = environment.up(
            data_dir, prefix=prefix, use_docker=docker, note=lambda line: _say(line, stderr=True)
        )
    except HyperspotError as error:
        raise fail(str(error)) from None
    record = environment.state_path(data_dir)
    if created:
        _say(f"created the sandbox, recorded in {record}")
    else:
        _say(f"the sandbox is already up, recorded in {record}")
        if sandbox.prefix != prefix:
            _say(f"(not '{prefix}': run `hyperspot sandbox down` first for another prefix)")
    _print_urls(sandbox, show_secrets)


@sandbox_app.command("urls")
def sandbox_urls(config: ConfigOption = None, show_secrets: ShowSecretsOption = False) -> None:
    """Print the sandbox databases' URLs, as HYPERSPOT_DATABASE__URL settings too."""
    from hyperspot.sandbox import environment

    try:
        data_dir = _data_dir(config)
        sandbox = environment.load(data_dir)
    except HyperspotError as error:
        raise fail(str(error)) from None
    if sandbox is None:
        raise fail(f"no sandbox recorded in {data_dir}; run `hyperspot sandbox up`")
    _print_urls(sandbox, show_secrets)


@sandbox_app.command("down")
def sandbox_down(config: ConfigOption = None) -> None:
    """Drop the sandbox databases, stop their containers and forget the sandbox."""
    from hyperspot.sandbox import environment

    try:
        data_dir = _data_dir(config)
        sandbox = environment.down(data_dir)
    except HyperspotError as error:
        raise fail(str(error)) from None
    if sandbox is None:
        _say(f"no sandbox recorded in {data_dir}; nothing to remove")
        return
    removed = ", ".join(database.url.database for database in sandbox.databases)
    _say(f"removed {removed or 'an empty sandbox record'}")


@sandbox_app.command("fake-openai")
def sandbox_fake_openai(
    *,
    port: Annotated[int, typer.Option(help="0: any free port (the URL is printed).")] = 8090,
    host: str = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(help="Delay before each answer.")] = 0.0,
    chunk_delay_ms: Annotated[float, typer.Option(help="Delay between stream chunks.")] = 0.0,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding the Bearer key callers must send."),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(help="A model to serve (repeatable; default: fake-chat, fake-embed)."),
    ] = None,
) -> None:
    """Serve a fake OpenAI-compatible API for the ai_openai provider (demos, benchmarks)."""
    import os

    from hyperspot.sandbox import fake_openai

    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise fail(f"the environment variable {api_key_env} is empty or unset")
    fake_openai.serve(
        host=host,
        port=port,
        api_key=api_key,
        latency_ms=latency_ms,
        chunk_delay_ms=chunk_delay_ms,
        models=model or fake_openai.DEFAULT_MODELS,
    )
