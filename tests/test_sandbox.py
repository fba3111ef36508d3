"""`hyperspot sandbox up|urls|down` against the real database servers, through the CLI.

DOCKER_HOST points nowhere so that every run takes the local-server path, whatever the machine
has; each test uses its own name prefix so that parallel runs sharing a server do not collide.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from conftest import run_cli

from hyperspot.platform.db.urls import DatabaseError, DatabaseUrl, parse_database_url
from hyperspot.sandbox import environment
from hyperspot.sandbox.databases import ADMIN_URL_VARIABLES, ProvisionedDatabase, admin_url

NO_DOCKER = "unix:///nonexistent/docker.sock"
ENV_PREFIX = "HYPERSPOT_DATABASE__URL="


def sandbox_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # The servers under test come from the same variables as the rest of the suite.
    env = {name: os.environ[name] for name in ADMIN_URL_VARIABLES.values() if name in os.environ}
    env |= {"HYPERSPOT_DATA_DIR": str(tmp_path / "data"), "DOCKER_HOST": NO_DOCKER}
    return env | extra


def sandbox(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli("sandbox", *args, env=sandbox_env(tmp_path, **extra), cwd=tmp_path)


def printed_urls(stdout: str) -> list[DatabaseUrl]:
    return [
        parse_database_url(line.strip().removeprefix(ENV_PREFIX))
        for line in stdout.splitlines()
        if line.strip().startswith(ENV_PREFIX)
    ]


def select_one(url: DatabaseUrl) -> object:
    connection = url.connect(timeout_s=5)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]
    finally:
        connection.close()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def prefix() -> str:
    return f"hs_sbx_{secrets.token_hex(4)}"


def test_up_urls_down_on_the_local_servers(tmp_path: Path, prefix: str) -> None:
    up = sandbox(tmp_path, "up", "--prefix", prefix)
    assert up.returncode == 0, up.stderr
    assert "no Docker engine reachable" in up.stderr
    assert "HYPERSPOT_TEST_POSTGRES_URL / HYPERSPOT_TEST_MARIADB_URL" in up.stderr
    assert len(up.stderr.strip().splitlines()) == 1  # the fallback is said once, in one line
    record = tmp_path / "data" / "sandbox.json"
    assert record.stat().st_mode & 0o077 == 0  # it holds passwords

    shown = sandbox(tmp_path, "urls", "--show-secrets")
    assert shown.returncode == 0, shown.stderr
    urls = printed_urls(shown.stdout)
    assert [url.backend for url in urls] == ["postgres", "mysql"]
    assert [url.database for url in urls] == [f"{prefix}_postgres", f"{prefix}_mariadb"]
    for url in urls:
        assert select_one(url) == 1
    postgres = urls[0]
    # The platform must not connect as a superuser, or row-level security would not apply.
    assert postgres.user == f"{prefix}_postgres"
    assert postgres.password

    masked = sandbox(tmp_path, "urls")
    assert masked.returncode == 0, masked.stderr
    assert postgres.password not in masked.stdout + up.stdout
    assert "********" in masked.stdout
    assert [url.database for url in printed_urls(masked.stdout)] == [u.database for u in urls]

    again = sandbox(tmp_path, "up", "--prefix", prefix)
    assert again.returncode == 0, again.stderr
    assert "already up" in again.stdout
    assert again.stderr == ""  # nothing new was attempted, so no fallback note either
    assert printed_urls(sandbox(tmp_path, "urls", "--show-secrets").stdout) == urls

    down = sandbox(tmp_path, "down")
    assert down.returncode == 0, down.stderr
    assert f"{prefix}_postgres" in down.stdout
    assert not record.exists()
    for url in urls:
        with pytest.raises(DatabaseError):
            select_one(url)
    assert not _leftovers(prefix)

    gone = sandbox(tmp_path, "urls")
    assert gone.returncode == 1
    assert error_lines(gone.stderr) == [gone.stderr.strip()]
    assert "no sandbox recorded" in gone.stderr
    assert "nothing to remove" in sandbox(tmp_path, "down").stdout


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_an_unreachable_server_fails_in_one_line_and_leaves_nothing(
    tmp_path: Path, prefix: str, engine: str
) -> None:
    variable = ADMIN_URL_VARIABLES["postgres" if engine == "postgres" else "mariadb"]
    scheme = "postgresql" if engine == "postgres" else "mariadb"
    # MariaDB comes second: its failure must also undo the PostgreSQL database already made.
    result = sandbox(
        tmp_path, "up", "--prefix", prefix, **{variable: f"{scheme}://admin:pw-x@127.0.0.1:1/db"}
    )
    assert result.returncode == 1
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert "127.0.0.1:1" in errors[0]
    assert "pw-x" not in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "sandbox.json").exists()
    assert not _leftovers(prefix)


def test_no_docker_option_and_bad_prefix(tmp_path: Path, prefix: str) -> None:
    bad = sandbox(tmp_path, "up", "--prefix", "Robert'); DROP")
    assert bad.returncode == 1
    assert error_lines(bad.stderr) == [bad.stderr.strip()]
    assert "prefix" in bad.stderr

    up = sandbox(tmp_path, "up", "--prefix", prefix, "--no-docker")
    assert up.returncode == 0, up.stderr
    assert up.stderr.startswith("--no-docker; using the servers")
    other = sandbox(tmp_path, "up", "--prefix", "hs_sbx_other")
    assert "already up" in other.stdout
    assert "run `hyperspot sandbox down` first" in other.stdout
    assert sandbox(tmp_path, "down").returncode == 0
    assert not _leftovers(prefix)


def test_down_keeps_what_it_cannot_remove_on_record(tmp_path: Path) -> None:
    # A sandbox whose container's Docker engine has gone away: `down` says so and can be rerun.
    record = tmp_path / "data" / "sandbox.json"
    record.parent.mkdir()
    entry = {
        "engine": "postgres",
        "url": "postgresql://u:secret-pw@127.0.0.1:1/sbx",
        "admin": "postgresql://postgres:secret-pw@127.0.0.1:1/postgres",
        "role": "u",
        "container": "0123456789ab",
    }
    record.write_text(json.dumps({"source": "docker", "prefix": "sbx", "databases": [entry]}))
    result = sandbox(tmp_path, "down")
    assert result.returncode == 1
    assert error_lines(result.stderr) == [result.stderr.strip()]
    assert "cannot remove the postgres sandbox" in result.stderr
    assert json.loads(record.read_text())["databases"] == [entry]


def test_an_unreadable_record_is_reported(tmp_path: Path) -> None:
    record = tmp_path / "data" / "sandbox.json"
    record.parent.mkdir()
    record.write_text("{not json")
    for command in ("urls", "down", "up"):
        result = sandbox(tmp_path, command)
        assert result.returncode == 1
        assert error_lines(result.stderr) == [result.stderr.strip()]
        assert "cannot read the sandbox state" in result.stderr
    assert record.read_text() == "{not json"  # left for a person to look at


def _leftovers(prefix: str) -> list[str]:
    """Databases and roles named with ``prefix`` that are still on the servers."""
    found: list[str] = []
    postgres = admin_url("postgres").connect(autocommit=True)
    try:
        cursor = postgres.cursor()
        cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{prefix}%",))
        found += [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"{prefix}%",))
        found += [f"role {row[0]}" for row in cursor.fetchall()]
    finally:
        postgres.close()
    mariadb = admin_url("mariadb").connect(autocommit=True)
    try:
        cursor = mariadb.cursor()
        cursor.execute("SHOW DATABASES LIKE %s", (f"{prefix}%",))
        found += [row[0] for row in cursor.fetchall()]
    finally:
        mariadb.close()
    return found


# The Docker path, in-process: the containers are stand-ins that "run" on the local PostgreSQL
# server (which ignores passwords for local admin connections), so the orchestration around
# testcontainers is exercised for real: readiness, provisioning, the record, the clean-up.


class FakeDocker:
    removed: ClassVar[list[str]] = []

    def __init__(self) -> None:
        self.client = self.api = self

    def remove_container(self, container_id: str, *, force: bool, v: bool) -> None:
        assert force and v
        FakeDocker.removed.append(container_id)


class FakeContainer:
    def __init__(self, image: str, **options: str) -> None:
        self.image, self.options = image, options
        self.name = ""
        self.stopped = False
        containers.append(self)

    def with_name(self, name: str) -> FakeContainer:
        self.name = name
        return self

    def start(self) -> FakeContainer:
        if self.image.startswith("mariadb"):
            raise RuntimeError("pull access denied for mariadb\nmore detail")
        return self

    def get_container_host_ip(self) -> str:
        return admin_url("postgres").host

    def get_exposed_port(self, port: int) -> int:
        assert port == 5432
        return admin_url("postgres").port

    def get_wrapped_container(self) -> SimpleNamespace:
        return SimpleNamespace(id=f"id-{self.name}")

    def stop(self) -> None:
        self.stopped = True


containers: list[FakeContainer] = []


@pytest.fixture
def fake_docker(monkeypatch: pytest.MonkeyPatch) -> Any:
    config = pytest.importorskip("testcontainers.core.config").testcontainers_config
    monkeypatch.setattr(config, "ryuk_disabled", False)
    monkeypatch.setattr("testcontainers.core.docker_client.DockerClient", FakeDocker)
    monkeypatch.setattr("testcontainers.community.postgres.PostgresContainer", FakeContainer)
    monkeypatch.setattr("testcontainers.community.mysql.MySqlContainer", FakeContainer)
    FakeDocker.removed.clear()
    containers.clear()
    return config


def test_docker_containers_are_recorded_and_removed(
    tmp_path: Path, prefix: str, fake_docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(environment, "SANDBOX_ENGINES", ("postgres",))
    notes: list[str] = []
    made, created = environment.up(tmp_path, prefix=prefix, note=notes.append)
    assert created
    assert notes == []  # Docker answered: no fallback
    assert fake_docker.ryuk_disabled  # else the containers would die with this command
    assert made.source == "docker"
    (database,) = made.databases
    assert database.container == f"id-{containers[0].name}"
    assert containers[0].image == environment.IMAGES["postgres"]
    try:
        assert select_one(database.url) == 1
        assert database.url.user == f"{prefix}_postgres"  # an ordinary role, as on local servers
        assert environment.load(tmp_path) == made
        assert environment.down(tmp_path) == made
        assert FakeDocker.removed == [database.container]
        assert environment.load(tmp_path) is None
    finally:
        database.as_provisioned().drop()  # the stand-in container does not take it along
    assert not _leftovers(prefix)


def test_a_container_that_fails_undoes_the_sandbox(
    tmp_path: Path, prefix: str, fake_docker: Any
) -> None:
    with pytest.raises(environment.SandboxError) as raised:
        environment.up(tmp_path, prefix=prefix)
    admin = admin_url("postgres")
    name = f"{prefix}_postgres"
    ProvisionedDatabase("postgres", admin.with_database(name), admin, role=name).drop()
    assert str(raised.value) == "cannot create the sandbox: pull access denied for mariadb"
    postgres, mariadb = containers
    assert FakeDocker.removed == [f"id-{postgres.name}"]
    assert mariadb.stopped
    assert not (tmp_path / "sandbox.json").exists()
