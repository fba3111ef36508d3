"""The platform's database: one Pony ``Database`` shared by the modules, worked off the event loop.

Modules define their entities on ``schema`` in their init hook; the platform binds and maps once,
after migrations, so one transaction can span modules. Pony is synchronous: every unit of work runs
in a bounded thread pool (one connection per worker thread), inside one ``db_session``, so a slow
query never stalls the event loop and the pool size bounds the connections.

When the server goes away, a unit of work fails with ``DatabaseUnavailableError`` (the gateway's
503) within ``statement_timeout_s``, the worker's connection is discarded, and the next unit opens a
fresh one: the platform recovers by itself once the server is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pony.orm import Database, db_session, select
from pony.orm.dbproviders.sqlite import SQLiteDatetimeConverter

from hyperspot.platform.config import DatabaseSettings
from hyperspot.platform.db.faults import DatabaseUnavailableError, is_conflict, is_unavailable
from hyperspot.platform.db.migrations import HISTORY_TABLE
from hyperspot.platform.db.schema import Migration, tenant_tables
from hyperspot.platform.db.session import (
    ScopedSession,
    TenantScoped,
    check_scoping,
)
from hyperspot.platform.db.urls import DatabaseError, DatabaseUrl, parse_database_url
from hyperspot.platform.errors import HyperspotError
from hyperspot.platform.security import SecurityContext

T = TypeVar("T")

logger = logging.getLogger("hyperspot.db")

Work = Callable[[ScopedSession], T]

# How much longer than its statement timeout a unit of work may wait for the server to answer.
UNANSWERED_GRACE_S = 1.0
# Attempts of a unit run with retry_conflicts before its conflict is raised.
CONFLICT_ATTEMPTS = 4

# Probes of /health share one check per this many seconds: a flood of probes cannot become a
# flood of database connections.
HEALTH_CHECK_INTERVAL_S = 1.0


class FastSQLiteDatetimeConverter(SQLiteDatetimeConverter):  # type: ignore[misc]
    """Reads SQLite's datetime text with ``datetime.fromisoformat`` (C) instead of ``strptime``.

    Pony's converter parses with ``time.strptime``: ~5.7 µs a value, 14% of a 50-note list's
    CPU in the profile of docs/performance.md; ``fromisoformat`` takes ~0.1 µs. Pony writes
    ``YYYY-MM-DD HH:MM:SS[.ffffff]``, which ``fromisoformat`` reads exactly; anything else
    (a value written by another tool) goes to Pony's own parser.
    """

    def sql2py(self, val: object) -> object:
        if isinstance(val, str):
            try:
                return datetime.fromisoformat(val)
            except ValueError:
                pass
        return super().sql2py(val)


def use_fast_sqlite_datetimes(schema: Database) -> None:
    """Swap the bound SQLite provider's datetime converter before the mapping is generated."""
    provider = schema.provider
    provider.converter_classes = [
        (py_type, FastSQLiteDatetimeConverter if py_type is datetime else converter)
        for py_type, converter in provider.converter_classes
    ]


@dataclass(frozen=True)
class DatabaseHealth:
    """The outcome of one health check of the database server."""

    healthy: bool
    detail: str
    checked_at: float  # time.monotonic()


class PlatformDatabase:
    def __init__(self, settings: DatabaseSettings, url: str) -> None:
        self.settings = settings
        self.url: DatabaseUrl = parse_database_url(url)
        self.schema = Database()
        self.mapped = False
        # Modules on this database whose entities live in another process (runtime: oop).
        self._elsewhere: dict[str, tuple[Migration, ...]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._health: DatabaseHealth | None = None
        # Set when work failed for want of the server: the next probe checks afresh.
        self._health_stale = False
        self._health_lock = asyncio.Lock()

    def check_server(self) -> None:
        """Reach the server, check its version, and warn where tenant walls would be weakened."""
        connection = self.url.connect(autocommit=True, timeout_s=self.settings.connect_timeout_s)
        try:
            version = self.url.check_version(connection)
            logger.info(
                "database %s (%s %s)",
                self.url.masked,
                self.url.backend,
                ".".join(map(str, version)),
            )
            cursor = connection.cursor()
            if self.url.backend == "sqlite":
                # WAL lets readers proceed while one writer commits.
                cursor.execute("PRAGMA journal_mode=WAL")
            elif self.url.backend == "postgres":
                cursor.execute(
                    "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
                )
                if cursor.fetchone()[0]:
                    logger.warning(
                        "connected to PostgreSQL as '%s', which bypasses row-level security: "
                        "connect as an ordinary role so that RLS guards tenant data",
                        self.url.user,
                    )
        finally:
            connection.close()

    def map_entities(self) -> None:
        """Bind and map the entities the modules defined; they must match the migrated tables."""
        check_scoping(self.schema)
        try:
            self.schema.bind(
                **self.url.pony_bind_arguments(
                    connect_timeout_s=self.settings.connect_timeout_s,
                    statement_timeout_s=self.settings.statement_timeout_s,
                )
            )
            if self.url.backend == "sqlite":
                use_fast_sqlite_datetimes(self.schema)
            self.schema.generate_mapping(create_tables=False, check_tables=True)
        except Exception as error:
            raise DatabaseError(
                f"the entities do not match the database at {self.url.masked}: "
                f"{str(error).strip().splitlines()[0]} (are all migrations applied? "
                "see `hyperspot migrate status`)"
            ) from None
        # Binding opened a connection for this thread (a passing one, e.g. asyncio.to_thread's):
        # close it here, where it belongs; the worker threads open their own.
        self.schema.disconnect()
        self.mapped = True
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.pool_size, thread_name_prefix="hyperspot-db"
        )

    async def run(
        self, security: SecurityContext, work: Work[T], *, retry_conflicts: bool = False
    ) -> T:
        """Run ``work`` in one transaction, scoped to ``security``, off the event loop.

        With ``retry_conflicts`` a unit that collided with a concurrent one (``is_conflict``:
        a deadlock, a serialization failure, a lock timeout, a key inserted meanwhile) runs
        again, up to ``CONFLICT_ATTEMPTS`` times, after a short random pause: for work that
        creates a shared row on first use or locks one that others lock too. ``work`` must then
        be safe to run again (it is: a failed unit was rolled back).
        """
        if security.system:
            raise HyperspotError("use run_system() for work that crosses tenants")
        if not retry_conflicts:
            return await self._submit(security, work)
        for attempt in range(1, CONFLICT_ATTEMPTS):
            try:
                return await self._submit(security, work)
            except Exception as error:
                if not is_conflict(error):
                    raise
                # Apart, or the units that collided collide again.
                await asyncio.sleep(random.uniform(0.005, 0.03) * attempt)  # noqa: S311 jitter
        return await self._submit(security, work)

    async def run_system(self, reason: str, work: Work[T]) -> T:
        """Unscoped work (platform jobs, not requests): explicit, and logged every time."""
        logger.info("system database access: %s", reason)
        return await self._submit(SecurityContext.for_system(reason), work)

    async def _submit(self, security: SecurityContext, work: Work[T]) -> T:
        if self._pool is None:
            raise HyperspotError("the database is not ready: entities are mapped after migrations")
        loop = asyncio.get_running_loop()
        # copy_context: the worker sees the request's context variables (request id for logs).
        context = contextvars.copy_context()
        future = loop.run_in_executor(self._pool, context.run, self._unit, security, work)
        # The server cancels a slow statement itself (statement_timeout_s); this bound, a little
        # later, answers for a server or network that no longer answers at all. Waiting for a
        # free worker counts too: with every worker stuck, requests are refused in bounded time
        # instead of queueing without end. A stuck worker is freed by the driver's timeouts.
        limit = self.settings.statement_timeout_s + UNANSWERED_GRACE_S
        try:
            return await asyncio.wait_for(future, limit)
        except TimeoutError:
            self._health_stale = True
            raise DatabaseUnavailableError(
                f"the database did not complete the work within {limit:g} s "
                "(database.statement_timeout_s)"
            ) from None

    def _unit(self, security: SecurityContext, work: Work[T]) -> T:
        try:
            with db_session:
                if self.url.backend == "postgres":
                    self._set_rls_scope(security)
                return work(ScopedSession(self.schema, security))
        except Exception as error:
            if not is_unavailable(error) or isinstance(error, DatabaseUnavailableError):
                raise
            # Pony keeps this thread's connection for its next unit: one that failed this way
            # may be broken, so it goes, and the next unit connects afresh.
            self._health_stale = True
            with contextlib.suppress(Exception):
                self.schema.disconnect()
            raise DatabaseUnavailableError(
                f"the database at {self.url.where} is unavailable: {_first_line(error)}"
            ) from error

    def add_module_elsewhere(self, module: str, migrations: Sequence[Migration]) -> None:
        """A module that keeps its tables in this database but runs in another process: its
        tenant tables (from its migrations) are purged with a tenant too, by table."""
        self._elsewhere[module] = tuple(migrations)

    async def purge_tenant(self, tenant_id: str, reason: str) -> dict[str, int]:
        """Delete every row of ``tenant_id`` from every tenant table, in one system transaction.

        Returns the number of rows deleted per table. See ``purge_tenant_rows``.
        """
        return await self.run_system(
            f"purge tenant '{tenant_id}': {reason}",
            lambda session: self.purge_tenant_rows(session, tenant_id, reason),
        )

    def purge_tenant_rows(
        self, session: ScopedSession, tenant_id: str, reason: str
    ) -> dict[str, int]:
        """Delete every row of ``tenant_id`` from every tenant table, inside the current unit.

        The tables are those of every TenantScoped entity defined on ``schema`` in this process,
        so no module has to remember to clean up after a deleted tenant, and the tenant tables
        that the applied migrations of modules running in other processes created
        (``add_module_elsewhere``). Run inside a scoped unit
        (a tenant's deletion, which commits or rolls back with its data), the purge is system
        work all the same: it is logged, and on PostgreSQL row-level security is lifted for the
        purge alone (``hyperspot.system``, transaction-local) and restored after it. Rows of the
        tenant that this unit loaded earlier are stale afterwards: purge last.
        """
        if not tenant_id:
            raise HyperspotError("purge_tenant needs a tenant id: an empty one names no tenant")
        if session.database is not self.schema:
            raise HyperspotError("purge_tenant_rows runs inside a unit of work of this database")
        logger.info("system database access: purge tenant '%s': %s", tenant_id, reason)
        postgres = self.url.backend == "postgres"
        if postgres:
            self._set_system_flag(True)
        try:
            deleted = {
                entity._table_: _delete_rows_of(entity, tenant_id)
                for entity in self.tenant_entities()
            }
            for table in self._tables_elsewhere():
                if table not in deleted:
                    deleted[table] = self._delete_rows_in(table, tenant_id)
        finally:
            if postgres:
                self._set_system_flag(session.security.system)
        logger.info(
            "purged tenant '%s': %s",
            tenant_id,
            ", ".join(f"{table}: {count}" for table, count in deleted.items()) or "no tables",
        )
        return deleted

    def _tables_elsewhere(self) -> list[str]:
        """The tenant tables the applied migrations of modules in other processes created."""
        if not self._elsewhere:
            return []
        applied = dict(
            self.schema.execute(
                # hyperspot: ignore[HS005] the table name is the platform's constant
                f"SELECT module, MAX(version) FROM {HISTORY_TABLE} GROUP BY module"  # noqa: S608
            ).fetchall()
        )
        return sorted(
            table
            for module, migrations in self._elsewhere.items()
            for table in tenant_tables(migrations, up_to=int(applied.get(module) or 0))
        )

    def _delete_rows_in(self, table: str, tenant_id: str) -> int:
        quoted = self.schema.provider.quote_name(table)
        cursor = self.schema.execute(
            # hyperspot: ignore[HS005] a table a module's migration created, quoted; value bound
            f"DELETE FROM {quoted} WHERE tenant_id = $tenant_id",  # noqa: S608
            {},
            {"tenant_id": tenant_id},
        )
        return int(cursor.rowcount)

    def tenant_entities(self) -> list[type[Any]]:
        """Every TenantScoped entity mapped here that owns a table, sorted by table."""
        if not self.mapped:
            raise HyperspotError("the database is not ready: entities are mapped after migrations")
        # Entities that inherit one another share their root's table: purge each table once.
        roots = {
            entity._root_
            for entity in self.schema.entities.values()
            if issubclass(entity, TenantScoped)
        }
        return sorted(roots, key=lambda entity: str(entity._table_))

    def _set_system_flag(self, system: bool) -> None:
        self.schema.execute(
            "SELECT set_config('hyperspot.system', $system, true)",
            {},
            {"system": "on" if system else "off"},
        )

    def _set_rls_scope(self, security: SecurityContext) -> None:
        # Transaction-local settings read by the row-level security policies. db.execute opens
        # the transaction (a plain select would run in autocommit and lose them at once).
        self.schema.execute(
            "SELECT set_config('hyperspot.tenant_ids', $tenants, true), "
            "set_config('hyperspot.system', $system, true)",
            {},
            {
                "tenants": ",".join(sorted(security.visible_tenants)),
                "system": "on" if security.system else "off",
            },
        )

    async def health(self) -> DatabaseHealth:
        """Whether the server answers now: a fresh connection and ``SELECT 1``, bounded by the
        connect and statement timeouts; concurrent probes share one check per second."""
        async with self._health_lock:
            now = time.monotonic()
            health = self._health
            if (
                health is None
                or self._health_stale
                or now - health.checked_at >= HEALTH_CHECK_INTERVAL_S
            ):
                self._health_stale = False
                health = self._health = await self._check_health()
            return health

    async def _check_health(self) -> DatabaseHealth:
        limit = self.settings.connect_timeout_s + self.settings.statement_timeout_s
        was_healthy = self._health is None or self._health.healthy
        started = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.to_thread(self._ping), limit)
        except (TimeoutError, DatabaseError) as error:
            reason = str(error) or f"no answer within {limit:g} s"
            if was_healthy:
                logger.warning("database health check failed: %s", reason)
            # The reason (host, driver message) is in the log; /health is public.
            return DatabaseHealth(False, "the database does not answer", time.monotonic())
        if not was_healthy:
            logger.warning("database health check passed again")
        latency_ms = (time.perf_counter() - started) * 1000
        return DatabaseHealth(True, f"answered in {latency_ms:.1f} ms", time.monotonic())

    def _ping(self) -> None:
        connection = self.url.connect(
            autocommit=True,
            timeout_s=self.settings.connect_timeout_s,
            statement_timeout_s=self.settings.statement_timeout_s,
        )
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
        except Exception as error:
            raise DatabaseError(f"{self.url.where}: {_first_line(error)}") from None
        finally:
            with contextlib.suppress(Exception):
                connection.close()

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            # Pony keeps one connection per thread: close each worker's own before the threads
            # go. The barrier makes every worker take exactly one of these tasks; a worker stuck
            # on a server that stopped answering breaks it, and the others go on.
            workers = self.settings.pool_size
            barrier = threading.Barrier(workers)

            def disconnect() -> None:
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(timeout=5)
                with contextlib.suppress(Exception):
                    self.schema.disconnect()

            _, pending = wait_all([pool.submit(disconnect) for _ in range(workers)], timeout=10)
            # A stuck worker is not waited for (it ends with its driver's timeout).
            pool.shutdown(wait=not pending, cancel_futures=True)
        if self.mapped:
            with contextlib.suppress(Exception):
                self.schema.disconnect()


def _delete_rows_of(entity: type[Any], tenant_id: str) -> int:
    # Pony's bulk delete: one DELETE ... WHERE tenant_id = <bound parameter>, no rows loaded.
    query = select(row for row in entity).filter(lambda row: row.tenant_id == tenant_id)
    return int(query.delete(bulk=True))


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
