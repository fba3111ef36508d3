"""Administering access: custom roles, role assignments and API keys, with delegation.

A caller administers its own tenant and, by delegation, every tenant below it; anything else is
answered like a missing tenant. Nobody grants a permission they do not hold: a role, an assignment
or an API key whose permissions exceed the caller's is refused, and so is changing or removing one
that does. Every change, and every refused escalation, goes to the audit log.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from hyperspot.modules.access.contract import (
    AccessError,
    ApiKey,
    Assignment,
    CreatedApiKey,
    NewApiKey,
    NewAssignment,
    NewRole,
    Role,
    RoleChanges,
)
from hyperspot.modules.access.domain.keys import new_key
from hyperspot.modules.access.domain.ports import AccessEntities
from hyperspot.modules.access.domain.resolver import AccessResolver, split_words
from hyperspot.modules.audit.contract import AuditLogApi, AuditResult
from hyperspot.modules.tenants.contract import TenantsApi
from hyperspot.platform.db import PlatformDatabase, ScopedSession
from hyperspot.platform.identity import (
    BUILTIN_ROLES,
    MEMBER,
    SCOPED_GRANT,
    TENANT_ADMIN,
    PermissionCatalogue,
    RequestOrigin,
)
from hyperspot.platform.security import SecurityContext

T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _actor(security: SecurityContext) -> str:
    return f"{security.home_tenant}/{security.subject}"


class AccessService:
    def __init__(
        self,
        database: PlatformDatabase,
        entities: AccessEntities,
        *,
        catalogue: PermissionCatalogue,
        tenants: TenantsApi,
        audit: AuditLogApi,
        resolver: AccessResolver,
    ) -> None:
        self.database = database
        self.entities = entities
        self.catalogue = catalogue
        self.tenants = tenants
        self.audit = audit
        self.resolver = resolver

    # -- delegation ------------------------------------------------------------------------

    async def in_tenant(self, security: SecurityContext, tenant_id: str) -> SecurityContext:
        """The caller's context moved to ``tenant_id``: its own tenant or one below it."""
        lineage = await self.tenants.lineage(tenant_id)
        if security.tenant_id not in {tenant.id for tenant in lineage}:
            raise AccessError(404, f"no tenant {tenant_id}")
        return dataclasses.replace(
            security, tenant_id=tenant_id, visible_tenants=frozenset({tenant_id})
        )

    async def _refuse_escalation(
        self,
        security: SecurityContext,
        wanted: frozenset[str],
        action: str,
        target: str,
        origin: RequestOrigin | None,
    ) -> None:
        beyond = sorted(p for p in wanted if not _holds(security.permissions, p))
        if beyond:
            detail = f"permissions the caller does not hold: {', '.join(beyond)}"
            await self.audit.record(
                security, action, target, AuditResult.DENIED, origin=origin, detail=detail
            )
            raise AccessError(403, f"cannot grant {detail}")

    def _known(self, permissions: list[str]) -> frozenset[str]:
        unknown = self.catalogue.unknown(permissions)
        if unknown:
            raise AccessError(422, f"no such permission: {', '.join(unknown)}")
        return frozenset(permissions)

    async def _run(self, security: SecurityContext, work: Callable[[ScopedSession], T]) -> T:
        try:
            return await self.database.run(security, work)
        finally:
            self.resolver.forget(security.tenant_id)

    # -- roles -----------------------------------------------------------------------------

    async def roles(self, security: SecurityContext, tenant_id: str) -> list[Role]:
        scoped = await self.in_tenant(security, tenant_id)
        custom = await self.database.run(
            scoped, lambda session: [_role(row) for row in session.query(self.entities.Role)]
        )
        builtin = [
            Role(
                name=name,
                description=_BUILTIN_DESCRIPTIONS[name],
                permissions=sorted(self.catalogue.builtin(name) or ()),
                builtin=True,
            )
            for name in BUILTIN_ROLES
        ]
        return builtin + sorted(custom, key=lambda role: role.name)

    async def role_permissions(self, tenant_id: str, role: str) -> frozenset[str] | None:
        builtin = self.catalogue.builtin(role)
        if builtin is not None:
            return builtin
        return (await self.resolver.custom_roles(tenant_id)).get(role)

    async def create_role(
        self, security: SecurityContext, tenant_id: str, new: NewRole, origin: RequestOrigin
    ) -> Role:
        scoped = await self.in_tenant(security, tenant_id)
        if new.name in BUILTIN_ROLES:
            raise AccessError(409, f"'{new.name}' is a built-in role")
        wanted = self._known(new.permissions)
        await self._refuse_escalation(scoped, wanted, "access.create-role", new.name, origin)

        def work(session: ScopedSession) -> Role:
            if session.count(self.entities.Role, name=new.name):
                raise AccessError(409, f"role '{new.name}' already exists")
            row = session.create(
                self.entities.Role,
                id=str(uuid.uuid4()),
                name=new.name,
                description=new.description,
                permissions=" ".join(sorted(wanted)),
                created_at=_now(),
                created_by=_actor(security),
            )
            return _role(row)

        role = await self._run(scoped, work)
        await self.audit.record(
            scoped, "access.create-role", new.name, AuditResult.SUCCESS, origin=origin
        )
        return role

    async def update_role(
        self,
        security: SecurityContext,
        tenant_id: str,
        name: str,
        changes: RoleChanges,
        origin: RequestOrigin,
    ) -> Role:
        scoped = await self.in_tenant(security, tenant_id)
        current = await self._custom_role(scoped, name)
        wanted = (
            self._known(changes.permissions)
            if changes.permissions is not None
            else frozenset(current.permissions)
        )
        # Changing a role changes the rights of everyone holding it: both sides must be held.
        await self._refuse_escalation(
            scoped, wanted | frozenset(current.permissions), "access.update-role", name, origin
        )

        def work(session: ScopedSession) -> Role:
            row = session.find(self.entities.Role, name=name).first()
            if row is None:
                raise AccessError(404, f"no role {name}")
            if changes.description is not None:
                row.description = changes.description
            row.permissions = " ".join(sorted(wanted))
            return _role(row)

        role = await self._run(scoped, work)
        await self.audit.record(
            scoped, "access.update-role", name, AuditResult.SUCCESS, origin=origin
        )
        return role

    async def delete_role(
        self, security: SecurityContext, tenant_id: str, name: str, origin: RequestOrigin
    ) -> None:
        scoped = await self.in_tenant(security, tenant_id)
        current = await self._custom_role(scoped, name)
        await self._refuse_escalation(
            scoped, frozenset(current.permissions), "access.delete-role", name, origin
        )

        def work(session: ScopedSession) -> None:
            if session.count(self.entities.Assignment, role=name):
                raise AccessError(409, f"role '{name}' is still assigned; remove those first")
            row = session.find(self.entities.Role, name=name).first()
            if row is not None:
                row.delete()

        await self._run(scoped, work)
        await self.audit.record(
            scoped, "access.delete-role", name, AuditResult.SUCCESS, origin=origin
        )

    async def _custom_role(self, scoped: SecurityContext, name: str) -> Role:
        if name in BUILTIN_ROLES:
            raise AccessError(409, f"'{name}' is a built-in role and cannot be changed")

        def work(session: ScopedSession) -> Role | None:
            row = session.find(self.entities.Role, name=name).first()
            return None if row is None else _role(row)

        role = await self.database.run(scoped, work)
        if role is None:
            raise AccessError(404, f"no role {name}")
        return role

    # -- assignments -----------------------------------------------------------------------

    async def assignments(
        self, security: SecurityContext, tenant_id: str, subject: str | None
    ) -> list[Assignment]:
        scoped = await self.in_tenant(security, tenant_id)

        def work(session: ScopedSession) -> list[Assignment]:
            filters = {"subject": subject} if subject else {}
            rows: list[Any] = list(session.find(self.entities.Assignment, **filters))
            return sorted(
                (Assignment.model_validate(row, from_attributes=True) for row in rows),
                key=lambda a: (a.subject, a.role),
            )

        return await self.database.run(scoped, work)

    async def assign(
        self,
        security: SecurityContext,
        tenant_id: str,
        new: NewAssignment,
        origin: RequestOrigin,
    ) -> Assignment:
        scoped = await self.in_tenant(security, tenant_id)
        granted = await self.role_permissions(tenant_id, new.role)
        if granted is None:
            raise AccessError(422, f"tenant {tenant_id} has no role '{new.role}'")
        target = f"{new.subject} as {new.role}"
        await self._refuse_escalation(scoped, granted, "access.assign-role", target, origin)

        def work(session: ScopedSession) -> Assignment:
            if session.count(self.entities.Assignment, subject=new.subject, role=new.role):
                raise AccessError(409, f"{new.subject} already has the role '{new.role}'")
            row = session.create(
                self.entities.Assignment,
                id=str(uuid.uuid4()),
                subject=new.subject,
                role=new.role,
                created_at=_now(),
                created_by=_actor(security),
            )
            return Assignment.model_validate(row, from_attributes=True)

        assignment = await self._run(scoped, work)
        await self.audit.record(
            scoped, "access.assign-role", target, AuditResult.SUCCESS, origin=origin
        )
        return assignment

    async def unassign(
        self,
        security: SecurityContext,
        tenant_id: str,
        assignment_id: str,
        origin: RequestOrigin,
    ) -> None:
        scoped = await self.in_tenant(security, tenant_id)

        def read(session: ScopedSession) -> Assignment | None:
            row = session.get(self.entities.Assignment, assignment_id)
            return None if row is None else Assignment.model_validate(row, from_attributes=True)

        assignment = await self.database.run(scoped, read)
        if assignment is None:
            raise AccessError(404, f"no role assignment {assignment_id}")
        target = f"{assignment.subject} as {assignment.role}"
        held = await self.role_permissions(tenant_id, assignment.role) or frozenset()
        await self._refuse_escalation(scoped, held, "access.unassign-role", target, origin)
        await self._run(
            scoped, lambda session: session.delete(self.entities.Assignment, assignment_id)
        )
        await self.audit.record(
            scoped, "access.unassign-role", target, AuditResult.SUCCESS, origin=origin
        )

    # -- API keys --------------------------------------------------------------------------

    async def api_keys(self, security: SecurityContext) -> list[ApiKey]:
        def work(session: ScopedSession) -> list[ApiKey]:
            rows: list[Any] = list(session.query(self.entities.ApiKey))
            return sorted((_api_key(row) for row in rows), key=lambda k: k.created_at)

        return await self.database.run(security, work)

    async def create_api_key(
        self, security: SecurityContext, new: NewApiKey, origin: RequestOrigin
    ) -> CreatedApiKey:
        granted: set[str] = set()
        for role in new.roles:
            permissions = await self.role_permissions(security.tenant_id, role)
            if permissions is None:
                raise AccessError(422, f"tenant {security.tenant_id} has no role '{role}'")
            granted |= permissions
        await self._refuse_escalation(
            security, frozenset(granted), "access.create-api-key", new.name, origin
        )
        key_id, key, secret_hash = new_key(security.tenant_id)

        def work(session: ScopedSession) -> ApiKey:
            row = session.create(
                self.entities.ApiKey,
                id=key_id,
                name=new.name,
                subject=f"api-key:{new.name}",
                roles=" ".join(sorted(set(new.roles))),
                secret_hash=secret_hash,
                created_at=_now(),
                created_by=_actor(security),
            )
            return _api_key(row)

        created = await self._run(security, work)
        await self.audit.record(
            security,
            "access.create-api-key",
            f"{new.name} ({key_id})",
            AuditResult.SUCCESS,
            origin=origin,
        )
        return CreatedApiKey(**created.model_dump(), key=key)

    async def revoke_api_key(
        self, security: SecurityContext, key_id: str, origin: RequestOrigin
    ) -> ApiKey:
        def work(session: ScopedSession) -> ApiKey:
            row = session.get(self.entities.ApiKey, key_id)
            if row is None:
                raise AccessError(404, f"no API key {key_id}")
            if row.revoked_at is None:
                row.revoked_at = _now()
            return _api_key(row)

        revoked = await self._run(security, work)
        await self.audit.record(
            security,
            "access.revoke-api-key",
            f"{revoked.name} ({key_id})",
            AuditResult.SUCCESS,
            origin=origin,
        )
        return revoked


_BUILTIN_DESCRIPTIONS = {
    TENANT_ADMIN: "Every permission in the tenant; in the root tenant, platform administration",
    MEMBER: "The everyday permissions modules grant members",
}


def _holds(held: frozenset[str], permission: str) -> bool:
    """Whether ``held`` covers ``permission``: itself, or the whole of a scoped grant's."""
    if permission in held:
        return True
    scoped = SCOPED_GRANT.match(permission)
    return scoped is not None and scoped.group(1) in held


def _role(row: Any) -> Role:
    return Role(
        name=row.name,
        description=row.description,
        permissions=sorted(split_words(row.permissions)),
        builtin=False,
    )


def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        subject=row.subject,
        roles=sorted(split_words(row.roles)),
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
    )
