"""The tenant tree's rules: who sees and manages which tenant, and the cached lineage.

A caller acts from its tenant (``security.tenant_id``, the tenant acted in) downwards: it reads and
renames that tenant and every tenant below it, creates tenants under any of them, and suspends,
resumes or deletes only tenants strictly below it. So nobody suspends or deletes their own tenant,
and the root, which is below no tenant, is never suspended or deleted. Deleting a tenant deletes
its data in every module (its rows in every tenant table) in the same transaction. A tenant outside
the caller's subtree is answered exactly like a missing one. Every administrative action, refused
ones included, is recorded in the audit log of the caller's tenant.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from cachetools import TTLCache
from pony.orm import TransactionIntegrityError

from hyperspot.modules.audit.contract import AuditLogApi, AuditResult
from hyperspot.modules.tenants.contract import (
    TENANT_ID_PATTERN,
    NewTenant,
    Tenant,
    TenantActionDeniedError,
    TenantChanges,
    TenantError,
    TenantExistsError,
    TenantHasChildrenError,
    TenantNotFoundError,
    TenantState,
)
from hyperspot.modules.tenants.domain.ports import TenantEntities
from hyperspot.platform.db import (
    ListField,
    ListParams,
    ListSpec,
    PlatformDatabase,
    ScopedSession,
    page,
)
from hyperspot.platform.identity import RequestOrigin
from hyperspot.platform.security import SecurityContext

T = TypeVar("T")

ROOT_NAME = "Root"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# Bounds the lineage cache's memory; an evicted lineage only costs one re-read.
MAX_CACHED_LINEAGES = 10_000

_TENANT_ID = re.compile(TENANT_ID_PATTERN)
# Tenant records are Global, so reading the tree needs no tenant scope; run_system() would log
# every lineage cache miss, i.e. every few seconds per active tenant.
_TREE_READER = SecurityContext(subject="module:tenants", tenant_id="")


def _now() -> datetime:
    # Stored naive, in UTC, by platform convention (SQLite and MariaDB keep no zone).
    return datetime.now(UTC).replace(tzinfo=None)


def to_tenant(row: Any) -> Tenant:
    return Tenant.model_validate(row, from_attributes=True)


class TenantsService:
    def __init__(
        self,
        database: PlatformDatabase,
        entities: TenantEntities,
        audit: AuditLogApi,
        *,
        root_tenant: str,
        cache_ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self.entities = entities
        self.audit = audit
        self.root_tenant = root_tenant
        self.cache_ttl_s = cache_ttl_s
        # TTLCache wants a positive ttl; with cache_ttl_s 0 nothing is stored at all.
        self._lineages: TTLCache[str, list[Tenant]] = TTLCache(
            MAX_CACHED_LINEAGES, max(cache_ttl_s, 1e-6), timer=clock
        )
        # Bumped on every local change: a read that overlapped a change is not cached.
        self._generation = 0
        self.list_spec = ListSpec(
            fields={
                "id": ListField(str, sort=True),
                "name": ListField(str, sort=True),
                "parent_id": ListField(str, nullable=True),
                "state": ListField(str, sort=True),
                "created_at": ListField(datetime, sort=True),
            },
            default_order="created_at asc",
            default_limit=DEFAULT_PAGE_SIZE,
            max_limit=MAX_PAGE_SIZE,
        )

    # -- the lineage: asked on every authenticated request ----------------------------------

    async def lineage(self, tenant_id: str) -> list[Tenant]:
        if not _TENANT_ID.fullmatch(tenant_id):
            return []  # not a tenant id at all: no query, nothing cached
        cached = self._lineages.get(tenant_id)
        if cached is not None:
            return list(cached)

        def work(session: ScopedSession) -> list[Tenant]:
            row = session.get(self.entities.Tenant, tenant_id)
            return [to_tenant(each) for each in self._chain(session, row)]

        generation = self._generation
        found = await self.database.run(_TREE_READER, work)
        if self.cache_ttl_s > 0 and generation == self._generation:
            self._lineages[tenant_id] = found
        return list(found)

    def _forget(self) -> None:
        # Any change may alter the lineage of every tenant below it: drop them all.
        self._generation += 1
        self._lineages.clear()

    # -- the root ---------------------------------------------------------------------------

    async def ensure_root(self) -> bool:
        """Create the root tenant unless it exists; True when this call created it.

        Safe when several instances start at once on one database: the one that loses the race
        to insert gets a unique violation and reads again.
        """
        tenant = self.entities.Tenant

        def work(session: ScopedSession) -> bool:
            if session.get(tenant, self.root_tenant) is not None:
                return False
            session.create(
                tenant,
                id=self.root_tenant,
                name=ROOT_NAME,
                parent_id=None,
                state=TenantState.ACTIVE.value,
                created_at=_now(),
            )
            return True

        reason = f"ensure the root tenant '{self.root_tenant}' exists"
        try:
            created = await self.database.run_system(reason, work)
        except TransactionIntegrityError:
            # Another instance inserted it between this one's read and insert.
            created = await self.database.run_system(reason, work)
        if created:
            self._forget()
        return created

    # -- reading ----------------------------------------------------------------------------

    async def get(self, security: SecurityContext, tenant_id: str) -> Tenant:
        return await self.database.run(
            security, lambda session: to_tenant(self._find(session, security, tenant_id))
        )

    # -- administration ---------------------------------------------------------------------

    async def create(
        self, security: SecurityContext, new: NewTenant, origin: RequestOrigin | None
    ) -> Tenant:
        tenant = self.entities.Tenant

        def work(session: ScopedSession) -> Tenant:
            # Locked: a concurrent delete of the parent waits, then sees this child.
            parent = self._find(session, security, new.parent_id or security.tenant_id, lock=True)
            if session.get(tenant, new.id) is not None:
                raise TenantExistsError(new.id)
            row = session.create(
                tenant,
                id=new.id,
                name=new.name,
                parent_id=parent.id,
                state=TenantState.ACTIVE.value,
                created_at=_now(),
            )
            return to_tenant(row)

        async def change() -> Tenant:
            try:
                return await self.database.run(security, work)
            except TransactionIntegrityError:
                # Inserted by a concurrent request between this one's check and its insert.
                raise TenantExistsError(new.id) from None

        return await self._administer(security, "tenants.create", new.id, origin, change)

    async def rename(
        self,
        security: SecurityContext,
        tenant_id: str,
        changes: TenantChanges,
        origin: RequestOrigin | None,
    ) -> Tenant:
        def work(session: ScopedSession) -> Tenant:
            row = self._find(session, security, tenant_id)
            row.name = changes.name
            return to_tenant(row)

        return await self._administer(
            security,
            "tenants.rename",
            tenant_id,
            origin,
            lambda: self.database.run(security, work),
        )

    async def suspend(
        self, security: SecurityContext, tenant_id: str, origin: RequestOrigin | None
    ) -> Tenant:
        return await self._set_state(security, tenant_id, TenantState.SUSPENDED, origin)

    async def resume(
        self, security: SecurityContext, tenant_id: str, origin: RequestOrigin | None
    ) -> Tenant:
        return await self._set_state(security, tenant_id, TenantState.ACTIVE, origin)

    async def _set_state(
        self,
        security: SecurityContext,
        tenant_id: str,
        state: TenantState,
        origin: RequestOrigin | None,
    ) -> Tenant:
        verb = "suspend" if state is TenantState.SUSPENDED else "resume"

        def work(session: ScopedSession) -> Tenant:
            row = self._find_below(session, security, tenant_id, verb)
            row.state = state.value
            return to_tenant(row)

        return await self._administer(
            security,
            f"tenants.{verb}",
            tenant_id,
            origin,
            lambda: self.database.run(security, work),
        )

    async def delete(
        self, security: SecurityContext, tenant_id: str, origin: RequestOrigin | None
    ) -> None:
        tenant = self.entities.Tenant

        def work(session: ScopedSession) -> None:
            # Locked, and children read with a locking read: a child created concurrently is
            # either seen here or refused for want of its parent.
            row = self._find_below(session, security, tenant_id, "delete", lock=True)
            if session.find(tenant, parent_id=row.id).for_update()[:1]:
                raise TenantHasChildrenError(tenant_id)
            row.delete()
            # The tenant's data goes with it, in this transaction: a tenant is either there with
            # its data or gone with it, and a tenant created later under the same id starts
            # empty. Its own audit log goes too; the record of this deletion is written after
            # it, in the caller's tenant.
            self.database.purge_tenant_rows(
                session, tenant_id, f"tenant deleted by '{security.subject}'"
            )

        await self._administer(
            security, "tenants.delete", tenant_id, origin, lambda: self.database.run(security, work)
        )

    async def _administer(
        self,
        security: SecurityContext,
        action: str,
        target: str,
        origin: RequestOrigin | None,
        change: Callable[[], Awaitable[T]],
    ) -> T:
        """Apply a change and audit it, refused and failed attempts included."""
        try:
            result = await change()
        except TenantError as error:
            # A tenant outside the subtree is recorded like a missing one (same result, same
            # detail): the caller may read this log, and must learn nothing from it.
            refused = isinstance(error, TenantNotFoundError | TenantActionDeniedError)
            await self.audit.record(
                security,
                action,
                target,
                AuditResult.DENIED if refused else AuditResult.FAILURE,
                origin=origin,
                detail=str(error),
            )
            raise
        self._forget()
        await self.audit.record(security, action, target, AuditResult.SUCCESS, origin=origin)
        return result

    # -- the tree, inside one unit of work --------------------------------------------------

    def _chain(self, session: ScopedSession, row: Any) -> list[Any]:
        """The row (None: no tenant), its parent's, ... up to the root's."""
        rows: list[Any] = []
        seen: set[str] = set()
        # The seen-set: this service creates no cycle, but a hand-edited table must not hang
        # every request.
        while row is not None and row.id not in seen:
            rows.append(row)
            seen.add(row.id)
            parent = row.parent_id
            row = None if parent is None else session.get(self.entities.Tenant, parent)
        return rows

    def _find(
        self,
        session: ScopedSession,
        security: SecurityContext,
        tenant_id: str,
        *,
        lock: bool = False,
    ) -> Any:
        """The tenant's row when it is the caller's tenant or below it, else TenantNotFoundError."""
        query = session.find(self.entities.Tenant, id=tenant_id)
        row = (query.for_update() if lock else query).first()
        if row is None or security.tenant_id not in {r.id for r in self._chain(session, row)}:
            raise TenantNotFoundError(tenant_id)
        return row

    def _find_below(
        self,
        session: ScopedSession,
        security: SecurityContext,
        tenant_id: str,
        verb: str,
        *,
        lock: bool = False,
    ) -> Any:
        """The tenant's row when it is strictly below the caller's tenant."""
        row = self._find(session, security, tenant_id, lock=lock)
        if row.id == security.tenant_id:
            why = (
                "it is the root tenant"
                if row.parent_id is None
                else "it is the tenant acted in; only a tenant above it can"
            )
            raise TenantActionDeniedError(f"cannot {verb} tenant '{tenant_id}': {why}")
        return row

    def _subtree(self, session: ScopedSession, top: str) -> set[str]:
        """The ids of ``top`` and every tenant below it, one query per level."""
        ids = {top}
        level: tuple[str, ...] = (top,)
        while level:
            level = tuple(child for child in self._children(session, level) if child not in ids)
            ids.update(level)
        return ids

    def _children(self, session: ScopedSession, parents: tuple[str, ...]) -> list[str]:
        query = session.query(self.entities.Tenant).filter(lambda t: t.parent_id in parents)
        return [row.id for row in query]

    # -- listing: last, as the method's name shadows the builtin in the class body ---------

    async def list(
        self, security: SecurityContext, params: ListParams
    ) -> tuple[list[Tenant], str | None]:
        tenant = self.entities.Tenant

        def work(session: ScopedSession) -> tuple[list[Tenant], str | None]:
            query = session.query(tenant)
            if security.tenant_id != self.root_tenant:
                # The root's subtree is the whole table: every tenant descends from the root,
                # the only tenant created without a parent.
                ids = tuple(self._subtree(session, security.tenant_id))
                query = query.filter(lambda t: t.id in ids)
            found = page(query, self.list_spec, params)
            return [to_tenant(row) for row in found.items], found.next_cursor

        return await self.database.run(security, work)
