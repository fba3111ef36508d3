"""The platform's database: one Pony ``Database`` shared by the modules, worked off the event loop.

Modules define their entities on ``schema`` in their init hook; the platform binds and maps once,
after migrations, so one transaction can span modules. Pony is synchronous: every unit of work runs
in a bounded thread pool (one connection per worker thread), inside one ``db_session``, so a slow
query never stalls the event loop and the pool size bounds the connections.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pony.orm import Database, db_session

from hyperspot.platform.config import DatabaseSettings
from hyperspot.platform.db.session import ScopedSession, check_scoping
from hyperspot.platform.db.urls import DatabaseError, DatabaseUrl, parse_database_url
from hyperspot.platform.errors import HyperspotError
from hyperspot.platform.security import SecurityContext

T = TypeVar("T")

logger = logging.getLogger("hyperspot.db")

Work = Callable[[ScopedSession], T]


class PlatformDatabase:
    def __init__(self, settings: DatabaseSettings, url: str) -> None:
        self.settings = settings
        self.url: DatabaseUrl = parse_database_url(url)
        self.schema = Database()
        self.mapped = False
        self._pool: ThreadPoolExecutor | None = None

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
            self.schema.bind(**self.url.pony_bind_arguments())
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

    async def run(self, security: SecurityContext, work: Work[T]) -> T:
        """Run ``work`` in one transaction, scoped to ``security``, off the event loop."""
        if security.system:
            raise HyperspotError("use run_system() for work that crosses tenants")
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
        return await loop.run_in_executor(self._pool, context.run, self._unit, security, work)

    def _unit(self, security: SecurityContext, work: Work[T]) -> T:
        with db_session:
            if self.url.backend == "postgres":
                self._set_rls_scope(security)
            return work(ScopedSession(self.schema, security))

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

    def close(self) -> None:
        if self._pool is not None:
            # Pony keeps one connection per thread: close each worker's own before the threads
            # go. The barrier makes every worker take exactly one of these tasks.
            workers = self.settings.pool_size
            barrier = threading.Barrier(workers)

            def disconnect() -> None:
                barrier.wait(timeout=10)
                self.schema.disconnect()

            for done in [self._pool.submit(disconnect) for _ in range(workers)]:
                done.result()
            self._pool.shutdown(wait=True)
            self._pool = None
        if self.mapped:
            self.schema.disconnect()
