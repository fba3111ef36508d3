"""Who may read and change the registry (spec §3.5: access control with wildcards).

``types:read`` reads everything; ``types:read:<GTS pattern>`` (e.g. ``types:read:gts.x.core.*``)
reads only the entities the pattern covers (OP#4 matching, a type also covering what derives
from it). A caller holding only scoped grants sees a registry made of what they cover: entities
outside them are absent for that caller, in lists, gets, queries and validations alike.
``types:write`` changes the registry, which every tenant shares: by default only a platform
administrator's credential may (``writers``).
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperspot.platform.gts import GtsEntity, is_valid_id, permits
from hyperspot.platform.security import SecurityContext

READ = "types:read"
WRITE = "types:write"
SCOPE_SEPARATOR = ":"


@dataclass(frozen=True)
class ReadScope:
    """What a caller may read: ``patterns`` None means everything."""

    patterns: frozenset[str] | None

    @classmethod
    def of(cls, security: SecurityContext) -> ReadScope:
        if security.system or READ in security.permissions:
            return cls(None)
        prefix = READ + SCOPE_SEPARATOR
        return cls(
            frozenset(p[len(prefix) :] for p in security.permissions if p.startswith(prefix))
        )

    @property
    def everything(self) -> bool:
        return self.patterns is None

    @property
    def anything(self) -> bool:
        return self.patterns is None or bool(self.patterns)

    def sees(self, entity: GtsEntity) -> bool:
        if self.patterns is None:
            return True
        # An anonymous instance (a UUID or other non-GTS id) is covered through its type.
        subject = entity.id if is_valid_id(entity.id) else entity.type_id
        return subject is not None and permits(self.patterns, subject)


def may_write(security: SecurityContext, platform_admins_only: bool) -> bool:
    if security.system:
        return True
    if WRITE not in security.permissions:
        return False
    return security.platform_admin or not platform_admins_only
