"""Serving: the ASGI application with the module lifecycle bound to the server's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import gc
import ipaddress
import json
import logging
import os
import select
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from hyperspot.platform.config import LoadedConfig, ServerSettings, load_config, mask_url
from hyperspot.platform.connections import ConnectionLimits, ServerConfig
from hyperspot.platform.errors import HyperspotError
from hyperspot.platform.gateway.app import AsgiApp
from hyperspot.platform.gateway.problems import PROBLEM_MEDIA_TYPE, Problem, problem_document
from hyperspot.platform.logs import configure_logging, request_id_var, stop_logging
from hyperspot.platform.runtime import Runtime, load_modules

logger = logging.getLogger("hyperspot.server")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class HyperspotApp:
    """ASGI entry point: boots and starts the modules at lifespan start-up, stops them after."""

    def __init__(self, runtime: Runtime, on_ready: Callable[[], None] | None = None) -> None:
        self.runtime = runtime
        self.gateway: AsgiApp | None = None
        self.startup_error: BaseException | None = None
        # Start-up completed and shutdown not begun: only then may a reload touch the modules.
        self.serving = False
        # A worker process tells its supervisor it is serving.
        self.on_ready = on_ready
        # Reloads started by SIGHUP: referenced until done, or the loop may drop them.
        self._reloads: set[asyncio.Task[object]] = set()

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
                    await self.runtime.boot(link=True)
                    self.gateway = self.runtime.build_app()
                    await self.runtime.start()
                except (HyperspotError, Exception) as error:
                    self.startup_error = error
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
                self.serving = True
                if self.on_ready is not None:
                    self.on_ready()
            elif message["type"] == "lifespan.shutdown":
                self.serving = False
                await self.runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def reload_config(self) -> None:
        """SIGHUP: reload the configuration in the background (see ``Runtime.reload``)."""
        if not self.serving or self.runtime.stopping:
            logger.warning("SIGHUP ignored: the server is not serving (starting or stopping)")
            return
        logger.info("SIGHUP: reloading the configuration")
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(self.runtime.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)


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
    config_path: Path | None,
    *,
    quiet: bool = False,
    serving: bool = False,
    worker: int | None = None,
) -> tuple[LoadedConfig, Runtime]:
    """Load and validate configuration and modules: everything that can fail before serving.

    ``quiet`` keeps informational logs out of commands that only inspect (openapi, modules);
    ``serving`` adds the checks that only matter to a server that will accept requests;
    ``worker`` numbers one of several server processes, which writes its own log file.
    """
    loaded = load_config(config_path)
    logging_settings = loaded.settings.logging
    if quiet:
        logging_settings = logging_settings.model_copy(update={"level": "WARNING"})
    log_file = logging_settings.file.path
    if worker is not None and log_file is not None:
        # One writer per file: rotating a file that other processes append to loses lines.
        per_worker = log_file.with_name(f"{log_file.stem}.worker-{worker}{log_file.suffix}")
        file_settings = logging_settings.file.model_copy(update={"path": per_worker})
        logging_settings = logging_settings.model_copy(update={"file": file_settings})
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
    process by signal (and SIGINT with a traceback). Here a graceful stop is a normal exit.

    A worker process (``supervisor_pid`` set) also stops gracefully when its supervisor is gone,
    e.g. killed with SIGKILL, instead of serving on as an orphan.

    With ``on_hangup`` set, SIGHUP calls it on the event loop (the configuration reload) instead
    of ending the process."""

    supervisor_pid: int | None = None
    on_hangup: Callable[[], None] | None = None

    async def on_tick(self, counter: int) -> bool:
        if self.supervisor_pid is not None and os.getppid() != self.supervisor_pid:
            self.should_exit = True
        return await super().on_tick(counter)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # pragma: no cover
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        on_hangup = self.on_hangup
        if on_hangup is not None:
            loop = asyncio.get_running_loop()

            def hang_up(sig: int, frame: object) -> None:
                # A signal handler interrupts whatever the loop runs: schedule, do not run, and
                # not in the context of the request that happened to be interrupted.
                loop.call_soon_threadsafe(on_hangup, context=contextvars.Context())

            previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, hang_up)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def serve(config_path: Path | None) -> None:
    """Run the server until SIGINT/SIGTERM; in-flight requests get the configured grace period.
    SIGHUP reloads the configuration (``Runtime.reload``).

    With ``server.workers`` > 1 this process binds the port and supervises that many worker
    processes serving it (see ``_Supervisor``).
    """
    workers = load_config(config_path).settings.server.workers
    if workers > 1:
        _Supervisor(config_path, workers).run()
    else:
        _serve_process(config_path)


def _serve_process(
    config_path: Path | None,
    sock: socket.socket | None = None,
    worker: int | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve in this process: on ``sock`` (a supervisor's) or on a socket bound here."""
    loaded, runtime = prepare(config_path, serving=True, worker=worker)
    server_settings = loaded.settings.server
    if sock is None:
        sock = bind(server_settings.host, server_settings.port)
    runtime.links.own_url = _own_url(sock)
    app = HyperspotApp(runtime, on_ready)
    server = bounded_server(app, server_settings)
    server.on_hangup = app.reload_config
    if worker is None:
        host, port = sock.getsockname()[:2]
        logger.info(
            "HyperSpot listening on http://%s:%s (database %s)",
            host,
            port,
            _masked_database(loaded),
        )
    else:
        supervisor = server.supervisor_pid = os.getppid()
        # POST /admin/reload reaches one worker: the supervisor passes it on to all of them.
        runtime.reload_peers = lambda: _signal(supervisor, signal.SIGHUP)
    run_server(server, app, sock)


def bounded_server(app: HyperspotApp, server_settings: ServerSettings) -> _Server:
    """The uvicorn server for ``app`` with the configured connection bounds and grace period."""
    config = ServerConfig(
        app,
        limits=ConnectionLimits.of(server_settings),
        timeout_keep_alive=server_settings.keep_alive_s,
        limit_concurrency=server_settings.max_connections,
        backlog=server_settings.backlog,
        lifespan="on",
        ws="none",  # no WebSocket operations: not importing the websockets library saves ~5 MB
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(int(server_settings.grace_period_s), 1),
    )
    return _Server(config)


def run_server(server: _Server, app: HyperspotApp, sock: socket.socket) -> None:
    """Serve until stopped; a failed start-up raises its error for the CLI's one line."""
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


_READY = b"ready\n"


@dataclasses.dataclass
class _Worker:
    index: int
    # The read end of the pipe the worker reports on: "ready", or its start-up error.
    reports: int
    said: bytes = b""

    @property
    def ready(self) -> bool:
        return self.said.startswith(_READY)


class _Supervisor:
    """Binds the port and forks ``count`` workers that serve it, each with its own runtime.

    The workers are forked after this process has imported and validated everything (once, with
    the CLI's error messages) and before any thread, event loop or connection exists, so they
    share those pages copy-on-write. Migrations run under the database's migration lock, and
    start-up work such as creating the root tenant is safe when several processes race. State
    kept in memory stays per worker: rate-limit buckets (``rate_limits.backend: redis`` shares
    them), caches, metrics and the trace ring.

    A worker that fails before it is ready stops the whole server with its error; one that dies
    later is replaced. SIGTERM or SIGINT stops every worker gracefully (each gets the grace
    period), then this process exits. SIGHUP is passed on to every ready worker, which reloads
    its configuration: it no longer stops the server (as with nginx or gunicorn), so a server
    started from a terminal keeps serving when that terminal closes (the workers are in their own
    process group and never get the terminal's hangup themselves).
    """

    def __init__(self, config_path: Path | None, count: int) -> None:
        self.config_path = config_path
        self.count = count
        self.workers: dict[int, _Worker] = {}
        self.stopping = False
        self.failure: str | None = None

    def run(self) -> None:
        loaded, _ = prepare(self.config_path)
        check_auth_mode(loaded)
        settings = loaded.settings.server
        with bind(settings.host, settings.port) as sock:
            host, port = sock.getsockname()[:2]
            logger.info(
                "HyperSpot listening on http://%s:%s with %d worker processes (database %s)",
                host,
                port,
                self.count,
                _masked_database(loaded),
            )
            # Not walked by the workers' collectors: stays shared with this process.
            gc.freeze()
            handlers = {sig: signal.signal(sig, self._on_signal) for sig in _STOP_SIGNALS}
            handlers[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hangup)
            try:
                for index in range(self.count):
                    self._spawn(index, sock)
                while self.workers:
                    self._wait(sock)
            finally:
                for sig, handler in handlers.items():
                    signal.signal(sig, handler)
        if self.failure is not None:
            raise HyperspotError(self.failure)
        logger.info("all workers stopped")

    def _spawn(self, index: int, sock: socket.socket) -> None:
        reports, report_to = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the worker process (its coverage is saved on exit)
            os.close(reports)
            self._work(index, sock, report_to)
        os.close(report_to)
        self.workers[pid] = _Worker(index, reports)

    def _work(self, index: int, sock: socket.socket, report_to: int) -> None:
        # The worker process: never returns into the CLI.
        code = 0
        try:
            # Its own process group: a terminal's Ctrl-C reaches the supervisor only, which
            # stops each worker exactly once.
            os.setpgid(0, 0)
            for sig in _STOP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            # Until the server installs its reload handler: a SIGHUP then must not end the
            # worker (the supervisor signals only ready workers, but may race their start).
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            for other in self.workers.values():
                os.close(other.reports)

            def ready() -> None:
                os.write(report_to, _READY)

            _serve_process(self.config_path, sock, index, ready)
        except HyperspotError as error:
            os.write(report_to, str(error).encode())
            code = 1
        except BaseException as error:
            os.write(report_to, f"worker {index} failed: {error!r}".encode())
            code = 1
        finally:
            stop_logging()
            os._exit(code)

    def _wait(self, sock: socket.socket) -> None:
        fds = [worker.reports for worker in self.workers.values()]
        # A signal interrupts the wait: its handler has already told the workers to stop.
        readable, _, _ = select.select(fds, [], [], 0.5)
        for worker in self.workers.values():
            if worker.reports in readable:
                worker.said += os.read(worker.reports, 4096)
        while self.workers:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            worker = self.workers.pop(pid)
            while chunk := os.read(worker.reports, 4096):
                worker.said += chunk
            os.close(worker.reports)
            self._exited(worker, os.waitstatus_to_exitcode(status), sock)

    def _exited(self, worker: _Worker, code: int, sock: socket.socket) -> None:
        if self.stopping:
            return
        if not worker.ready:
            reason = worker.said.decode(errors="replace").strip()
            self.failure = reason or f"worker {worker.index} exited with code {code} at start-up"
            self._stop_workers()
            return
        logger.warning("worker %d exited with code %d; starting a new one", worker.index, code)
        self._spawn(worker.index, sock)

    def _on_signal(self, sig: int, frame: object) -> None:
        self._stop_workers()

    def _on_hangup(self, sig: int, frame: object) -> None:
        if self.stopping:
            return
        logger.info("SIGHUP: the workers reload their configuration")
        for pid, worker in list(self.workers.items()):
            if worker.ready:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGHUP)

    def _stop_workers(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def _signal(pid: int, sig: int) -> None:
    # A supervisor already gone has nobody left to reload: this worker stops on its own.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def app_from_environment() -> HyperspotApp:
    """Factory for ``--reload``: the reloader re-imports this in a fresh process each time."""
    config = os.environ.get("HYPERSPOT_CONFIG")
    _, runtime = prepare(Path(config) if config else None, serving=True)
    return HyperspotApp(runtime)


def _own_url(sock: socket.socket) -> str:
    """How processes on this host reach this server (module processes call back here)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _masked_database(loaded: LoadedConfig) -> str:
    return mask_url(loaded.settings.database_url)
