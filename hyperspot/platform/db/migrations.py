"""The migration runner: renders portable schema steps per backend and applies them exactly once.

Each module's migrations (versions 1..n) are applied in the order of the plans given (dependency
order), and every applied migration gets a row in ``hyperspot_migrations``. A lock makes
concurrent runners (several servers starting at once, or a server and ``hyperspot migrate up``)
apply each migration exactly once:

- PostgreSQL: ``pg_advisory_lock`` held by the runner's own session; each migration's DDL and its
  history row commit in one transaction, so a failure leaves nothing behind.
- SQLite: one ``BEGIN IMMEDIATE`` write transaction per migration, history re-read inside it;
  transactional DDL as on PostgreSQL.
- MariaDB: ``GET_LOCK('<database>:hyperspot_migrations')`` (lock names are server-wide, hence the
  database prefix). Every DDL statement commits implicitly, so a failed migration may be half
  applied; DDL is therefore rendered idempotent (IF [NOT] EXISTS) and a retry starts again from the
  migration's first step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

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
    Step,
)
from hyperspot.platform.db.urls import BACKEND_NAMES, Backend, DatabaseUrl
from hyperspot.platform.errors import HyperspotError

logger = logging.getLogger("hyperspot.migrations")

HISTORY_TABLE = "hyperspot_migrations"
TENANT_COLUMN = "tenant_id"
TENANT_POLICY = "tenant_isolation"
# Rows are visible to a session that declared itself the system, or whose tenant list (set per
# transaction by the platform's session layer) contains the row's tenant.
TENANT_PREDICATE = (
    "current_setting('hyperspot.system', true) = 'on' OR "
    "tenant_id = ANY (string_to_array(current_setting('hyperspot.tenant_ids', true), ','))"
)

PG_LOCK_KEY = 0x4853_4D49_4752  # "HSMIGR"; advisory locks are scoped to the current database
_LOCK_POLL_S = 0.1
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")  # Pony lower-cases names on PG and MariaDB
_MAX_NAME = 200

# What Pony 0.7.20 generates for the matching attribute (pony/orm/dbproviders/*.py). Deliberate
# differences on MariaDB: TEXT is LONGTEXT (Pony's LongStr; a plain `str` there is VARCHAR(255))
# and DATETIME keeps microseconds like the other two backends (Pony: `Required(datetime, 6)`).
_TYPES: dict[Backend, dict[ColumnType, str]] = {
    "sqlite": {
        ColumnType.STRING: "VARCHAR({length})",
        ColumnType.TEXT: "TEXT",
        ColumnType.INTEGER: "INTEGER",
        ColumnType.BIGINT: "BIGINT",
        ColumnType.BOOLEAN: "BOOLEAN",
        ColumnType.FLOAT: "REAL",
        ColumnType.DATETIME: "DATETIME",
    },
    "postgres": {
        ColumnType.STRING: "VARCHAR({length})",
        ColumnType.TEXT: "TEXT",
        ColumnType.INTEGER: "INTEGER",
        ColumnType.BIGINT: "BIGINT",
        ColumnType.BOOLEAN: "BOOLEAN",
        ColumnType.FLOAT: "DOUBLE PRECISION",
        ColumnType.DATETIME: "TIMESTAMP",
    },
    "mysql": {
        ColumnType.STRING: "VARCHAR({length})",
        ColumnType.TEXT: "LONGTEXT",
        ColumnType.INTEGER: "INTEGER",
        ColumnType.BIGINT: "BIGINT",
        ColumnType.BOOLEAN: "BOOLEAN",
        ColumnType.FLOAT: "DOUBLE",
        ColumnType.DATETIME: "DATETIME(6)",
    },
}

_HISTORY = CreateTable(
    HISTORY_TABLE,
    (
        Column("module", ColumnType.STRING, 64, primary_key=True),
        Column("version", ColumnType.INTEGER, primary_key=True),
        Column("name", ColumnType.STRING, _MAX_NAME),
        Column("checksum", ColumnType.STRING, 64),
        Column("applied_at", ColumnType.DATETIME),
    ),
    tenant_scoped=False,
)


class MigrationError(HyperspotError):
    """A migration is invalid, failed, or could not get the lock; the message is one line."""


MigrationState = Literal["pending", "applied", "changed", "unknown"]


@dataclass(frozen=True)
class MigrationStatus:
    """One migration as the database sees it.

    ``changed``: applied, but its definition differs from the one applied (checksum mismatch).
    ``unknown``: recorded in the history but no longer defined by the module.
    """

    module: str
    version: int
    name: str
    state: MigrationState
    applied_at: datetime | None  # naive UTC

    @property
    def applied(self) -> bool:
        return self.applied_at is not None


@dataclass(frozen=True)
class PlannedMigration:
    """A migration rendered for one backend: the statements it runs, in order."""

    module: str
    version: int
    name: str
    checksum: str
    statements: tuple[str, ...]


@dataclass(frozen=True)
class _HistoryRow:
    name: str
    checksum: str
    applied_at: datetime


# --- rendering ---------------------------------------------------------------------------------


def quote(name: str, backend: Backend) -> str:
    # SQLite takes a double-quoted name that matches no column for a string literal (so an index
    # on a misspelt column would silently index a constant); backquoted names never fall back.
    return f'"{name}"' if backend == "postgres" else f"`{name}`"


def checksum(migration: Migration) -> str:
    """A digest of the migration's steps as declared.

    Computed from the definition rather than the SQL, so that a platform upgrade that renders the
    same steps differently does not flag every applied migration as changed; fields left at their
    default are omitted for the same reason when the schema types gain new optional fields.
    """
    payload = json.dumps(
        [_canonical(step) for step in migration.steps], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            field.name: _canonical(getattr(value, field.name))
            for field in dataclasses.fields(value)
            if field.default is dataclasses.MISSING or getattr(value, field.name) != field.default
        }
        return {"step": type(value).__name__, **fields}
    if isinstance(value, tuple):
        return [_canonical(item) for item in value]
    return value


def render_migration(migration: Migration, backend: Backend) -> tuple[str, ...]:
    """The SQL statements ``migration`` runs on ``backend``; ValueError when it is invalid."""
    if not migration.name or len(migration.name) > _MAX_NAME:
        raise ValueError(f"the name must have 1 to {_MAX_NAME} characters")
    if not migration.steps:
        raise ValueError("it has no steps")
    statements: list[str] = []
    for number, step in enumerate(migration.steps, 1):
        try:
            statements.extend(render_step(step, backend))
        except ValueError as error:
            raise ValueError(f"step {number} ({type(step).__name__}): {error}") from None
    return tuple(statements)


def render_step(step: Step, backend: Backend) -> tuple[str, ...]:
    # MariaDB cannot roll DDL back, so there every statement is idempotent: a retry of a half
    # applied migration skips what is already there. PostgreSQL and SQLite roll back instead, and
    # plain DDL there reports a conflict with an object made outside the migrations.
    guard = backend == "mysql"
    if isinstance(step, CreateTable):
        return _create_table(step, backend, if_not_exists=guard)
    if isinstance(step, AddColumn):
        _check_name(step.table, "table")
        column = step.column
        _check_column(column)
        if column.primary_key or column.autoincrement:
            raise ValueError(f"column '{column.name}': a primary key cannot be added later")
        if not column.nullable and column.default is None:
            raise ValueError(
                f"column '{column.name}': a NOT NULL column added later needs a default "
                "(for the existing rows) or nullable=True"
            )
        exists = " IF NOT EXISTS" if guard else ""
        return (
            f"ALTER TABLE {quote(step.table, backend)} ADD COLUMN{exists} "
            f"{_column_sql(column, backend)}",
        )
    if isinstance(step, DropColumn):
        _check_name(step.table, "table")
        _check_name(step.column, "column")
        exists = " IF EXISTS" if guard else ""
        return (
            f"ALTER TABLE {quote(step.table, backend)} DROP COLUMN{exists} "
            f"{quote(step.column, backend)}",
        )
    if isinstance(step, CreateIndex):
        _check_name(step.table, "table")
        _check_name(step.name, "index")
        if not step.columns:
            raise ValueError(f"index '{step.name}' has no columns")
        for name in step.columns:
            _check_name(name, "column")
        unique = "UNIQUE " if step.unique else ""
        exists = "IF NOT EXISTS " if guard else ""
        columns = ", ".join(quote(name, backend) for name in step.columns)
        return (
            f"CREATE {unique}INDEX {exists}{quote(step.name, backend)} "
            f"ON {quote(step.table, backend)} ({columns})",
        )
    if isinstance(step, DropIndex):
        _check_name(step.table, "table")
        _check_name(step.name, "index")
        if backend == "mysql":  # index names are per table there
            return (
                f"DROP INDEX IF EXISTS {quote(step.name, backend)} ON {quote(step.table, backend)}",
            )
        return (f"DROP INDEX {quote(step.name, backend)}",)
    if isinstance(step, DropTable):
        _check_name(step.table, "table")
        exists = "IF EXISTS " if guard else ""
        return (f"DROP TABLE {exists}{quote(step.table, backend)}",)
    raise ValueError(f"unknown step type {type(step).__name__}")  # pragma: no cover - typed


def _create_table(step: CreateTable, backend: Backend, *, if_not_exists: bool) -> tuple[str, ...]:
    _check_name(step.table, "table")
    if not step.columns:
        raise ValueError(f"table '{step.table}' has no columns")
    names = [column.name for column in step.columns]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"table '{step.table}' repeats column(s) {', '.join(duplicates)}")
    for column in step.columns:
        _check_column(column)
    keys = [column for column in step.columns if column.primary_key]
    if not keys:
        raise ValueError(f"table '{step.table}' has no primary key column (Pony needs one)")
    if any(column.autoincrement for column in keys) and len(keys) > 1:
        raise ValueError(f"table '{step.table}': an autoincrement key must be the only key column")
    if step.tenant_scoped:
        tenant = next((c for c in step.columns if c.name == TENANT_COLUMN), None)
        if tenant is None:
            raise ValueError(
                f"tenant-scoped table '{step.table}' needs a '{TENANT_COLUMN}' column "
                "(the row-level security policy filters on it)"
            )
        if tenant.type not in (ColumnType.STRING, ColumnType.TEXT):
            raise ValueError(
                f"tenant-scoped table '{step.table}': '{TENANT_COLUMN}' must be a STRING or TEXT "
                "column (the policy compares it with the session's tenant id strings)"
            )
    parts = [_column_sql(column, backend) for column in step.columns]
    if not keys[0].autoincrement:  # an autoincrement key declares PRIMARY KEY inline
        parts.append(f"PRIMARY KEY ({', '.join(quote(c.name, backend) for c in keys)})")
    exists = "IF NOT EXISTS " if if_not_exists else ""
    table = quote(step.table, backend)
    suffix = " ENGINE=InnoDB" if backend == "mysql" else ""  # transactions for the history row
    statements = [f"CREATE TABLE {exists}{table} ({', '.join(parts)}){suffix}"]
    if step.tenant_scoped and backend == "postgres":
        # FORCE: the platform's role owns its tables, and owners bypass RLS unless forced.
        statements += [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
            f"CREATE POLICY {TENANT_POLICY} ON {table} "
            f"USING ({TENANT_PREDICATE}) WITH CHECK ({TENANT_PREDICATE})",
        ]
    return tuple(statements)


def _check_name(name: str, kind: str) -> None:
    if not _IDENTIFIER.match(name):
        raise ValueError(
            f"{kind} name {name!r} is invalid: use 1 to 63 lower case letters, digits and '_', "
            "not starting with a digit"
        )


def _check_column(column: Column) -> None:
    _check_name(column.name, "column")
    where = f"column '{column.name}'"
    if column.type == ColumnType.STRING:
        if column.length is None or not 1 <= column.length <= 16383:
            raise ValueError(f"{where}: a STRING column needs a length from 1 to 16383")
    elif column.length is not None:
        raise ValueError(f"{where}: only STRING columns take a length")
    if column.primary_key and column.nullable:
        raise ValueError(f"{where}: a primary key column cannot be nullable")
    if column.autoincrement and (
        not column.primary_key or column.type not in (ColumnType.INTEGER, ColumnType.BIGINT)
    ):
        raise ValueError(f"{where}: autoincrement needs an INTEGER or BIGINT primary key")
    if column.default is not None:
        _check_default(column, column.default)


def _check_default(column: Column, value: str | int | float | bool) -> None:
    where = f"column '{column.name}'"
    kind = column.type
    if kind == ColumnType.BOOLEAN:
        ok = isinstance(value, bool)
    elif kind in (ColumnType.INTEGER, ColumnType.BIGINT):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == ColumnType.FLOAT:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where}: the default must be a finite number")
    elif kind == ColumnType.DATETIME:
        ok = isinstance(value, str)
        if ok:
            try:
                parsed = datetime.fromisoformat(str(value))
            except ValueError:
                raise ValueError(f"{where}: the default {value!r} is not an ISO datetime") from None
            if parsed.tzinfo is not None:
                raise ValueError(
                    f"{where}: datetimes are naive UTC; drop the offset from {value!r}"
                )
    else:
        ok = isinstance(value, str)
        if ok and column.length is not None and len(str(value)) > column.length:
            raise ValueError(f"{where}: the default is longer than {column.length} characters")
    if not ok:
        raise ValueError(f"{where}: default {value!r} does not fit a {kind.value} column")


def _column_sql(column: Column, backend: Backend) -> str:
    name = quote(column.name, backend)
    if column.autoincrement:  # the forms Pony generates for PrimaryKey(int, auto=True)
        if backend == "postgres":
            serial = "BIGSERIAL" if column.type == ColumnType.BIGINT else "SERIAL"
            return f"{name} {serial} PRIMARY KEY"
        if backend == "sqlite":  # AUTOINCREMENT is only allowed on exactly INTEGER
            return f"{name} INTEGER PRIMARY KEY AUTOINCREMENT"
        return f"{name} {_TYPES[backend][column.type]} PRIMARY KEY AUTO_INCREMENT"
    parts = [name, _TYPES[backend][column.type].format(length=column.length)]
    if not column.nullable:
        parts.append("NOT NULL")
    if column.default is not None:
        parts.append(f"DEFAULT {_literal(column, column.default, backend)}")
    return " ".join(parts)


def _literal(column: Column, value: str | int | float | bool, backend: Backend) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if column.type == ColumnType.DATETIME:
        value = datetime.fromisoformat(value).isoformat(sep=" ")
    text = value.replace("'", "''")
    if backend == "mysql":  # backslash is an escape character in MariaDB string literals
        text = text.replace("\\", "\\\\")
    return f"'{text}'"


# --- the runner --------------------------------------------------------------------------------


class MigrationRunner:
    """Status, dry-run plan and application of the modules' migrations on one database."""

    def __init__(
        self,
        url: DatabaseUrl,
        plans: Sequence[tuple[str, Sequence[Migration]]],
        lock_timeout_s: float = 60,
    ) -> None:
        self.url = url
        self.backend: Backend = url.backend
        self.lock_timeout_s = lock_timeout_s
        self.migrations: list[PlannedMigration] = []
        seen: set[str] = set()
        for module, migrations in plans:
            if module in seen:
                raise MigrationError(f"module '{module}' appears twice in the migration plan")
            seen.add(module)
            if not module or len(module) > 64:
                raise MigrationError(f"module name {module!r} must have 1 to 64 characters")
            versions = [migration.version for migration in migrations]
            if versions != list(range(1, len(versions) + 1)):
                raise MigrationError(
                    f"module '{module}': migration versions must be 1, 2, 3, ... (got {versions})"
                )
            for migration in migrations:
                try:
                    statements = render_migration(migration, self.backend)
                except ValueError as error:
                    raise MigrationError(
                        f"migration {module} v{migration.version} '{migration.name}' is invalid: "
                        f"{error}"
                    ) from None
                self.migrations.append(
                    PlannedMigration(
                        module, migration.version, migration.name, checksum(migration), statements
                    )
                )
        self._modules = seen

    # -- read-only ------------------------------------------------------------------------------

    def status(self) -> list[MigrationStatus]:
        """Every defined migration, applied or pending, plus history rows no longer defined."""
        history = self._read_history()
        result: list[MigrationStatus] = []
        for planned in self.migrations:
            row = history.pop((planned.module, planned.version), None)
            if row is None:
                result.append(
                    MigrationStatus(planned.module, planned.version, planned.name, "pending", None)
                )
            else:
                state: MigrationState = "applied" if row.checksum == planned.checksum else "changed"
                result.append(
                    MigrationStatus(
                        planned.module, planned.version, planned.name, state, row.applied_at
                    )
                )
        # Only the planned modules: a disabled module's history is not this run's business.
        for (module, version), row in sorted(history.items()):
            if module in self._modules:
                result.append(MigrationStatus(module, version, row.name, "unknown", row.applied_at))
        return result

    def plan(self) -> list[PlannedMigration]:
        """The pending migrations with the SQL each would run; changes nothing (a dry run)."""
        history = self._read_history()
        return [m for m in self.migrations if (m.module, m.version) not in history]

    def _read_history(self) -> dict[tuple[str, int], _HistoryRow]:
        connection = self.url.connect(autocommit=True)
        try:
            cursor = connection.cursor()
            if not self._history_exists(cursor):  # status and dry runs must not create it
                return {}
            return self._history(cursor)
        finally:
            connection.close()

    def _history_exists(self, cursor: Any) -> bool:
        if self.backend == "sqlite":
            cursor.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (HISTORY_TABLE,)
            )
        elif self.backend == "postgres":
            cursor.execute(
                "SELECT 1 FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_name = %s",
                (HISTORY_TABLE,),
            )
        else:
            cursor.execute(
                "SELECT 1 FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name = %s",
                (HISTORY_TABLE,),
            )
        return cursor.fetchone() is not None

    def _history(self, cursor: Any) -> dict[tuple[str, int], _HistoryRow]:
        cursor.execute(
            "SELECT module, version, name, checksum, applied_at FROM hyperspot_migrations"
        )
        rows: dict[tuple[str, int], _HistoryRow] = {}
        for module, version, name, digest, stamp in cursor.fetchall():
            # SQLite returns the ISO text we wrote; the other drivers return a datetime.
            applied_at = datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp
            rows[(str(module), int(version))] = _HistoryRow(str(name), str(digest), applied_at)
        return rows

    # -- applying -------------------------------------------------------------------------------

    def up(self) -> list[PlannedMigration]:
        """Apply the pending migrations in order, under the lock; returns those this run applied."""
        if self.backend == "postgres":
            return self._up_postgres()
        if self.backend == "mysql":
            return self._up_mariadb()
        return self._up_sqlite()

    def _up_postgres(self) -> list[PlannedMigration]:
        connection = self.url.connect(autocommit=True)
        try:
            cursor = connection.cursor()
            self._wait_for_lock(cursor, "SELECT pg_try_advisory_lock(%s)", (PG_LOCK_KEY,))
            try:
                cursor.execute(self._history_ddl())
                # Read once: every runner takes the lock first, so nobody else applies meanwhile.
                applied = self._history(cursor)
                done: list[PlannedMigration] = []
                for planned in self.migrations:
                    if (planned.module, planned.version) in applied:
                        continue
                    connection.autocommit = False
                    try:
                        with self._step_errors(planned, rolled_back=True):
                            self._apply(cursor, planned)
                        connection.commit()
                    except BaseException:
                        connection.rollback()
                        raise
                    finally:
                        connection.autocommit = True
                    done.append(planned)
                return done
            finally:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (PG_LOCK_KEY,))
        finally:
            connection.close()

    def _up_mariadb(self) -> list[PlannedMigration]:
        # autocommit: DDL commits implicitly anyway, and each read then sees the latest history.
        connection = self.url.connect(autocommit=True)
        try:
            cursor = connection.cursor()
            lock = mariadb_lock_name(self.url.database)
            cursor.execute("SELECT GET_LOCK(%s, %s)", (lock, math.ceil(self.lock_timeout_s)))
            if cursor.fetchone()[0] != 1:
                raise self._lock_timeout()
            try:
                cursor.execute(self._history_ddl())
                applied = self._history(cursor)
                done: list[PlannedMigration] = []
                for planned in self.migrations:
                    if (planned.module, planned.version) in applied:
                        continue
                    with self._step_errors(planned, rolled_back=False):
                        self._apply(cursor, planned)
                    done.append(planned)
                return done
            finally:
                cursor.execute("SELECT RELEASE_LOCK(%s)", (lock,))
                cursor.fetchall()
        finally:
            connection.close()

    def _up_sqlite(self) -> list[PlannedMigration]:
        # The busy timeout is how long BEGIN IMMEDIATE waits for another writer: the lock timeout.
        connection = self.url.connect(timeout_s=self.lock_timeout_s)
        try:
            cursor = connection.cursor()
            with self._sqlite_write(cursor):
                cursor.execute(self._history_ddl())
            done: list[PlannedMigration] = []
            for planned in self.migrations:
                # One write transaction per migration; another runner may have applied it while
                # this one waited, so the history is re-read inside the transaction.
                with self._sqlite_write(cursor):
                    if (planned.module, planned.version) in self._history(cursor):
                        continue
                    with self._step_errors(planned, rolled_back=True):
                        self._apply(cursor, planned)
                done.append(planned)
            return done
        finally:
            connection.close()

    @contextmanager
    def _sqlite_write(self, cursor: Any) -> Iterator[None]:
        import sqlite3

        try:
            cursor.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise self._lock_timeout() from None
            raise
        try:
            yield
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")

    def _apply(self, cursor: Any, planned: PlannedMigration) -> None:
        started = time.monotonic()
        for index, statement in enumerate(planned.statements):
            self._current_step = index + 1
            cursor.execute(statement)
        self._current_step = 0  # 0: recording the history row
        insert = (
            "INSERT INTO hyperspot_migrations (module, version, name, checksum, applied_at) "
            "VALUES (%s, %s, %s, %s, %s)"
        )
        applied_at = datetime.now(UTC).replace(tzinfo=None)
        cursor.execute(
            insert.replace("%s", "?") if self.backend == "sqlite" else insert,
            (
                planned.module,
                planned.version,
                planned.name,
                planned.checksum,
                # sqlite3's implicit datetime adapter is deprecated; store ISO text explicitly.
                applied_at.isoformat(sep=" ") if self.backend == "sqlite" else applied_at,
            ),
        )
        logger.info(
            "applied migration %s v%d '%s' on %s (%d statements, %.0f ms)",
            planned.module,
            planned.version,
            planned.name,
            BACKEND_NAMES[self.backend],
            len(planned.statements),
            (time.monotonic() - started) * 1000,
        )

    @contextmanager
    def _step_errors(self, planned: PlannedMigration, *, rolled_back: bool) -> Iterator[None]:
        """Turn a driver error into one line naming the migration, the step and the backend."""
        self._current_step = 1
        try:
            yield
        except Exception as error:
            step = self._current_step
            where = (
                f"at statement {step} of {len(planned.statements)}"
                if step
                else f"while recording it in {HISTORY_TABLE}"
            )
            message = (
                f"migration {planned.module} v{planned.version} '{planned.name}' failed {where} "
                f"on {BACKEND_NAMES[self.backend]} ({self.url.where}): {_driver_error(error)}; "
                "no history row was written"
            )
            if rolled_back:
                message += " and its changes were rolled back"
            else:
                message += (
                    "; MariaDB DDL is not transactional, so the statements before the failing one "
                    "stay applied: fix the migration and run again, it will be retried from its "
                    "first step (its DDL is idempotent)"
                )
            raise MigrationError(message) from error

    def _wait_for_lock(self, cursor: Any, sql: str, parameters: tuple[Any, ...]) -> None:
        # Polling a try-lock rather than blocking, so the wait has a deadline of our own choosing
        # and statement timeouts stay untouched for the DDL.
        deadline = time.monotonic() + self.lock_timeout_s
        while True:
            cursor.execute(sql, parameters)
            if cursor.fetchone()[0]:
                return
            if time.monotonic() >= deadline:
                raise self._lock_timeout()
            time.sleep(_LOCK_POLL_S)

    def _lock_timeout(self) -> MigrationError:
        return MigrationError(
            f"timed out after {self.lock_timeout_s:g} s waiting for the migration lock on "
            f"{BACKEND_NAMES[self.backend]} ({self.url.where}): another migration run holds it"
        )

    def _history_ddl(self) -> str:
        return _create_table(_HISTORY, self.backend, if_not_exists=True)[0]

    _current_step = 0


def mariadb_lock_name(database: str) -> str:
    """The GET_LOCK name: lock names are server-wide, so it names the database (64 chars max)."""
    name = f"{database}:{HISTORY_TABLE}"
    if len(name) > 64:
        digest = hashlib.sha1(database.encode("utf-8"), usedforsecurity=False).hexdigest()
        name = f"{HISTORY_TABLE}:{digest}"
    return name


def _driver_error(error: BaseException) -> str:
    """The driver's message on one line, with the driver's error class or code."""
    args: tuple[Any, ...] = error.args
    if len(args) == 2 and isinstance(args[0], int):  # PyMySQL: (code, message)
        return f"{args[1]} ({type(error).__name__} {args[0]})"
    text = str(error).strip() or type(error).__name__
    return f"{type(error).__name__}: {text.splitlines()[0]}"
