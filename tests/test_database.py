"""The platform's database as operators meet it: URLs, versions, start-up, concurrent servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Launcher, free_port, run_cli

from hyperspot.platform.config import DatabaseSettings
from hyperspot.platform.db import PlatformDatabase, ScopedSession
from hyperspot.platform.db.urls import DatabaseError, parse_database_url
from hyperspot.platform.security import SecurityContext
from hyperspot.sandbox.databases import ProvisionedDatabase

TENANT = SecurityContext(subject="s", tenant_id="A")


@pytest.fixture
def notes_db(database: ProvisionedDatabase) -> Iterator[tuple[PlatformDatabase, Any]]:
    """The platform's database on the test's own, with the notes module's table: (db, Note)."""
    from hyperspot.modules.notes.infra.storage import MIGRATIONS, define_entities
    from hyperspot.platform.db.migrations import MigrationRunner

    MigrationRunner(database.url, [("notes", MIGRATIONS)]).up()
    db = PlatformDatabase(DatabaseSettings(pool_size=2), database.url.url)
    notes = define_entities(db.schema).Note
    db.map_entities()
    try:
        yield db, notes
    finally:
        db.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("oracle://x@h/db", "unknown scheme"),
        ("postgresql://app:pw@h/db?sslmode=require", "options go in the database config section"),
        ("postgresql://app:hunter2@/db", "needs a host and a database name"),
        ("mariadb://root@h:notaport/db", "invalid port"),
        ("sqlite:///:memory:", "needs a file path"),
    ],
)
def test_bad_urls_are_explained_without_passwords(url: str, message: str) -> None:
    with pytest.raises(DatabaseError, match=message) as caught:
        parse_database_url(url)
    assert "hunter2" not in str(caught.value)


def test_url_forms() -> None:
    pg = parse_database_url("postgres://app:s3cret@db.internal/hs")
    assert (pg.backend, pg.host, pg.port, pg.user, pg.database) == (
        "postgres",
        "db.internal",
        5432,
        "app",
        "hs",
    )
    assert pg.masked == "postgres://app:********@db.internal/hs"
    maria = parse_database_url("mariadb://root@127.0.0.1/hs")
    assert (maria.backend, maria.port) == ("mysql", 3306)
    assert maria.pony_bind_arguments()["charset"] == "utf8mb4"
    relative = parse_database_url("sqlite:///data/hs.db")
    assert relative.database == str(Path("data/hs.db").resolve())
    assert parse_database_url("sqlite:////tmp/x.db").database == "/tmp/x.db"


def test_unreachable_database_stops_start_up_with_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "up",
        env={
            "HYPERSPOT_DATABASE__URL": "postgresql://app:hunter2@127.0.0.1:1/hs",
            "HYPERSPOT_DATA_DIR": str(tmp_path),
            "HYPERSPOT_SERVER__PORT": str(free_port()),
        },
    )
    assert result.returncode == 1
    assert "cannot connect to the database at postgresql://app:********@127.0.0.1:1/hs" in (
        result.stderr
    )
    assert "hunter2" not in result.stderr + result.stdout


def test_too_old_server_is_refused(database: ProvisionedDatabase) -> None:
    from hyperspot.platform.db import urls

    minimum = urls.MINIMUM_VERSIONS[database.url.backend]
    urls.MINIMUM_VERSIONS[database.url.backend] = (99,)
    connection = database.url.connect(autocommit=True)
    try:
        with pytest.raises(DatabaseError, match=r"is version .*; HyperSpot needs 99 or newer"):
            database.url.check_version(connection)
    finally:
        urls.MINIMUM_VERSIONS[database.url.backend] = minimum
        connection.close()


def test_two_servers_starting_together_migrate_once(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    config = {"database": {"url": database.url.url}}
    first = launcher.spawn(config)
    second = launcher.spawn(config)
    deadline = time.monotonic() + 60
    for process, _, port in (first, second):
        while True:
            assert process.poll() is None, "a server exited during concurrent start-up"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)
    connection = database.url.connect(autocommit=True)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT module, version FROM hyperspot_migrations ORDER BY module, version")
        assert [tuple(row) for row in cursor.fetchall()] == [
            ("access", 1),
            ("ai", 1),
            ("ai", 2),
            ("audit", 1),
            ("notes", 1),
            ("notes", 2),
            ("tenants", 1),
            ("types_registry", 1),
        ]
    finally:
        connection.close()
    for process, _, _ in (first, second):
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_migrate_cli_on_the_configured_database(
    tmp_path: Path, database: ProvisionedDatabase
) -> None:
    env = {"HYPERSPOT_DATABASE__URL": database.url.url, "HYPERSPOT_DATA_DIR": str(tmp_path)}
    plan = run_cli("migrate", "up", "--dry-run", env=env)
    assert plan.returncode == 0, plan.stderr
    assert "notes" in plan.stdout and "pinned notes" in plan.stdout
    assert "pending" in run_cli("migrate", "status", env=env).stdout
    applied = run_cli("migrate", "up", env=env)
    assert applied.returncode == 0, applied.stderr
    status = run_cli("migrate", "status", env=env).stdout
    assert "pending" not in status and "applied" in status


def test_slow_database_work_never_stalls_the_event_loop(
    notes_db: tuple[PlatformDatabase, Any],
) -> None:
    db, notes = notes_db

    def slow(session: ScopedSession) -> str:
        time.sleep(1.0)  # stands for a slow query holding its worker thread
        return "slow"

    def fast(session: ScopedSession) -> str:
        return f"fast:{session.count(notes)}"

    async def scenario() -> tuple[list[str], float]:
        finished: list[str] = []
        longest_tick = 0.0

        async def ticker() -> None:
            nonlocal longest_tick
            while True:
                before = time.monotonic()
                await asyncio.sleep(0.01)
                longest_tick = max(longest_tick, time.monotonic() - before)

        async def record(work: Callable[[ScopedSession], str]) -> None:
            finished.append(await db.run(TENANT, work))

        ticking = asyncio.create_task(ticker())
        await asyncio.gather(record(slow), record(fast))
        ticking.cancel()
        return finished, longest_tick

    finished, longest_tick = asyncio.run(scenario())
    assert finished == ["fast:0", "slow"]
    assert longest_tick < 0.5  # the loop kept running while the slow work held a thread


def test_conflicting_units_run_again_only_when_asked(
    notes_db: tuple[PlatformDatabase, Any],
) -> None:
    import sqlite3

    from hyperspot.platform.db.database import CONFLICT_ATTEMPTS

    db, notes = notes_db

    def colliding(times: int, error: Exception) -> tuple[list[int], Callable[[ScopedSession], int]]:
        attempts: list[int] = []

        def work(session: ScopedSession) -> int:
            attempts.append(1)
            if len(attempts) <= times:
                raise error
            return int(session.count(notes))

        return attempts, work

    locked = sqlite3.OperationalError("database is locked")
    attempts, work = colliding(2, locked)
    assert asyncio.run(db.run(TENANT, work, retry_conflicts=True)) == 0
    assert len(attempts) == 3
    attempts, work = colliding(1, locked)
    with pytest.raises(sqlite3.OperationalError):
        asyncio.run(db.run(TENANT, work))
    assert len(attempts) == 1
    attempts, work = colliding(CONFLICT_ATTEMPTS, locked)
    with pytest.raises(sqlite3.OperationalError):
        asyncio.run(db.run(TENANT, work, retry_conflicts=True))
    assert len(attempts) == CONFLICT_ATTEMPTS
    attempts, work = colliding(1, ValueError("a bug, not a collision"))
    with pytest.raises(ValueError, match="a bug"):
        asyncio.run(db.run(TENANT, work, retry_conflicts=True))
    assert len(attempts) == 1


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 25, 21, 44, 0, 123456),
        datetime(2026, 1, 2, 3, 4, 5),  # no fraction: SQLite stores it without one
        datetime(1999, 12, 31, 23, 59, 59, 1),
    ],
)
def test_datetimes_read_back_exactly(
    notes_db: tuple[PlatformDatabase, Any], database: ProvisionedDatabase, moment: datetime
) -> None:
    # SQLite datetimes are read by the platform's own converter (fromisoformat), not Pony's.
    from hyperspot.platform.db.database import FastSQLiteDatetimeConverter

    db, notes = notes_db
    if database.url.backend == "sqlite":
        assert (datetime, FastSQLiteDatetimeConverter) in db.schema.provider.converter_classes
    values = {"title": "t", "body": "", "priority": 1, "pinned": False}

    def write(session: ScopedSession) -> None:
        session.create(notes, id="n1", created_at=moment, updated_at=moment, **values)

    def read(session: ScopedSession) -> tuple[object, object]:
        row = session.get(notes, "n1")
        assert row is not None
        return row.created_at, row.updated_at

    asyncio.run(db.run(TENANT, write))
    assert asyncio.run(db.run(TENANT, read)) == (moment, moment)
