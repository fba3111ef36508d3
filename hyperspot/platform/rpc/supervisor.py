"""Where a module that is not in this process lives: a supervised child process or a remote host.

Both answer the same three questions, read at every call so that a restarted child on a new port
is found at once: its HTTP address, its gRPC address, and its health.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx

from hyperspot.platform.config import ClientSettings
from hyperspot.platform.errors import StartupError
from hyperspot.platform.logs import relay_line
from hyperspot.platform.module import HealthCheck

logger = logging.getLogger("hyperspot.supervisor")

# The line a module process prints on stdout once it serves: READY_PREFIX + JSON addresses.
READY_PREFIX = "HYPERSPOT-MODULE-READY "
# A child that stayed up this long is healthy again: its next crash restarts without delay.
STABLE_AFTER_S = 30.0
FIRST_RESTART_DELAY_S = 0.5
HEALTH_TIMEOUT_S = 2.0
# The longest line read from a module process's output; a longer one is cut, never blocking it.
LINE_LIMIT = 1 << 20


class ModuleLocation(Protocol):
    module: str

    def http_address(self) -> str | None: ...

    def grpc_address(self) -> str | None: ...

    async def health(self) -> HealthCheck: ...

    async def start(self) -> None: ...

    async def stop(self, grace_s: float) -> None: ...


class ModuleProcess:
    """``hyperspot run-module NAME`` in a child process: started, watched, restarted, stopped."""

    def __init__(
        self,
        module: str,
        command: list[str],
        env: Mapping[str, str],
        *,
        settings: ClientSettings,
        parent_url: Callable[[], str],
        client: httpx.AsyncClient,
    ) -> None:
        self.module = module
        self.parent_url = parent_url
        self.client = client
        self.command = command
        self.env = dict(env)
        self.settings = settings
        self.process: asyncio.subprocess.Process | None = None
        self._addresses: dict[str, Any] = {}
        self._problem = "starting"
        self._stopping = False
        self._watcher: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        self._drain: asyncio.Task[None] | None = None
        self._logs: asyncio.Task[None] | None = None
        self.restarts = 0

    def http_address(self) -> str | None:
        port = self._addresses.get("http")
        return None if port is None else f"http://127.0.0.1:{port}"

    def grpc_address(self) -> str | None:
        port = self._addresses.get("grpc")
        return None if port is None else f"127.0.0.1:{port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    async def health(self) -> HealthCheck:
        address = self.http_address()
        if address is None:
            return HealthCheck(False, self._problem)
        where = f"process {self.pid} at {address}"
        # Alive is not enough: a process that hangs must show too.
        try:
            answer = await self.client.get(f"{address}/healthz", timeout=HEALTH_TIMEOUT_S)
        except httpx.HTTPError as error:
            return HealthCheck(False, f"{where} does not answer: {error!r}")
        if answer.status_code != 200:
            return HealthCheck(False, f"{where} answered {answer.status_code}")
        return HealthCheck(True, f"{where}, restarts {self.restarts}")

    async def start(self) -> None:
        await self._spawn()
        loop = asyncio.get_running_loop()
        self._watcher = loop.create_task(self._watch(), name=f"supervisor:{self.module}")
        self._prober = loop.create_task(self._probe(), name=f"liveness:{self.module}")

    async def _spawn(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            "--parent-url",
            self.parent_url(),
            "--parent-pid",
            str(os.getpid()),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            env=self.env,
            limit=LINE_LIMIT,
        )
        # From its first line: what it logs while starting matters most when it fails to.
        self._logs = asyncio.get_running_loop().create_task(self._relay_logs(self.process))
        try:
            addresses = await asyncio.wait_for(
                self._read_ready(self.process), self.settings.start_timeout_s
            )
        except TimeoutError:
            await self._kill()
            raise StartupError(
                f"module '{self.module}' (process {self.process.pid}) was not ready within "
                f"{self.settings.start_timeout_s} s (clients.start_timeout_s)"
            ) from None
        if addresses is None:
            code = await self.process.wait()
            raise StartupError(
                f"module '{self.module}' process exited ({describe_exit(code)}) before it was "
                "ready; its log lines above say why"
            )
        self._addresses = addresses
        self._drain = asyncio.get_running_loop().create_task(self._discard_output(self.process))
        logger.info(
            "module '%s' runs in process %s at %s", self.module, self.pid, self.http_address()
        )

    @staticmethod
    async def _read_ready(process: asyncio.subprocess.Process) -> dict[str, Any] | None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            text = line.decode(errors="replace").strip()
            if text.startswith(READY_PREFIX):
                found: dict[str, Any] = json.loads(text[len(READY_PREFIX) :])
                return found
            if text:
                # Module code that prints: keep it visible, as a log line of ours.
                logger.info("module process %s printed: %s", process.pid, text)
        return None

    @staticmethod
    async def _discard_output(process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            text = line.decode(errors="replace").rstrip()
            logger.info("module process %s printed: %s", process.pid, text)

    async def _relay_logs(self, process: asyncio.subprocess.Process) -> None:
        """The process's log lines (JSON on its stderr), logged here: console, file, traces."""
        assert process.stderr is not None
        label = f"{self.module}:{process.pid}"
        while True:
            try:
                line = await process.stderr.readline()
            except ValueError:  # longer than LINE_LIMIT: asyncio dropped it, the next is whole
                relay_line(f"(a line longer than {LINE_LIMIT} bytes was dropped)", label)
                continue
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            if text:
                relay_line(text, label)

    async def _watch(self) -> None:
        delay = FIRST_RESTART_DELAY_S
        while not self._stopping:
            assert self.process is not None
            started = time.monotonic()
            code = await self.process.wait()
            if self._stopping:
                return
            self._addresses = {}
            if time.monotonic() - started > STABLE_AFTER_S:
                delay = FIRST_RESTART_DELAY_S
            self._problem = (
                f"process {self.process.pid} exited ({describe_exit(code)}); restarting in "
                f"{delay:.1f} s"
            )
            logger.error("module '%s': %s", self.module, self._problem)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.restart_backoff_max_s)
            try:
                await self._spawn()
            except StartupError as error:
                self._problem = str(error)
                logger.error("module '%s': restart failed: %s", self.module, error)
                continue
            self.restarts += 1

    async def _probe(self) -> None:
        """Kill a process that no longer answers /healthz, so that ``_watch`` restarts it: a
        process can be alive and of no use (a blocked event loop, a deadlock)."""
        interval = self.settings.liveness_interval_s
        timeout = min(HEALTH_TIMEOUT_S, interval)
        misses = 0
        while not self._stopping:
            await asyncio.sleep(interval)
            address, process = self.http_address(), self.process
            if address is None or process is None or process.returncode is not None:
                misses = 0  # starting, or exited: the watcher's business
                continue
            try:
                await self.client.get(f"{address}/healthz", timeout=timeout)
                misses = 0
            except httpx.HTTPError:
                misses += 1
            if misses >= self.settings.liveness_failures:
                misses = 0
                logger.error(
                    "module '%s': process %s left /healthz unanswered %d times in a row "
                    "(every %g s, clients.liveness_*): killing it to restart it",
                    self.module,
                    process.pid,
                    self.settings.liveness_failures,
                    interval,
                )
                await self._kill()

    async def stop(self, grace_s: float) -> None:
        self._stopping = True
        for task in (self._watcher, self._prober):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        process = self.process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace_s + 5)
            except TimeoutError:
                logger.error("module '%s' did not stop in time: killing it", self.module)
                await self._kill()
        for reader in (self._drain, self._logs):
            if reader is not None:
                reader.cancel()
        self._addresses = {}
        self._problem = "stopped"

    async def _kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


class RemoteModule:
    """A module served by ``hyperspot run-module`` on another host."""

    def __init__(
        self,
        module: str,
        address: str,
        grpc_address: str | None,
        settings: ClientSettings,
        client: httpx.AsyncClient,
    ) -> None:
        self.module = module
        self._address = address.rstrip("/")
        self._grpc_address = grpc_address
        self.settings = settings
        self.client = client

    def http_address(self) -> str | None:
        return self._address

    def grpc_address(self) -> str | None:
        return self._grpc_address

    async def health(self) -> HealthCheck:
        try:
            response = await self.client.get(f"{self._address}/healthz", timeout=HEALTH_TIMEOUT_S)
        except httpx.HTTPError as error:
            return HealthCheck(False, f"{self._address} does not answer: {error!r}")
        healthy = response.status_code == 200
        return HealthCheck(healthy, f"{self._address} answered {response.status_code}")

    async def start(self) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        while True:
            check = await self.health()
            if check.healthy:
                return
            if time.monotonic() > deadline:
                raise StartupError(f"remote module '{self.module}': {check.detail}")
            await asyncio.sleep(0.5)

    async def stop(self, grace_s: float) -> None:
        """Another host's process: not ours to stop."""


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
