"""Serving: the ASGI application with the module lifecycle bound to the server's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from hyperspot.platform.config import LoadedConfig, load_config, mask_url
from hyperspot.platform.errors import HyperspotError
from hyperspot.platform.gateway.app import AsgiApp
from hyperspot.platform.gateway.problems import PROBLEM_MEDIA_TYPE, Problem, problem_document
from hyperspot.platform.logs import configure_logging, request_id_var
from hyperspot.platform.runtime import Runtime, load_modules

logger = logging.getLogger("hyperspot.server")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class HyperspotApp:
    """ASGI entry point: boots and starts the modules at lifespan start-up, stops them after."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.gateway: AsgiApp | None = None
        self.startup_error: BaseException | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif self.gateway is not None:
            await self._serve_request(self.gateway, scope, receive, send)
        else:  # pragma: no cover - servers do not route requests before lifespan start-up completes
            raise RuntimeError("request before start-up completed")

    async def _serve_request(
        self, gateway: AsgiApp, scope: Scope, receive: Receive, send: Send
    ) -> None:
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await gateway(scope, receive, tracked_send)
        except asyncio.CancelledError:
            # The grace period ended with this request still running: say so in the API's own
            # error format (uvicorn would answer a bare text 500), then let the cancellation go on.
            if scope["type"] == "http" and not started:
                await _send_shutdown_problem(scope, send)
            raise

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.runtime.boot()
                    self.gateway = self.runtime.build_app()
                    await self.runtime.start()
                except (HyperspotError, Exception) as error:
                    self.startup_error = error
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _send_shutdown_problem(scope: Scope, send: Send) -> None:
    # The gateway's middleware set the request id in this task's context.
    request_id = request_id_var.get()
    problem = Problem(503, "the server is shutting down; retry the request")
    body = json.dumps(problem_document(problem, scope.get("path", ""), request_id)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
                (b"x-request-id", request_id.encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def prepare(
    config_path: Path | None, *, quiet: bool = False, serving: bool = False
) -> tuple[LoadedConfig, Runtime]:
    """Load and validate configuration and modules: everything that can fail before serving.

    ``quiet`` keeps informational logs out of commands that only inspect (openapi, modules);
    ``serving`` adds the checks that only matter to a server that will accept requests.
    """
    loaded = load_config(config_path)
    logging_settings = loaded.settings.logging
    if quiet:
        logging_settings = logging_settings.model_copy(update={"level": "WARNING"})
    # Only a serving process writes the log file: one writer per file.
    configure_logging(logging_settings, write_file=serving)
    if serving:
        check_auth_mode(loaded)
    modules = load_modules(loaded)
    return loaded, Runtime(loaded, modules)


def check_auth_mode(loaded: LoadedConfig) -> None:
    """Development mode (no authentication) only on a loopback address, and never quietly."""
    settings = loaded.settings
    if settings.auth.mode != "dev":
        return
    host = settings.server.host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise HyperspotError(
            f"auth.mode is 'dev' (no authentication) and server.host is {host}: development mode "
            "serves only loopback addresses (127.0.0.1, ::1); set auth.mode: jwt to serve others "
            f"(auth.mode from {loaded.source_of(('auth', 'mode'))})"
        )
    logger.warning(
        "DEVELOPMENT MODE: authentication is OFF (auth.mode: dev). Every request acts as '%s', "
        "administrator of tenant '%s'. Never run this way outside your own machine.",
        settings.auth.dev.subject,
        settings.auth.dev.tenant,
    )


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY when proto says TCP, and without it
    # every keep-alive response waits ~40 ms for the client's delayed ACK (benchmarks/).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise HyperspotError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """Uvicorn re-raises a caught SIGTERM/SIGINT after its graceful shutdown, which would end the
    process by signal (and SIGINT with a traceback). Here a graceful stop is a normal exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # pragma: no cover
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def serve(config_path: Path | None) -> None:
    """Run the server until SIGINT/SIGTERM; in-flight requests get the configured grace period."""
    loaded, runtime = prepare(config_path, serving=True)
    server_settings = loaded.settings.server
    sock = bind(server_settings.host, server_settings.port)
    app = HyperspotApp(runtime)
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(int(server_settings.grace_period_s), 1),
    )
    server = _Server(config)
    host, port = sock.getsockname()[:2]
    logger.info(
        "HyperSpot listening on http://%s:%s (database %s)",
        host,
        port,
        _masked_database(loaded),
    )
    try:
        # Server.run, not asyncio.run: it picks uvicorn's loop (uvloop when installed).
        server.run(sockets=[sock])
    except SystemExit:
        # Uvicorn exits the process when lifespan start-up fails; the CLI should say why instead.
        if app.startup_error is None:
            raise
    if app.startup_error is not None:
        error = app.startup_error
        if isinstance(error, HyperspotError):
            raise error
        raise HyperspotError(f"start-up failed: {error}") from error


def app_from_environment() -> HyperspotApp:
    """Factory for ``--reload``: the reloader re-imports this in a fresh process each time."""
    config = os.environ.get("HYPERSPOT_CONFIG")
    _, runtime = prepare(Path(config) if config else None, serving=True)
    return HyperspotApp(runtime)


def _masked_database(loaded: LoadedConfig) -> str:
    return mask_url(loaded.settings.database_url)
