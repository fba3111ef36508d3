"""Tenant scoping that cannot be forgotten: every read and write starts from a scoped ``select``.

Entities declare their scoping by inheriting ``TenantScoped`` or ``Global``; the platform refuses to
start with an entity that declares neither. A ``ScopedSession`` is the only way module code reaches
entities: for a tenant-scoped entity its queries, gets, counts, updates and deletes are filtered by
the security context's visible tenants, creates take the tenant from the context, and ``tenant_id``
never changes. An empty scope matches nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from pony.orm import Database, select
from pony.orm.core import Query

from hyperspot.platform.errors import HyperspotError
from hyperspot.platform.security import SecurityContext

E = TypeVar("E")

logger = logging.getLogger("hyperspot.db")

TENANT_ATTRIBUTE = "tenant_id"


class TenantViolationError(HyperspotError):
    """Module code tried to cross or forge a tenant boundary (a bug in that code, or an attack)."""


class TenantScoped:
    """Mixin for entities that belong to one tenant; they must declare a ``tenant_id`` attribute."""

    def before_update(self) -> None:
        # Pony hook: refuses to write a changed tenant_id, however it was changed.
        original: dict[Any, Any] = self._dbvals_  # type: ignore[attr-defined]
        attribute = type(self)._adict_[TENANT_ATTRIBUTE]  # type: ignore[attr-defined]
        if attribute in original and original[attribute] != getattr(self, TENANT_ATTRIBUTE):
            raise TenantViolationError("tenant_id cannot be changed")


class Global:
    """Mixin for entities shared by all tenants (reference data): declared, never assumed."""


def check_scoping(database: Database) -> None:
    """Refuse entities without a declared scoping, and tenant entities without a tenant column."""
    problems = []
    for entity in database.entities.values():
        tenant, shared = issubclass(entity, TenantScoped), issubclass(entity, Global)
        if tenant == shared:
            problems.append(
                f"entity {entity.__name__} must inherit exactly one of TenantScoped or Global"
            )
        elif tenant and TENANT_ATTRIBUTE not in entity._adict_:
            problems.append(f"tenant-scoped entity {entity.__name__} has no tenant_id attribute")
    if problems:
        raise HyperspotError("; ".join(problems))


def _is_tenant_scoped(entity: type[Any]) -> bool:
    return issubclass(entity, TenantScoped)


class ScopedSession:
    """Entity access for one security context, inside one Pony ``db_session`` (one transaction)."""

    def __init__(self, database: Database, security: SecurityContext) -> None:
        self.database = database
        self.security = security
        self._visible = tuple(sorted(security.visible_tenants))

    def query(self, entity: type[E]) -> Query:
        """All rows of ``entity`` this context may see (a Pony query to narrow further)."""
        query = select(e for e in entity)  # type: ignore[attr-defined]
        if not _is_tenant_scoped(entity) or self.security.system:
            return query
        visible = self._visible
        if not visible:
            # Deny by default: an empty scope matches nothing (never "no filter").
            return query.filter(lambda e: e.tenant_id is None and e.tenant_id is not None)
        return query.filter(lambda e: e.tenant_id in visible)

    def find(self, entity: type[E], **equal: Any) -> Query:
        _refuse_tenant_filter(equal)
        query = self.query(entity)
        return query.filter(**equal) if equal else query

    def get(self, entity: type[E], key: Any) -> E | None:
        # Never Entity[key] or Entity.get(): those bypass the scope. Another tenant's row is
        # indistinguishable from a missing one.
        found = self.query(entity).filter(id=key).first()
        return cast(E | None, found)

    def count(self, entity: type[E], **equal: Any) -> int:
        return int(self.find(entity, **equal).count())

    def create(self, entity: type[E], **values: Any) -> E:
        if _is_tenant_scoped(entity):
            if TENANT_ATTRIBUTE in values:
                raise TenantViolationError("tenant_id is set by the platform, never by the caller")
            if not self.security.tenant_id:
                raise TenantViolationError("a context without a tenant cannot create tenant rows")
            values[TENANT_ATTRIBUTE] = self.security.tenant_id
        return cast(Callable[..., E], entity)(**values)

    def update(self, entity: type[E], key: Any, **values: Any) -> E | None:
        _refuse_tenant_filter(values, verb="changed")
        row = self.get(entity, key)
        if row is not None:
            row.set(**values)  # type: ignore[attr-defined]
        return row

    def delete(self, entity: type[E], key: Any) -> bool:
        row = self.get(entity, key)
        if row is None:
            return False
        row.delete()  # type: ignore[attr-defined]
        return True


def _refuse_tenant_filter(values: dict[str, Any], verb: str = "filtered on") -> None:
    if TENANT_ATTRIBUTE in values:
        raise TenantViolationError(f"tenant_id cannot be {verb}: the security context decides it")
