"""Shared fixtures: a real ``hyperspot up`` in a subprocess on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import yaml

from hyperspot.sandbox.databases import ENGINES, Engine, ProvisionedDatabase, provision

FIXTURES = Path(__file__).parent / "fixtures"
LIFECYCLE_MODULES = FIXTURES / "lifecycle"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The parent's environment without HYPERSPOT_ settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERSPOT_")}
    env.update(extra or {})
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hyperspot", *args],
        capture_output=True,
        text=True,
        env=clean_env(env),
        cwd=cwd,
        timeout=60,
        check=False,
    )


class PortTakenError(AssertionError):
    """The server could not bind the port chosen for it."""


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


@dataclass
class Launcher:
    tmp_path: Path
    servers: list[Server] = field(default_factory=list)
    spawned: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def config(self, extra: dict[str, Any] | None = None) -> tuple[Path, int]:
        port = free_port()
        base = {"server": {"port": port}, "data_dir": str(self.tmp_path / "data")}
        path = self.tmp_path / f"config-{port}.yaml"
        path.write_text(yaml.safe_dump(merge(base, extra or {})), encoding="utf-8")
        return path, port

    def spawn(
        self, extra: dict[str, Any] | None = None, env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], Path, int]:
        config_path, port = self.config(extra)
        log_path = self.tmp_path / f"server-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "hyperspot", "up", "--config", str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(env),
                cwd=self.tmp_path,
            )
        self.spawned.append(process)
        return process, log_path, port

    def start(
        self, extra: dict[str, Any] | None = None, env: dict[str, str] | None = None
    ) -> Server:
        # free_port() only finds a port that was free: another process (a module process binding
        # port 0, a parallel test) may take it before the server binds. Then try another one.
        for _ in range(3):
            try:
                return self._start(extra, env)
            except PortTakenError:
                continue
        return self._start(extra, env)

    def _start(self, extra: dict[str, Any] | None, env: dict[str, str] | None) -> Server:
        process, log_path, port = self.spawn(extra, env)
        server = Server(f"http://127.0.0.1:{port}", process, log_path)
        self.servers.append(server)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.servers.remove(server)
                server.client.close()
                if "Address already in use" in server.log():
                    raise PortTakenError(server.log())
                raise AssertionError(f"server exited with {process.returncode}:\n{server.log()}")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server did not come up:\n{server.log()}")

    def close(self) -> None:
        # SIGTERM, not SIGKILL, so that the server shuts down cleanly and coverage is saved.
        for server in self.servers:
            if server.process.poll() is None:
                try:
                    server.stop(signal.SIGTERM, timeout=15)
                except subprocess.TimeoutExpired:
                    server.stop(signal.SIGKILL)
        # What a test spawned itself and did not stop (it failed half-way): never leave it running.
        for process in self.spawned:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path)
    yield launcher
    launcher.close()


def probe_config(events: Path, **overrides: dict[str, Any]) -> dict[str, Any]:
    """Config that loads the lifecycle probe modules, all recording to ``events``."""
    modules: dict[str, Any] = {
        name: {"events_file": str(events)} for name in ("alpha", "beta", "gamma")
    }
    return merge(
        {"modules_path": [str(LIFECYCLE_MODULES)], "modules": modules}, {"modules": overrides}
    )


@pytest.fixture
def hello_server(launcher: Launcher) -> Server:
    return launcher.start()


ServerFactory = Callable[..., Server]


# Databases: the backend under test comes from HYPERSPOT_TEST_DB (nox: tests(db=...)).

TEST_ENGINE: Engine = cast(Engine, os.environ.get("HYPERSPOT_TEST_DB", "sqlite"))
if TEST_ENGINE not in ENGINES:  # pragma: no cover - a typo in the variable
    raise RuntimeError(f"HYPERSPOT_TEST_DB must be one of {', '.join(ENGINES)}")


@pytest.fixture
def make_database(tmp_path: Path) -> Iterator[Callable[..., ProvisionedDatabase]]:
    """Create fresh databases on the engine under test; every one is dropped afterwards."""
    created: list[ProvisionedDatabase] = []

    def make(engine: Engine | None = None) -> ProvisionedDatabase:
        database = provision(engine or TEST_ENGINE, folder=tmp_path)
        created.append(database)
        return database

    yield make
    for database in created:
        database.drop()


@pytest.fixture
def database(make_database: Callable[..., ProvisionedDatabase]) -> ProvisionedDatabase:
    """One fresh database on the engine under test."""
    return make_database()


# One server per test module where the tests need no fresh one: each start costs seconds (more
# under coverage), and CI has 15 minutes.


@pytest.fixture(scope="module")
def module_launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    """A launcher whose servers serve every test of the module (stopped after the last one)."""
    launcher = Launcher(tmp_path_factory.mktemp("module-servers"))
    yield launcher
    launcher.close()


@pytest.fixture(scope="module")
def module_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProvisionedDatabase]:
    """One fresh database on the engine under test for the whole module, dropped afterwards."""
    database = provision(TEST_ENGINE, folder=tmp_path_factory.mktemp("module-database"))
    yield database
    database.drop()


# Credentials: every server the tests start with ``secured_config`` signs tokens with this.

TEST_SECRET = "hyperspot-test-secret-0123456789abcdef"
ROOT = "root"


def bearer(
    tenant: str,
    subject: str = "",
    roles: tuple[str, ...] = ("tenant-admin",),
    ttl_s: int = 3600,
    secret: str = TEST_SECRET,
) -> dict[str, str]:
    """Authorization header of a token the test servers accept."""
    from hyperspot.platform.auth import issue_token
    from hyperspot.platform.config import JwtSettings

    token = issue_token(
        JwtSettings(secret=secret),
        tenant=tenant,
        subject=subject or f"admin-of-{tenant}",
        roles=roles,
        ttl_s=ttl_s,
    )
    return {"Authorization": f"Bearer {token}"}


def secured_config(database_url: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Server config with the test signing secret, on the given database."""
    base = {"database": {"url": database_url}, "auth": {"jwt": {"secret": TEST_SECRET}}}
    return merge(base, extra or {})


def add_tenant(server: Server, tenant_id: str, parent: str = ROOT) -> None:
    """Create a tenant as the platform administrator (a tenant admin of the root tenant)."""
    response = server.client.post(
        "/tenants/v1/tenants",
        json={"id": tenant_id, "name": tenant_id.title(), "parent_id": parent},
        headers=bearer(ROOT),
    )
    assert response.status_code == 201, response.text


# Tests that never reach the database under test give the same result in every session: on
# PostgreSQL and MariaDB only those that do run (a test reaches it through these fixtures, or its
# module provisions databases of the engine under test itself).
DATABASE_FIXTURES = frozenset({"database", "make_database", "module_database"})


def _reaches_the_database(item: pytest.Item) -> bool:
    if DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    module = getattr(item, "module", None)
    return module is not None and (hasattr(module, "TEST_ENGINE") or hasattr(module, "provision"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TEST_ENGINE == "sqlite":
        return
    kept = [item for item in items if _reaches_the_database(item)]
    deselected = [item for item in items if not _reaches_the_database(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
