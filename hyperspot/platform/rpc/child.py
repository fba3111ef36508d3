"""``hyperspot run-module NAME``: one module in a process of its own.

Started by the platform for ``runtime: oop`` (or by an operator on another host for
``runtime: remote``). It reads the same configuration as the platform, runs only its module,
reaches the modules it needs in the parent over HTTP, serves its REST operations only to the
platform's gateway (a signed call context is required), and serves its contracts over HTTP and,
when asked, gRPC. It stops when the parent dies, also when the parent is killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from hyperspot.platform.config import DEPLOYMENT_KEYS, LoadedConfig, load_config
from hyperspot.platform.errors import HyperspotError
from hyperspot.platform.logs import configure_logging, module_process_logging
from hyperspot.platform.module import Module
from hyperspot.platform.rpc.supervisor import READY_PREFIX
from hyperspot.platform.runtime import Runtime, load_modules
from hyperspot.platform.server import HyperspotApp, bind, bounded_server, run_server

logger = logging.getLogger("hyperspot.module_process")

_PR_SET_PDEATHSIG = 1
PARENT_POLL_S = 1.0


def run_module(
    name: str,
    config_path: Path | None,
    *,
    host: str,
    port: int,
    grpc_port: int | None,
    parent_url: str | None,
    parent_pid: int | None = None,
) -> None:
    if parent_pid is not None:
        _die_with(parent_pid)
    loaded = load_config(config_path)
    # The parent writes the log file; a module process logs to stderr, which the parent shares.
    settings = loaded.settings.logging
    if parent_pid is not None:
        # Supervised: the platform reads this stderr and logs its lines, file included.
        settings = module_process_logging(settings)
    configure_logging(settings, write_file=False, process=f"{name}:{os.getpid()}")
    modules = load_modules(loaded)
    loaded, modules = _only(name, loaded, modules, parent_url)
    runtime = Runtime(loaded, modules)
    runtime.module_process = True
    sock = bind(host, port)
    http_port = sock.getsockname()[1]

    async def announce() -> None:
        addresses: dict[str, Any] = {"http": http_port}
        if grpc_port is not None:
            local = [record.module for record in runtime.active]
            addresses["grpc"] = await runtime.links.serve_grpc(
                runtime.clients, local, host, grpc_port
            )
        if parent_pid is not None:
            background.append(asyncio.get_running_loop().create_task(_watch_parent(parent_pid)))
        logger.info("module '%s' serving at %s", name, addresses)
        # hyperspot: ignore[HS009] the supervisor reads this line: a protocol, not a log line
        print(READY_PREFIX + json.dumps(addresses), flush=True)

    background: list[asyncio.Task[None]] = []

    def ready() -> None:
        background.append(asyncio.get_running_loop().create_task(announce()))

    app = HyperspotApp(runtime, ready)
    try:
        run_server(bounded_server(app, loaded.settings.server), app, sock)
    except HyperspotError as error:
        raise HyperspotError(f"module '{name}': {error}") from None


def _only(
    name: str, loaded: LoadedConfig, modules: list[Module[Any]], parent_url: str | None
) -> tuple[LoadedConfig, list[Module[Any]]]:
    """The configuration of a process that runs ``name`` and reaches what it needs remotely."""
    by_name = {module.name: module for module in modules}
    target = by_name.get(name)
    if target is None:
        raise HyperspotError(
            f"no module named '{name}' (installed: {', '.join(sorted(by_name)) or 'none'})"
        )
    needed = set(target.depends_on) | {
        module.name
        for module in modules
        if any(protocol in module.provides for protocol in target.uses)
    }
    if needed and not parent_url:
        raise HyperspotError(
            f"module '{name}' needs {', '.join(sorted(needed))}: give the platform's address "
            "with --parent-url"
        )
    sections: dict[str, dict[str, Any]] = {}
    chosen: list[Module[Any]] = []
    for module in modules:
        own = {
            key: value
            for key, value in loaded.settings.modules.get(module.name, {}).items()
            if key not in DEPLOYMENT_KEYS
        }
        if module.name == name:
            sections[module.name] = own
            chosen.append(module)
        elif module.name in needed:
            sections[module.name] = {
                **own,
                "runtime": "remote",
                "transport": "http",
                "address": parent_url,
            }
            # Its own dependencies live with it in the parent, not here.
            chosen.append(dataclasses.replace(module, depends_on=()))
    settings = loaded.settings.model_copy(update={"modules": sections})
    return dataclasses.replace(loaded, settings=settings), chosen


def _die_with(parent: int) -> None:
    """Ask Linux to SIGTERM this process when its parent dies (also by SIGKILL)."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        # The parent died before the request above took effect.
        raise SystemExit(0)


async def _watch_parent(parent: int) -> None:
    """Where PR_SET_PDEATHSIG does not exist (macOS): notice the parent's death by polling."""
    while os.getppid() == parent:  # noqa: ASYNC110 - no event announces a parent's death
        await asyncio.sleep(PARENT_POLL_S)
    logger.warning("the platform process %s is gone: stopping", parent)
    os.kill(os.getpid(), signal.SIGTERM)
