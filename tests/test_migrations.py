"""The migration runner and `hyperspot migrate`, on the engine named by HYPERSPOT_TEST_DB."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FIXTURES, TEST_ENGINE
from pony.orm import Database, Optional, PrimaryKey, Required, commit, db_session, select
from typer.testing import CliRunner

from hyperspot.cli.migrate import migrate_app
from hyperspot.platform.db.migrations import (
    PG_LOCK_KEY,
    MigrationError,
    MigrationRunner,
    mariadb_lock_name,
    render_step,
)
from hyperspot.platform.db.schema import (
    AddColumn,
    Column,
    ColumnType,
    CreateIndex,
    CreateTable,
    DropColumn,
    DropIndex,
    DropTable,
    Migration,
)
from hyperspot.platform.db.urls import Backend, DatabaseUrl
from hyperspot.sandbox.databases import ProvisionedDatabase

MIGRATION_FIXTURES = FIXTURES / "migrations"
MakeDatabase = Callable[..., ProvisionedDatabase]
INT = ColumnType.INTEGER

NOTES_V1 = Migration(
    1,
    "create notes",
    (
        CreateTable(
            "notes",
            (
                Column("id", ColumnType.INTEGER, primary_key=True),
                Column("tenant_id", ColumnType.STRING, 64),
                Column("title", ColumnType.STRING, 200),
            ),
            tenant_scoped=True,
        ),
    ),
)
NOTES_V2 = Migration(
    2,
    "pinned notes",
    (
        AddColumn("notes", Column("pinned", ColumnType.BOOLEAN, default=False)),
        AddColumn("notes", Column("body", ColumnType.TEXT, default="it's \\ empty")),
        CreateIndex("notes", "ix_notes_pinned", ("tenant_id", "pinned")),
    ),
)
TAGS_V1 = Migration(
    1,
    "create tags",
    (
        CreateTable(
            "tags",
            (
                Column("id", ColumnType.INTEGER, primary_key=True, autoincrement=True),
                Column("label", ColumnType.STRING, 40),
            ),
            tenant_scoped=False,
        ),
        CreateIndex("tags", "ix_tags_label", ("label",), unique=True),
    ),
)


# --- helpers -----------------------------------------------------------------------------------


def run_sql(url: DatabaseUrl, *statements: str) -> list[tuple[Any, ...]]:
    """Run statements in one transaction as the system (past RLS); rows of the last one."""
    connection = url.connect()
    try:
        cursor = connection.cursor()
        if url.backend == "sqlite":
            cursor.execute("BEGIN")
        elif url.backend == "postgres":
            cursor.execute("SELECT set_config('hyperspot.system', 'on', true)")
        rows: list[tuple[Any, ...]] = []
        for statement in statements:
            cursor.execute(statement)
            rows = [tuple(row) for row in cursor.fetchall()] if cursor.description else []
        connection.commit()
        return rows
    finally:
        connection.close()


def columns(url: DatabaseUrl, table: str) -> list[str]:
    if url.backend == "sqlite":
        return [row[1] for row in run_sql(url, f"PRAGMA table_info({table})")]
    schema = "current_schema()" if url.backend == "postgres" else "DATABASE()"
    return [
        str(row[0])
        for row in run_sql(
            url,
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_schema = {schema} AND table_name = '{table}' ORDER BY ordinal_position",
        )
    ]


def indexes(url: DatabaseUrl, table: str) -> set[str]:
    if url.backend == "sqlite":
        return {row[1] for row in run_sql(url, f"PRAGMA index_list({table})")}
    if url.backend == "postgres":
        sql = f"SELECT indexname FROM pg_indexes WHERE tablename = '{table}'"
    else:
        sql = (
            "SELECT index_name FROM information_schema.statistics "
            f"WHERE table_schema = DATABASE() AND table_name = '{table}'"
        )
    return {str(row[0]) for row in run_sql(url, sql)}


def has_table(url: DatabaseUrl, table: str) -> bool:
    return bool(columns(url, table))


def history(url: DatabaseUrl) -> list[tuple[str, int]]:
    rows = run_sql(url, "SELECT module, version FROM hyperspot_migrations ORDER BY module, version")
    return [(str(module), int(version)) for module, version in rows]


def states(runner: MigrationRunner) -> list[tuple[str, int, str]]:
    return [(row.module, row.version, row.state) for row in runner.status()]


def runner_for(
    url: DatabaseUrl, plans: Sequence[tuple[str, Sequence[Migration]]], **options: Any
) -> MigrationRunner:
    return MigrationRunner(url, plans, **options)


# --- applying ----------------------------------------------------------------------------------


def test_up_from_empty_applies_everything_once(
    database: ProvisionedDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    runner = runner_for(database.url, [("notes", [NOTES_V1, NOTES_V2]), ("tags", [TAGS_V1])])
    assert states(runner) == [
        ("notes", 1, "pending"),
        ("notes", 2, "pending"),
        ("tags", 1, "pending"),
    ]
    assert not has_table(database.url, "hyperspot_migrations")  # status only reads

    with caplog.at_level(logging.INFO, logger="hyperspot.migrations"):
        applied = runner.up()
    assert [(m.module, m.version) for m in applied] == [("notes", 1), ("notes", 2), ("tags", 1)]
    assert "applied migration notes v2 'pinned notes'" in caplog.text

    status = runner.status()
    assert [row.state for row in status] == ["applied"] * 3
    assert all(isinstance(row.applied_at, datetime) for row in status)
    assert columns(database.url, "notes") == ["id", "tenant_id", "title", "pinned", "body"]
    assert "ix_tags_label" in indexes(database.url, "tags")
    assert runner.up() == []  # nothing left
    assert history(database.url) == [("notes", 1), ("notes", 2), ("tags", 1)]


def test_up_from_version_1_keeps_rows_and_fills_defaults(database: ProvisionedDatabase) -> None:
    url = database.url
    runner_for(url, [("notes", [NOTES_V1])]).up()
    run_sql(
        url,
        "INSERT INTO notes (id, tenant_id, title) VALUES (1, 'A', 'first')",
        "INSERT INTO notes (id, tenant_id, title) VALUES (2, 'B', 'second')",
    )
    runner = runner_for(url, [("notes", [NOTES_V1, NOTES_V2])])
    assert states(runner) == [("notes", 1, "applied"), ("notes", 2, "pending")]

    assert [(m.module, m.version) for m in runner.up()] == [("notes", 2)]

    rows = run_sql(url, "SELECT id, title, pinned, body FROM notes ORDER BY id")
    assert [(r[0], r[1], bool(r[2]), r[3]) for r in rows] == [
        (1, "first", False, "it's \\ empty"),
        (2, "second", False, "it's \\ empty"),
    ]
    assert "ix_notes_pinned" in indexes(url, "notes")
    assert states(runner) == [("notes", 1, "applied"), ("notes", 2, "applied")]


def test_drop_steps(database: ProvisionedDatabase) -> None:
    drops = Migration(
        3,
        "drop things",
        (
            DropIndex("notes", "ix_notes_pinned"),
            DropColumn("notes", "pinned"),
            DropTable("tags_old"),
        ),
    )
    tags_old = Migration(
        1,
        "tags_old",
        (
            CreateTable(
                "tags_old",
                (Column("id", ColumnType.BIGINT, primary_key=True),),
                tenant_scoped=False,
            ),
        ),
    )
    runner = runner_for(
        database.url, [("tags", [tags_old]), ("notes", [NOTES_V1, NOTES_V2, drops])]
    )
    runner.up()
    assert "pinned" not in columns(database.url, "notes")
    assert "ix_notes_pinned" not in indexes(database.url, "notes")
    assert not has_table(database.url, "tags_old")


def test_pony_entities_bind_to_migrated_tables(database: ProvisionedDatabase) -> None:
    """The type mapping matches Pony's: entities bind with check_tables and round-trip values."""
    everything = Migration(
        1,
        "every type",
        (
            CreateTable(
                "things",
                (
                    Column("id", ColumnType.INTEGER, primary_key=True, autoincrement=True),
                    Column("code", ColumnType.STRING, 20),
                    Column("notes", ColumnType.TEXT, nullable=True),
                    Column("count", ColumnType.INTEGER, default=3),
                    Column("big", ColumnType.BIGINT),
                    Column("flag", ColumnType.BOOLEAN, default=True),
                    Column("ratio", ColumnType.FLOAT),
                    Column("created_at", ColumnType.DATETIME, default="2026-01-02T03:04:05"),
                ),
                tenant_scoped=False,
            ),
        ),
    )
    runner_for(database.url, [("things", [everything])]).up()

    db = Database()
    # type() rather than a class statement: Pony is untyped, and mypy refuses subclassing Any.
    thing: Any = type(
        "Thing",
        (db.Entity,),
        {
            "_table_": "things",
            "id": PrimaryKey(int, auto=True),
            "code": Required(str, 20),
            "notes": Optional(str, nullable=True),
            "count": Required(int),
            "big": Required(int, size=64),
            "flag": Required(bool),
            "ratio": Required(float),
            "created_at": Required(datetime, precision=6),
        },
    )
    db.bind(**database.url.pony_bind_arguments())
    db.generate_mapping(create_tables=False, check_tables=True)
    moment = datetime(2026, 5, 6, 7, 8, 9, 123456)
    try:
        with db_session:
            thing(
                code="a", count=1, big=2**40, flag=False, ratio=0.25, created_at=moment, notes="x"
            )
            commit()
        with db_session:
            (row,) = select(t for t in thing)[:]
            assert (row.id, row.code, row.big, row.flag, row.ratio, row.created_at) == (
                1,
                "a",
                2**40,
                False,
                0.25,
                moment,
            )
    finally:
        db.disconnect()


def test_dry_run_changes_nothing(database: ProvisionedDatabase) -> None:
    runner = runner_for(database.url, [("notes", [NOTES_V1, NOTES_V2])])
    plan = runner.plan()
    assert [(m.module, m.version) for m in plan] == [("notes", 1), ("notes", 2)]
    assert plan[0].statements[0].startswith("CREATE TABLE")
    assert any("ix_notes_pinned" in statement for statement in plan[1].statements)
    if database.url.backend == "postgres":
        assert "CREATE POLICY tenant_isolation" in plan[0].statements[-1]
    assert not has_table(database.url, "notes")
    assert not has_table(database.url, "hyperspot_migrations")


# --- concurrency and locking -------------------------------------------------------------------


def test_two_processes_apply_each_migration_exactly_once(database: ProvisionedDatabase) -> None:
    script = MIGRATION_FIXTURES / "concurrent_up.py"
    env = {**os.environ, "MIGRATE_TEST_URL": database.url.url}
    start = str(time.time() + 1.5)  # both have imported everything by then
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    results = [json.loads(stdout) for stdout, _ in outputs]
    first, second = ({tuple(item) for item in result["applied"]} for result in results)
    planned = {tuple(item) for item in results[0]["planned"]}
    assert not first & second  # nothing applied by both
    assert first | second == planned
    assert set(history(database.url)) == planned
    assert len(history(database.url)) == len(planned)


def test_waits_for_the_lock_then_times_out(database: ProvisionedDatabase) -> None:
    url = database.url
    holder = url.connect(autocommit=True)
    try:
        cursor = holder.cursor()
        if url.backend == "postgres":
            cursor.execute("SELECT pg_advisory_lock(%s)", (PG_LOCK_KEY,))
        elif url.backend == "mysql":
            cursor.execute("SELECT GET_LOCK(%s, 5)", (mariadb_lock_name(url.database),))
        else:
            cursor.execute("BEGIN IMMEDIATE")
        runner = runner_for(url, [("notes", [NOTES_V1])], lock_timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(
            MigrationError, match=r"timed out after 0\.3 s waiting for the migration"
        ):
            runner.up()
        assert time.monotonic() - started < 5
    finally:
        holder.close()
    assert [(m.module, m.version) for m in runner.up()] == [("notes", 1)]


# --- failures ----------------------------------------------------------------------------------


def test_failed_migration_leaves_no_history_and_is_retried(database: ProvisionedDatabase) -> None:
    url = database.url
    broken = Migration(
        3,
        "rank notes",
        (
            AddColumn("notes", Column("rank", ColumnType.INTEGER, default=0)),
            CreateIndex("notes", "ix_notes_rank", ("tenant_id", "no_such_column")),
        ),
    )
    runner_for(url, [("notes", [NOTES_V1, NOTES_V2])]).up()

    with pytest.raises(MigrationError) as failure:
        runner_for(url, [("notes", [NOTES_V1, NOTES_V2, broken])]).up()
    message = str(failure.value)
    backend_name = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mysql": "MariaDB"}[url.backend]
    assert "\n" not in message
    assert message.startswith("migration notes v3 'rank notes' failed at statement 2 of 2 on ")
    assert backend_name in message
    assert "no_such_column" in message  # the driver's own error
    assert "no history row was written" in message
    assert history(url) == [("notes", 1), ("notes", 2)]
    if url.backend == "mysql":
        # DDL committed implicitly: the first step stayed, and the message says what happens next.
        assert "not transactional" in message
        assert "retried from its first step" in message
        assert "rank" in columns(url, "notes")
    else:
        assert "rolled back" in message
        assert "rank" not in columns(url, "notes")

    fixed = Migration(
        3,
        "rank notes",
        (
            AddColumn("notes", Column("rank", ColumnType.INTEGER, default=0)),
            CreateIndex("notes", "ix_notes_rank", ("tenant_id", "rank")),
        ),
    )
    runner = runner_for(url, [("notes", [NOTES_V1, NOTES_V2, fixed])])
    assert [(m.module, m.version) for m in runner.up()] == [("notes", 3)]
    assert columns(url, "notes")[-1] == "rank"
    assert "ix_notes_rank" in indexes(url, "notes")
    assert history(url) == [("notes", 1), ("notes", 2), ("notes", 3)]


def test_status_flags_changed_and_unknown_migrations(database: ProvisionedDatabase) -> None:
    runner_for(database.url, [("notes", [NOTES_V1, NOTES_V2])]).up()
    edited = Migration(
        2, "pinned notes", (AddColumn("notes", Column("pinned", ColumnType.BOOLEAN, default=True)),)
    )
    runner = runner_for(database.url, [("notes", [NOTES_V1, edited])])
    assert states(runner) == [("notes", 1, "applied"), ("notes", 2, "changed")]
    assert runner.plan() == []
    shrunk = runner_for(database.url, [("notes", [NOTES_V1])])
    assert states(shrunk) == [("notes", 1, "applied"), ("notes", 2, "unknown")]


@pytest.mark.parametrize(
    ("plans", "expected"),
    [
        (
            [
                (
                    "m",
                    [
                        Migration(
                            1,
                            "a",
                            (CreateTable("t", (Column("id", INT, primary_key=True),), True),),
                        )
                    ],
                )
            ],
            "migration m v1 'a' is invalid: step 1 (CreateTable): tenant-scoped table 't' needs "
            "a 'tenant_id' column",
        ),
        (
            [("m", [Migration(1, "a", (AddColumn("t", Column("c", ColumnType.INTEGER)),))])],
            "a NOT NULL column added later needs a default",
        ),
        (
            [("m", [Migration(1, "a", (AddColumn("t", Column("c", ColumnType.STRING)),))])],
            "a STRING column needs a length",
        ),
        (
            [
                (
                    "m",
                    [
                        Migration(
                            1, "a", (AddColumn("t", Column("c", ColumnType.FLOAT, default="x")),)
                        )
                    ],
                )
            ],
            "default 'x' does not fit a float column",
        ),
        (
            [("m", [Migration(1, "a", (DropTable("Bad Name"),))])],
            "table name 'Bad Name' is invalid",
        ),
        (
            [("m", [Migration(2, "a", (DropTable("t"),))])],
            "versions must be 1, 2, 3, ... (got [2])",
        ),
        ([("m", []), ("m", [])], "module 'm' appears twice"),
    ],
)
def test_invalid_definitions_are_refused_before_touching_the_database(
    plans: list[tuple[str, list[Migration]]], expected: str
) -> None:
    url = DatabaseUrl("postgres", "postgresql://nobody@127.0.0.1:1/none", "127.0.0.1", 1)
    with pytest.raises(MigrationError, match=re.escape(expected)):
        MigrationRunner(url, plans)


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        (
            "sqlite",
            "CREATE TABLE `t` (`id` INTEGER PRIMARY KEY AUTOINCREMENT, `s` VARCHAR(5) NOT NULL, "
            "`x` TEXT, `b` BOOLEAN NOT NULL DEFAULT TRUE, `f` REAL NOT NULL, "
            "`d` DATETIME NOT NULL, `g` BIGINT NOT NULL)",
        ),
        (
            "postgres",
            'CREATE TABLE "t" ("id" SERIAL PRIMARY KEY, "s" VARCHAR(5) NOT NULL, "x" TEXT, '
            '"b" BOOLEAN NOT NULL DEFAULT TRUE, "f" DOUBLE PRECISION NOT NULL, '
            '"d" TIMESTAMP NOT NULL, "g" BIGINT NOT NULL)',
        ),
        (
            "mysql",
            "CREATE TABLE IF NOT EXISTS `t` (`id` INTEGER PRIMARY KEY AUTO_INCREMENT, "
            "`s` VARCHAR(5) NOT NULL, `x` LONGTEXT, `b` BOOLEAN NOT NULL DEFAULT TRUE, "
            "`f` DOUBLE NOT NULL, `d` DATETIME(6) NOT NULL, `g` BIGINT NOT NULL) ENGINE=InnoDB",
        ),
    ],
)
def test_types_render_as_pony_declares_them(backend: Backend, expected: str) -> None:
    step = CreateTable(
        "t",
        (
            Column("id", ColumnType.INTEGER, primary_key=True, autoincrement=True),
            Column("s", ColumnType.STRING, 5),
            Column("x", ColumnType.TEXT, nullable=True),
            Column("b", ColumnType.BOOLEAN, default=True),
            Column("f", ColumnType.FLOAT),
            Column("d", ColumnType.DATETIME),
            Column("g", ColumnType.BIGINT),
        ),
        tenant_scoped=False,
    )
    assert render_step(step, backend) == (expected,)


# --- PostgreSQL row-level security -------------------------------------------------------------


@pytest.mark.skipif(TEST_ENGINE != "postgres", reason="row-level security is PostgreSQL's")
def test_tenant_scoped_tables_get_row_level_security(database: ProvisionedDatabase) -> None:
    url = database.url
    runner_for(url, [("notes", [NOTES_V1])]).up()
    connection = url.connect()  # the provisioned ordinary role, which owns the table
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False, False)

        def as_tenants(tenants: str, sql: str) -> list[tuple[Any, ...]]:
            cursor.execute("SELECT set_config('hyperspot.tenant_ids', %s, true)", (tenants,))
            cursor.execute(sql)
            rows = [tuple(row) for row in cursor.fetchall()] if cursor.description else []
            connection.commit()
            return rows

        as_tenants("A", "INSERT INTO notes (id, tenant_id, title) VALUES (1, 'A', 'mine')")
        assert as_tenants("B", "SELECT id FROM notes") == []
        assert as_tenants("A", "SELECT id FROM notes") == [(1,)]
        assert as_tenants("B,A", "SELECT id FROM notes") == [(1,)]
        assert as_tenants("B", "UPDATE notes SET title = 'stolen' RETURNING id") == []
        with pytest.raises(Exception, match="row-level security"):
            as_tenants("B", "INSERT INTO notes (id, tenant_id, title) VALUES (2, 'A', 'forged')")
        connection.rollback()
    finally:
        connection.close()
    assert run_sql(url, "SELECT id, title FROM notes") == [(1, "mine")]  # the system sees all


# --- the command -------------------------------------------------------------------------------


def test_migrate_command_status_dry_run_and_up(
    database: ProvisionedDatabase, tmp_path: Path
) -> None:
    config = tmp_path / "hyperspot.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "database": {"url": database.url.url},
                "modules_path": [str(MIGRATION_FIXTURES / "modules")],
            }
        ),
        encoding="utf-8",
    )
    cli = CliRunner()

    def invoke(*args: str) -> str:
        result = cli.invoke(migrate_app, [*args, "--config", str(config)], terminal_width=200)
        assert result.exit_code == 0, result.output
        return result.output

    status = invoke("status")
    assert "mig_probe" in status
    assert "pending" in status

    dry = invoke("up", "--dry-run")
    assert "-- mig_probe v1: create probe_items" in dry
    assert "ix_probe_items_rank" in dry
    assert "dry run, nothing applied" in dry
    assert not has_table(database.url, "probe_items")

    assert "applied mig_probe v2: add probe_items.rank" in invoke("up")
    assert "nothing to apply" in invoke("up")
    assert "pending" not in invoke("status")
    assert ("mig_probe", 2) in history(database.url)


def test_migrate_command_reports_errors_on_one_line(tmp_path: Path) -> None:
    config = tmp_path / "hyperspot.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "database": {"url": "postgresql://nobody:secret@127.0.0.1:1/none"},
                "modules_path": [str(MIGRATION_FIXTURES / "modules")],
            }
        ),
        encoding="utf-8",
    )
    result = CliRunner().invoke(migrate_app, ["up", "--config", str(config)])
    assert result.exit_code == 1
    assert "error: cannot connect to the database" in result.output
    assert "secret" not in result.output
