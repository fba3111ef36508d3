"""The development sandbox: one PostgreSQL and one MariaDB database that outlive a command.

``up`` starts the servers in Docker containers when a Docker engine is reachable (through
testcontainers, the optional ``sandbox`` extra), and otherwise provisions the databases on the
servers named by ``HYPERSPOT_TEST_POSTGRES_URL`` / ``HYPERSPOT_TEST_MARIADB_URL`` (by default the
local ones). What it made is recorded in ``<data_dir>/sandbox.json`` so that ``urls`` and ``down``
work from later commands; the file holds passwords and is readable by its owner only.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from hyperspot.platform.db.urls import DatabaseError, DatabaseUrl, parse_database_url
from hyperspot.platform.errors import HyperspotError
from hyperspot.sandbox.databases import (
    ADMIN_URL_VARIABLES,
    Engine,
    ProvisionedDatabase,
    admin_url,
    provision,
)

STATE_FILE = "sandbox.json"
DEFAULT_PREFIX = "hyperspot_dev"
SANDBOX_ENGINES: tuple[Engine, ...] = ("postgres", "mariadb")
# The oldest supported versions, so that the sandbox catches use of newer server features.
IMAGES: dict[Engine, str] = {"postgres": "postgres:15-alpine", "mariadb": "mariadb:10.11"}
_CONTAINER_PORTS: dict[Engine, int] = {"postgres": 5432, "mariadb": 3306}
# Database names become SQL identifiers: keep them plain and within both servers' 63/64 limits.
_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,39}")

Source = Literal["docker", "local"]


class SandboxError(HyperspotError):
    """The sandbox could not be created, read or removed; the message masks passwords."""


@dataclass(frozen=True)
class SandboxDatabase:
    engine: Engine
    url: DatabaseUrl  # what the platform connects with
    admin: DatabaseUrl  # what created it, and drops it again
    role: str = ""  # PostgreSQL: the ordinary role that owns the database
    container: str | None = None  # the Docker container's id when the server runs in one

    def as_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "url": self.url.url,
            "admin": self.admin.url,
            "role": self.role,
            "container": self.container,
        }

    def as_provisioned(self) -> ProvisionedDatabase:
        return ProvisionedDatabase(self.engine, self.url, self.admin, self.role)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxDatabase:
        return cls(
            engine=cast(Engine, data["engine"]),
            url=parse_database_url(data["url"]),
            admin=parse_database_url(data["admin"]),
            role=data.get("role", ""),
            container=data.get("container"),
        )


@dataclass(frozen=True)
class Sandbox:
    source: Source
    prefix: str
    databases: tuple[SandboxDatabase, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "prefix": self.prefix,
            "databases": [database.as_json() for database in self.databases],
        }


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def load(data_dir: Path) -> Sandbox | None:
    """The recorded sandbox, or None when there is none."""
    path = state_path(data_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Sandbox(
            source=data["source"],
            prefix=data["prefix"],
            databases=tuple(SandboxDatabase.from_json(item) for item in data["databases"]),
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, DatabaseError) as error:
        raise SandboxError(
            f"cannot read the sandbox state {path}: {error}; remove it once its databases are gone"
        ) from None


def docker_unavailable() -> str | None:
    """Why Docker containers cannot be used here, or None when a Docker engine answers."""
    try:
        from testcontainers.core.docker_client import DockerClient
    except ImportError:
        return "testcontainers is not installed; pip install 'hyperspot[sandbox]'"
    try:
        # Connecting asks the engine for its API version, so an absent daemon fails here.
        DockerClient()
    except Exception as error:  # docker.errors.DockerException, and whatever the transport raises
        return _first_line(error)
    return None


def up(
    data_dir: Path,
    *,
    prefix: str = DEFAULT_PREFIX,
    use_docker: bool = True,
    note: Callable[[str], None] = lambda _: None,
) -> tuple[Sandbox, bool]:
    """Create the sandbox, or return the recorded one; the flag says whether it is new."""
    if not _PREFIX.fullmatch(prefix):
        raise SandboxError(
            f"sandbox prefix {prefix!r}: use a lower-case letter, then up to 39 of a-z, 0-9, _"
        )
    existing = load(data_dir)
    if existing is not None:
        return existing, False
    reason = docker_unavailable() if use_docker else "--no-docker"
    if reason is not None:
        servers = " / ".join(ADMIN_URL_VARIABLES.values())
        why = f"no Docker engine reachable ({reason})" if use_docker else reason
        note(f"{why}; using the servers from {servers} (default local servers)")
    sandbox = Sandbox("docker" if reason is None else "local", prefix)
    path = state_path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # Exclusive creation: a second `up` racing this one finds the file and reports it.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load(data_dir) or sandbox, False
    os.close(descriptor)
    try:
        for engine in SANDBOX_ENGINES:
            name = f"{prefix}_{engine}"
            if sandbox.source == "docker":
                database = _create_in_container(engine, name)
            else:
                database = _create_on_server(engine, name, admin_url(engine))
            sandbox = Sandbox(sandbox.source, prefix, (*sandbox.databases, database))
            # Recorded after each database, so that `down` finds it even if this process dies.
            _write(path, sandbox)
    except HyperspotError as error:
        raise SandboxError(f"{error}{_abandon(path, sandbox)}") from None
    except Exception as error:
        raise SandboxError(
            f"cannot create the sandbox: {_first_line(error)}{_abandon(path, sandbox)}"
        ) from None
    except BaseException:  # Ctrl-C: still leave nothing behind
        _abandon(path, sandbox)
        raise
    return sandbox, True


def down(data_dir: Path) -> Sandbox | None:
    """Drop the recorded databases and stop their containers; None when there was no sandbox."""
    sandbox = load(data_dir)
    if sandbox is None:
        return None
    path = state_path(data_dir)
    failures = _remove(sandbox.databases)
    if failures:
        # Keep what could not be removed on record, so that `down` can be run again.
        _write(path, Sandbox(sandbox.source, sandbox.prefix, tuple(db for db, _ in failures)))
        raise SandboxError(
            "cannot remove "
            + "; ".join(f"the {db.engine} sandbox: {message}" for db, message in failures)
        )
    path.unlink(missing_ok=True)
    return sandbox


def _abandon(path: Path, sandbox: Sandbox) -> str:
    """Remove a half-made sandbox; what cannot be removed stays on record, and is described."""
    failures = _remove(sandbox.databases)
    if not failures:
        path.unlink(missing_ok=True)
        return ""
    _write(path, Sandbox(sandbox.source, sandbox.prefix, tuple(db for db, _ in failures)))
    return (
        "; could not remove "
        + ", ".join(f"the {db.engine} sandbox ({message})" for db, message in failures)
        + " - run `hyperspot sandbox down` later"
    )


def _write(path: Path, sandbox: Sandbox) -> None:
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(sandbox.as_json(), file, indent=2)
        file.write("\n")
    temporary.replace(path)


def _create_on_server(engine: Engine, name: str, admin: DatabaseUrl) -> SandboxDatabase:
    provisioned = provision(engine, name=name, admin=admin)
    return SandboxDatabase(engine, provisioned.url, admin, provisioned.role)


def _create_in_container(engine: Engine, name: str) -> SandboxDatabase:
    from testcontainers.community.mysql import MySqlContainer
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.core.config import testcontainers_config

    # Ryuk would remove the containers when this command exits; the sandbox must outlive it,
    # and `down` removes them instead.
    testcontainers_config.ryuk_disabled = True
    password = secrets.token_hex(16)
    container: PostgresContainer | MySqlContainer
    if engine == "postgres":
        container = PostgresContainer(
            IMAGES[engine], username="postgres", password=password, dbname="postgres"
        )
        scheme, user, admin_database = "postgresql", "postgres", "postgres"
    else:
        container = MySqlContainer(IMAGES[engine], username="root", password=password)
        scheme, user, admin_database = "mariadb", "root", "mysql"
    container.with_name(f"{name.replace('_', '-')}-{secrets.token_hex(3)}")
    try:
        container.start()
        host = container.get_container_host_ip()
        port = container.get_exposed_port(_CONTAINER_PORTS[engine])
        admin = parse_database_url(f"{scheme}://{user}:{password}@{host}:{port}/{admin_database}")
        _wait_until_answering(admin)
        database = _create_on_server(engine, name, admin)
    except BaseException:
        with suppress(Exception):
            container.stop()
        raise
    return SandboxDatabase(
        engine,
        database.url,
        admin,
        database.role,
        container=container.get_wrapped_container().id,
    )


def _wait_until_answering(admin: DatabaseUrl, timeout_s: float = 60) -> None:
    # The image's readiness signal can come a moment before the mapped port accepts clients.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.connect(autocommit=True, timeout_s=2).close()
            return
        except DatabaseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _remove(databases: tuple[SandboxDatabase, ...]) -> list[tuple[SandboxDatabase, str]]:
    """Remove each database (best effort, all of them); return those that failed, with why."""
    failures: list[tuple[SandboxDatabase, str]] = []
    for database in databases:
        try:
            if database.container is not None:
                _remove_container(database.container)
            else:
                database.as_provisioned().drop()
        except Exception as error:
            failures.append((database, _first_line(error)))
    return failures


def _remove_container(container_id: str) -> None:
    from testcontainers.core.docker_client import DockerClient

    try:
        DockerClient().client.api.remove_container(container_id, force=True, v=True)
    except Exception as error:
        if getattr(error, "status_code", None) != 404:  # already gone is what `down` wants
            raise


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
