"""The identity resolver: a verified principal becomes the request's security context.

Runs on every authenticated request, so what it reads (tenant lineage, the tenant's custom roles,
the subject's assignments, API keys) is cached for ``auth.cache_ttl_s`` and dropped at once here
when this instance changes it; other instances see a change within that time.
"""

from __future__ import annotations

from typing import Any

from cachetools import TTLCache

from hyperspot.modules.access.domain.keys import parse_key, secret_matches
from hyperspot.modules.access.domain.ports import AccessEntities
from hyperspot.modules.audit.contract import AuditLogApi, AuditResult
from hyperspot.modules.tenants.contract import TenantsApi, TenantState
from hyperspot.platform.db import PlatformDatabase, ScopedSession
from hyperspot.platform.identity import (
    AccessDeniedError,
    CredentialRejectedError,
    PermissionCatalogue,
    Principal,
    RequestOrigin,
    build_context,
)
from hyperspot.platform.security import SecurityContext

CACHE_SIZE = 50_000
REJECTED_KEY = "the API key is not valid (unknown, malformed or revoked)"


def reader(tenant_id: str) -> SecurityContext:
    """The context the resolver reads one tenant's access records with."""
    return SecurityContext(subject="access:resolver", tenant_id=tenant_id)


def split_words(text: str | None) -> frozenset[str]:
    return frozenset((text or "").split())


class AccessResolver:
    def __init__(
        self,
        database: PlatformDatabase,
        entities: AccessEntities,
        catalogue: PermissionCatalogue,
        tenants: TenantsApi,
        audit: AuditLogApi,
        *,
        root_tenant: str,
        cache_ttl_s: float,
    ) -> None:
        self.database = database
        self.entities = entities
        self.catalogue = catalogue
        self.tenants = tenants
        self.audit = audit
        self.root_tenant = root_tenant
        ttl = max(cache_ttl_s, 1e-6)  # TTLCache needs a positive ttl; ~0 means "no reuse"
        self._roles: TTLCache[str, dict[str, frozenset[str]]] = TTLCache(CACHE_SIZE, ttl)
        self._assigned: TTLCache[tuple[str, str], frozenset[str]] = TTLCache(CACHE_SIZE, ttl)
        self._keys: TTLCache[str, tuple[str, Principal] | None] = TTLCache(CACHE_SIZE, ttl)
        # Bumped by every local change: a read that overlapped one is used but not cached.
        self._generation = 0

    def forget(self, tenant_id: str) -> None:
        """Drop what is cached about a tenant after this instance changed its access records."""
        self._generation += 1
        self._roles.pop(tenant_id, None)
        for subject_key in [k for k in self._assigned if k[0] == tenant_id]:
            self._assigned.pop(subject_key, None)
        for api_key in [k for k in self._keys if k.startswith(f"{tenant_id}_")]:
            self._keys.pop(api_key, None)

    async def verify_api_key(self, key: str) -> Principal:
        parsed = parse_key(key)
        if parsed is None:
            raise CredentialRejectedError(REJECTED_KEY)
        cache_key = f"{parsed.tenant_id}_{parsed.key_id}"
        if cache_key in self._keys:
            found = self._keys[cache_key]
        else:

            def work(session: ScopedSession) -> tuple[str, Principal] | None:
                row = session.get(self.entities.ApiKey, parsed.key_id)
                if row is None or row.revoked_at is not None:
                    return None
                return row.secret_hash, Principal(
                    subject=row.subject,
                    tenant_id=row.tenant_id,
                    roles=split_words(row.roles),
                    credential_id=row.id,
                    kind="api-key",
                )

            generation = self._generation
            found = await self.database.run(reader(parsed.tenant_id), work)
            if generation == self._generation:
                self._keys[cache_key] = found
        # The secret is checked on every request, cached or not.
        if found is None or not secret_matches(parsed.secret, found[0]):
            raise CredentialRejectedError(REJECTED_KEY)
        return found[1]

    async def resolve(
        self, principal: Principal, act_in: str | None, origin: RequestOrigin
    ) -> SecurityContext:
        await self.require_usable(principal.tenant_id)
        roles = principal.roles | await self.assigned_roles(principal.tenant_id, principal.subject)
        permissions = await self.permissions_of(principal.tenant_id, roles)
        security = build_context(
            principal,
            permissions,
            catalogue=self.catalogue,
            root_tenant=self.root_tenant,
            act_in=act_in,
        )
        if security.acting_in_other_tenant:
            if not await self.tenants.lineage(security.tenant_id):
                raise AccessDeniedError(f"X-Tenant-Id names no tenant: {security.tenant_id!r}")
            await self.audit.record(
                security,
                "platform.act-in-tenant",
                f"{origin.method} {origin.path}",
                AuditResult.SUCCESS,
                origin=origin,
            )
        return security

    async def require_usable(self, tenant_id: str) -> None:
        lineage = await self.tenants.lineage(tenant_id)
        if not lineage:
            raise AccessDeniedError(f"tenant '{tenant_id}' does not exist")
        suspended = next((t for t in lineage if t.state == TenantState.SUSPENDED), None)
        if suspended is not None:
            why = "" if suspended.id == tenant_id else f" (its ancestor '{suspended.id}' is)"
            raise AccessDeniedError(f"tenant '{tenant_id}' is suspended{why}")

    async def permissions_of(self, tenant_id: str, roles: frozenset[str]) -> frozenset[str]:
        custom = await self.custom_roles(tenant_id)
        granted: set[str] = set()
        for role in roles:
            builtin = self.catalogue.builtin(role)
            granted |= builtin if builtin is not None else custom.get(role, frozenset())
        return frozenset(granted)

    async def custom_roles(self, tenant_id: str) -> dict[str, frozenset[str]]:
        cached = self._roles.get(tenant_id)
        if cached is not None:
            return cached

        def work(session: ScopedSession) -> dict[str, frozenset[str]]:
            rows: list[Any] = list(session.query(self.entities.Role))
            # A permission of a module that is no longer enabled grants nothing.
            return {
                row.name: frozenset(
                    word for word in split_words(row.permissions) if self.catalogue.known(word)
                )
                for row in rows
            }

        generation = self._generation
        roles = await self.database.run(reader(tenant_id), work)
        if generation == self._generation:
            self._roles[tenant_id] = roles
        return roles

    async def assigned_roles(self, tenant_id: str, subject: str) -> frozenset[str]:
        cached = self._assigned.get((tenant_id, subject))
        if cached is not None:
            return cached

        def work(session: ScopedSession) -> frozenset[str]:
            rows = session.find(self.entities.Assignment, subject=subject)
            return frozenset(row.role for row in rows)

        generation = self._generation
        roles = await self.database.run(reader(tenant_id), work)
        if generation == self._generation:
            self._assigned[(tenant_id, subject)] = roles
        return roles
