"""The security context every request carries: who calls, for which tenant, with what rights."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SecurityContext:
    """Built by the gateway from a verified credential, never from client-chosen headers.

    ``visible_tenants`` is the set of tenants this context may read and change: the own tenant
    unless an operation widens it (a parent managing its children). ``system`` marks
    platform-internal work that may cross tenants; it is never built from a request.
    ``platform_admin`` marks an administrator of the root tenant; when one acts in another tenant
    (``X-Tenant-Id``), ``tenant_id`` is that tenant and ``home_tenant`` the credential's own.
    """

    subject: str
    tenant_id: str
    permissions: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    token_id: str = ""
    visible_tenants: frozenset[str] = field(default_factory=frozenset)
    system: bool = False
    platform_admin: bool = False
    home_tenant: str = ""

    def __post_init__(self) -> None:
        if not self.visible_tenants and self.tenant_id:
            object.__setattr__(self, "visible_tenants", frozenset({self.tenant_id}))
        if not self.home_tenant:
            object.__setattr__(self, "home_tenant", self.tenant_id)

    @classmethod
    def for_system(cls, reason: str) -> SecurityContext:
        return cls(subject=f"system:{reason}", tenant_id="", system=True)

    @property
    def acting_in_other_tenant(self) -> bool:
        return self.home_tenant != self.tenant_id

    def allows(self, permission: str) -> bool:
        """Holds ``permission``, or a grant of it for part of its resources (``permission:...``,
        which only scoped permissions admit; the module narrows what it does to those)."""
        if permission in self.permissions:
            return True
        prefix = permission + ":"
        return any(held.startswith(prefix) for held in self.permissions)

    def scopes(self, permission: str) -> frozenset[str] | None:
        """The scopes ``permission`` is granted for: None when granted whole, empty when not."""
        if permission in self.permissions:
            return None
        prefix = permission + ":"
        return frozenset(p[len(prefix) :] for p in self.permissions if p.startswith(prefix))
