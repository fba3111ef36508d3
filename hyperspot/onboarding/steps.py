"""The onboarding steps, their progress file and the runners that do the work.

A runner is ``async (Context) -> None``: it reports through ``Context.emit`` and fails by raising
``StepError``. The runners live in a ``Runners`` dataclass so that tests (and other front ends)
can swap one for a deterministic fake, or point a command somewhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import httpx

Status = Literal["pending", "running", "done", "failed"]
StepId = Literal["environment", "config", "module", "check", "server", "finish"]
STEP_IDS: tuple[StepId, ...] = get_args(StepId)
TITLES: dict[StepId, str] = {
    "environment": "Check the environment",
    "config": "Write hyperspot.yaml",
    "module": "Create a first module",
    "check": "Run hyperspot check",
    "server": "Start the server",
    "finish": "What to read next",
}
# The server dies with the session that started it: never skipped on resume.
NOT_RESUMABLE: frozenset[StepId] = frozenset({"server", "finish"})
PROGRESS_FILE = Path(".hyperspot") / "onboarding.json"
CONFIG_FILE = "hyperspot.yaml"
DEFAULT_MODULE = "first_module"
MIN_PYTHON = (3, 11)
READING = (
    ("README.md", "running, configuring and testing the platform; the CLI"),
    ("docs/modules.md", "writing modules: contracts, operations, lifecycle"),
    ("docs/data.md", "storage, migrations and tenant scoping"),
    ("docs/access.md", "tokens, roles, API keys, rate limits and the audit log"),
    ("docs/observability.md", "logs, traces, metrics and `hyperspot dashboard`"),
)

Emit = Callable[[str], None]


class StepError(Exception):
    """A step did not succeed; the message is shown to the user as is."""


# --- progress -----------------------------------------------------------------------------------


@dataclass
class Progress:
    statuses: dict[StepId, Status] = field(
        default_factory=lambda: dict.fromkeys(STEP_IDS, "pending")
    )
    module: str = DEFAULT_MODULE

    @staticmethod
    def path(project: Path) -> Path:
        return project / PROGRESS_FILE

    @classmethod
    def load(cls, project: Path) -> Progress:
        """The saved progress, or a fresh one when there is none (or it cannot be read)."""
        progress = cls()
        try:
            data = json.loads(cls.path(project).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return progress
        if not isinstance(data, dict):
            return progress
        saved = data.get("steps")
        if isinstance(saved, dict):
            for step in STEP_IDS:
                # A step left running was interrupted; one that lived with the last session is gone.
                if saved.get(step) in ("done", "failed") and not (
                    step in NOT_RESUMABLE and saved.get(step) == "done"
                ):
                    progress.statuses[step] = saved[step]
        if isinstance(data.get("module"), str) and data["module"]:
            progress.module = data["module"]
        return progress

    def save(self, project: Path) -> None:
        path = self.path(project)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": 1, "steps": self.statuses, "module": self.module}
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    def next_step(self) -> StepId | None:
        return next((s for s in STEP_IDS if self.statuses[s] != "done"), None)


# --- processes ----------------------------------------------------------------------------------


def hyperspot_command(*arguments: str) -> tuple[str, ...]:
    # The interpreter running the wizard: the hyperspot (and tools) of its environment.
    return (sys.executable, "-m", "hyperspot", *arguments)


async def stream(command: Sequence[str], cwd: Path, emit: Emit) -> int:
    """Run ``command``, emitting its output line by line; its exit code. No orphan on cancel."""
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        async for raw in process.stdout:
            emit(raw.decode(errors="replace").rstrip())
        return await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@dataclass
class Server:
    """The server the wizard started; the app stops it when it exits."""

    process: asyncio.subprocess.Process | None = None
    urls: dict[str, str] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, command: Sequence[str], cwd: Path, emit: Emit) -> None:
        await self.stop()
        self.process = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read(self.process, emit))

    @staticmethod
    async def _read(process: asyncio.subprocess.Process, emit: Emit) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            emit(raw.decode(errors="replace").rstrip())

    async def stop(self, grace_s: float = 10) -> None:
        process, self.process, self.urls = self.process, None, {}
        if process is not None and process.returncode is None:
            # SIGTERM first: the server finishes in-flight requests and stops its modules.
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), grace_s)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            reader, self._reader = self._reader, None
            # The pipe closes with the process: the reader ends on its own.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader, 5)


# --- context and runners ------------------------------------------------------------------------


@dataclass
class Context:
    project: Path
    module: str
    emit: Emit
    runners: Runners
    server: Server


StepRunner = Callable[[Context], Awaitable[None]]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _probe_database(engine: Literal["postgres", "mariadb"], timeout_s: float) -> str:
    from hyperspot.sandbox.databases import admin_url

    url = admin_url(engine)
    connection = url.connect(autocommit=True, timeout_s=timeout_s)
    connection.close()
    return url.masked


async def _database(engine: Literal["postgres", "mariadb"], label: str, emit: Emit) -> None:
    try:
        # The drivers block: off the event loop, and bounded even if a driver ignores its timeout.
        masked = await asyncio.wait_for(asyncio.to_thread(_probe_database, engine, 2), 4)
    except Exception as error:
        emit(f"  - {label}: not reachable ({_first_line(error)}); SQLite works without it")
    else:
        emit(f"  ✔ {label}: reachable at {masked}")


async def _redis(emit: Emit, host: str = "127.0.0.1", port: int = 6379) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1)
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.readline(), 1)
        finally:
            writer.close()
            await writer.wait_closed()
    except (OSError, TimeoutError) as error:
        emit(f"  - Redis: not reachable on {host}:{port} ({_first_line(error)}); optional")
        return
    if answer.startswith(b"+PONG") or answer.startswith(b"-NOAUTH"):
        emit(f"  ✔ Redis: answering on {host}:{port}")
    else:
        emit(f"  - Redis: {host}:{port} answered {answer[:40]!r}, not a PONG")


async def _docker(emit: Emit) -> None:
    if shutil.which("docker") is None:
        emit("  - Docker: no docker command; `hyperspot sandbox up` uses the local databases")
        return
    output: list[str] = []
    try:
        code = await asyncio.wait_for(
            stream(["docker", "info", "--format", "{{.ServerVersion}}"], Path.cwd(), output.append),
            5,
        )
    except TimeoutError:
        emit("  - Docker: `docker info` did not answer within 5 s")
        return
    if code == 0 and output:
        emit(f"  ✔ Docker: engine {output[-1]} reachable (`hyperspot sandbox up` can use it)")
    else:
        reason = next((line for line in output if line.strip()), f"exit code {code}")
        emit(f"  - Docker: no engine reachable ({reason.strip()[:120]})")


async def check_environment(context: Context) -> None:
    """Python must be recent enough; databases, Redis and Docker are only reported."""
    emit = context.emit
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info < MIN_PYTHON:
        raise StepError(f"Python {version}: hyperspot needs 3.11 or later")
    emit(f"  ✔ Python {version} ({sys.executable})")
    # Buffered per probe so that each one's lines stay together while they run at once.
    buffers: list[list[str]] = [[], [], [], []]
    await asyncio.gather(
        _database("postgres", "PostgreSQL", buffers[0].append),
        _database("mariadb", "MariaDB", buffers[1].append),
        _redis(buffers[2].append),
        _docker(buffers[3].append),
    )
    for line in (line for buffer in buffers for line in buffer):
        emit(line)
    emit("Only Python is required: the starter configuration uses embedded SQLite.")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def starter_config(port: int, secret: str) -> str:
    return (
        "# HyperSpot configuration written by `hyperspot onboard`.\n"
        "# Start the server with `hyperspot up --config hyperspot.yaml` (from this folder).\n"
        "# No database.url: embedded SQLite under data_dir.\n"
        "data_dir: .hyperspot\n"
        "server:\n"
        "  host: 127.0.0.1\n"
        f"  port: {port}\n"
        "auth:\n"
        "  mode: jwt\n"
        "  jwt:\n"
        f"    secret: {secret}   # signs `hyperspot token issue` tokens: keep it private\n"
    )


def _load(path: Path) -> tuple[str, int]:
    from hyperspot.platform.config import load_config

    server = load_config(path).settings.server
    # A wildcard address is not one to browse to.
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
    return host, server.port


async def write_config(context: Context) -> None:
    from hyperspot.platform.errors import HyperspotError

    path = context.project / CONFIG_FILE
    if path.exists():
        context.emit(f"keeping the existing {path} (it is yours: not overwritten)")
    else:
        context.project.mkdir(parents=True, exist_ok=True)
        port = free_port()
        # 0600: the file holds the signing secret.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(starter_config(port, secrets.token_hex(32)))
        context.emit(f"wrote {path}: embedded SQLite, port {port}, a generated auth.jwt.secret")
    try:
        host, port = await asyncio.to_thread(_load, path)
    except HyperspotError as error:
        raise StepError(f"{path} is not a valid configuration: {error}") from None
    context.emit(f"the server will listen on http://{host}:{port}")


async def create_module(context: Context) -> None:
    name = context.module.strip()
    folder = context.project / "modules" / name
    if name and (folder / "module.py").is_file():
        context.emit(f"module '{name}' exists already in {folder}: keeping it")
        return
    command = hyperspot_command("new", name, "--kind", "regular", "--dir", str(context.project))
    context.emit("$ hyperspot new " + " ".join(command[4:]))
    code = await stream(command, context.project, context.emit)
    if code != 0:
        raise StepError(f"`hyperspot new` refused the name {name!r}: fix it and retry (r)")


async def run_check(context: Context) -> None:
    context.emit("$ hyperspot check   (ruff format, ruff, mypy --strict, lint, tests + coverage)")
    code = await stream(context.runners.check_command, context.project, context.emit)
    if code != 0:
        raise StepError(f"hyperspot check failed (exit code {code}): see its output")


async def start_server(context: Context) -> None:
    from hyperspot.platform.errors import HyperspotError

    config = context.project / CONFIG_FILE
    try:
        host, port = await asyncio.to_thread(_load, config)
    except HyperspotError as error:
        raise StepError(f"{config}: {error}") from None
    command = [*context.runners.up_command, "--config", str(config)]
    context.emit("$ hyperspot up --config " + str(config))
    server = context.server
    await server.start(command, context.project, context.emit)
    base = f"http://{host}:{port}"
    deadline = asyncio.get_running_loop().time() + context.runners.start_timeout_s
    async with httpx.AsyncClient(timeout=1) as client:
        while True:
            if not server.running:
                code = server.process.returncode if server.process else None
                await server.stop()
                raise StepError(f"the server stopped (exit code {code}): see its output above")
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                await server.stop()
                raise StepError(f"{base}/healthz did not answer in time")
            await asyncio.sleep(0.1)
    server.urls = {"docs": f"{base}/docs", "health": f"{base}/health", "healthz": f"{base}/healthz"}
    context.emit(f"✔ the server is up: API docs {base}/docs, health {base}/health")
    context.emit("It stops when you quit the wizard.")


def _docs_root() -> Path | None:
    # The repository's docs exist next to the package in a source checkout only.
    root = Path(__file__).resolve().parents[2]
    return root if (root / "README.md").is_file() else None


async def finish(context: Context) -> None:
    root = _docs_root()
    context.emit(f"Your project: {context.project}")
    context.emit(f"  module: modules/{context.module}, its tests: tests/")
    for name, url in context.server.urls.items():
        context.emit(f"  {name}: {url}")
    context.emit("Read next:")
    for document, what in READING:
        where = root / document if root and (root / document).is_file() else document
        context.emit(f"  {where}: {what}")
    context.emit("Day to day: hyperspot new, check, up and lint (`hyperspot --help`).")


@dataclass(frozen=True)
class Runners:
    """What each step does; swap one (or a command) to make a step behave as a test needs."""

    environment: StepRunner = check_environment
    config: StepRunner = write_config
    module: StepRunner = create_module
    check: StepRunner = run_check
    server: StepRunner = start_server
    finish: StepRunner = finish
    check_command: tuple[str, ...] = hyperspot_command("check")
    up_command: tuple[str, ...] = hyperspot_command("up")
    start_timeout_s: float = 30

    def of(self, step: StepId) -> StepRunner:
        runner: StepRunner = getattr(self, step)
        return runner
