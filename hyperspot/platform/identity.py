"""Identity contract between the gateway and whichever module resolves roles to permissions.

The gateway verifies a credential and gets a ``Principal`` (who, which tenant, which roles). An
``IdentityResolver`` turns that into the request's ``SecurityContext``: effective permissions from
the tenant's roles, suspended tenants refused, and a platform administrator's act in another tenant
checked and audited. A module (``access``) registers the resolver in the ClientHub; without one,
``StaticIdentityResolver`` gives the built-in roles only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from hyperspot.platform.errors import HyperspotError, OperationError
from hyperspot.platform.security import SecurityContext

logger = logging.getLogger("hyperspot.auth")

TENANT_ADMIN = "tenant-admin"
MEMBER = "member"
BUILTIN_ROLES = (TENANT_ADMIN, MEMBER)

PERMISSION = re.compile(r"^[a-z][a-z0-9_-]*:[a-z][a-z0-9_-]*$")
# A grant of a scoped permission for part of its resources: "<permission>:<scope>".
SCOPED_GRANT = re.compile(r"^([a-z][a-z0-9_-]*:[a-z][a-z0-9_-]*):(\S{1,500})$")
ROLE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
TENANT_HEADER = "X-Tenant-Id"
PLATFORM_RESOURCE = "platform:"

CredentialKind = Literal["token", "api-key", "dev"]


class CredentialRejectedError(HyperspotError):
    """The credential is not valid (answered 401)."""


class AccessDeniedError(HyperspotError):
    """The credential is valid but may not do this (answered 403)."""


@dataclass(frozen=True)
class Permission:
    """A permission a module declares; ``member`` grants it to the built-in member role.

    Permissions on the ``platform`` resource (``platform:observe``: every tenant's traces, say)
    belong to platform administrators only, whatever roles anyone else holds.

    A ``scoped`` permission may also be granted for part of its resources, as
    ``<name>:<scope>`` (e.g. ``types:read:gts.x.core.*``): the gateway admits the holder of such a
    grant to the operations requiring ``<name>``, and the declaring module, which alone knows what
    a scope means, narrows what it shows or does to the grant's scopes.
    """

    name: str
    description: str
    member: bool = False
    scoped: bool = False

    @property
    def platform(self) -> bool:
        return self.name.startswith(PLATFORM_RESOURCE)

    def __post_init__(self) -> None:
        if not PERMISSION.match(self.name):
            raise OperationError(f"permission {self.name!r} must look like 'resource:action'")


@dataclass(frozen=True)
class Principal:
    """A verified credential: what it says, before roles are resolved."""

    subject: str
    tenant_id: str
    roles: frozenset[str]
    credential_id: str
    kind: CredentialKind


@dataclass(frozen=True)
class RequestOrigin:
    """Where a request came from, for the audit log."""

    client: str
    request_id: str
    method: str
    path: str


class PermissionCatalogue:
    """Every permission the enabled modules declare: what roles may be made of."""

    def __init__(self, declared: Iterable[tuple[str, Permission]]) -> None:
        self.permissions: dict[str, Permission] = {}
        self.owners: dict[str, str] = {}
        for owner, permission in declared:
            if permission.name in self.permissions:
                first = self.owners[permission.name]
                raise OperationError(
                    f"permission '{permission.name}' declared twice: by '{first}' and '{owner}'"
                )
            self.permissions[permission.name] = permission
            self.owners[permission.name] = owner

    def __contains__(self, name: object) -> bool:
        return name in self.permissions

    def known(self, name: str) -> bool:
        """A declared permission, or a grant of a scoped one for part of its resources."""
        if name in self.permissions:
            return True
        scoped = SCOPED_GRANT.match(name)
        declared = self.permissions.get(scoped.group(1)) if scoped else None
        return declared is not None and declared.scoped

    def builtin(self, role: str) -> frozenset[str] | None:
        """The permissions of a built-in role; None for any other role name."""
        if role == TENANT_ADMIN:
            return frozenset(p.name for p in self.permissions.values() if not p.platform)
        if role == MEMBER:
            return frozenset(p.name for p in self.permissions.values() if p.member)
        return None

    @property
    def platform(self) -> frozenset[str]:
        return frozenset(p.name for p in self.permissions.values() if p.platform)

    def unknown(self, names: Iterable[str]) -> list[str]:
        return sorted(name for name in set(names) if not self.known(name))


class IdentityResolver(Protocol):
    async def verify_api_key(self, key: str) -> Principal:
        """The principal an API key stands for; raises CredentialRejectedError."""
        ...

    async def resolve(
        self, principal: Principal, act_in: str | None, origin: RequestOrigin
    ) -> SecurityContext:
        """The request's context; raises AccessDeniedError (suspended tenant, act_in refused)."""
        ...


def build_context(
    principal: Principal,
    permissions: frozenset[str],
    *,
    catalogue: PermissionCatalogue,
    root_tenant: str,
    act_in: str | None,
) -> SecurityContext:
    """The context of a principal whose permissions are known, honouring ``act_in``.

    A platform administrator is a tenant administrator of the root tenant; only they hold the
    platform permissions, only they may act in another tenant, and they keep their permissions
    there.
    """
    platform_admin = principal.tenant_id == root_tenant and TENANT_ADMIN in principal.roles
    if platform_admin:
        permissions |= catalogue.platform
    else:
        permissions -= catalogue.platform
    tenant = principal.tenant_id
    if act_in is not None and act_in != principal.tenant_id:
        if not platform_admin:
            raise AccessDeniedError(
                f"only platform administrators may act in another tenant ({TENANT_HEADER})"
            )
        tenant = act_in
    return SecurityContext(
        subject=principal.subject,
        tenant_id=tenant,
        permissions=permissions,
        roles=principal.roles,
        token_id=principal.credential_id,
        platform_admin=platform_admin,
        home_tenant=principal.tenant_id,
    )


class StaticIdentityResolver:
    """Built-in roles only, no tenant records, no API keys: the platform without ``access``."""

    def __init__(self, catalogue: PermissionCatalogue, root_tenant: str) -> None:
        self.catalogue = catalogue
        self.root_tenant = root_tenant

    async def verify_api_key(self, key: str) -> Principal:
        raise CredentialRejectedError("API keys need the 'access' module, which is not enabled")

    async def resolve(
        self, principal: Principal, act_in: str | None, origin: RequestOrigin
    ) -> SecurityContext:
        granted: set[str] = set()
        for role in principal.roles:
            granted |= self.catalogue.builtin(role) or frozenset()
        security = build_context(
            principal,
            frozenset(granted),
            catalogue=self.catalogue,
            root_tenant=self.root_tenant,
            act_in=act_in,
        )
        if security.acting_in_other_tenant:
            # No audit store without the access module: the log is the record.
            logger.warning(
                "platform administrator '%s' acts in tenant '%s' (%s %s)",
                principal.subject,
                security.tenant_id,
                origin.method,
                origin.path,
            )
        return security
