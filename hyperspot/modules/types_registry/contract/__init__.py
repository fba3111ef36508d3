"""The types registry's public face: the only part other modules may import.

Modules that register GTS types at init declare ``uses=(TypesRegistryApi,)`` and
``depends_on=("types_registry",)`` and call ``register`` with a system context, e.g.
``SecurityContext.for_system("billing")``. Registration is atomic (all or none) and idempotent:
registering the same content again changes nothing.
"""

from __future__ import annotations

import builtins
from typing import Any, Protocol

from hyperspot.platform.rpc import contract, idempotent
from hyperspot.platform.security import SecurityContext


class GtsRegistrationError(ValueError):
    """The registry refused a registration; ``errors`` holds one line per problem.

    Across processes only the message travels: it names every problem, so nothing is lost.
    """

    def __init__(self, message: str, errors: builtins.list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors) if errors is not None else [message]


@contract(errors=(GtsRegistrationError,))
class TypesRegistryApi(Protocol):
    """What other modules may ask of the types registry, in this process or another."""

    async def register(
        self,
        ctx: SecurityContext,
        entities: builtins.list[dict[str, Any]],
        validate: bool = True,
    ) -> builtins.list[str]:
        """Register type schemas and instances, all or none; returns their ids in order.

        ``validate`` checks each entity (and its references, per the configured policy) against
        the registry plus the batch; raises ``GtsRegistrationError`` naming every problem.
        """
        ...

    @idempotent
    async def get(self, ctx: SecurityContext, gts_id: str) -> dict[str, Any] | None:
        """The content of an entity the caller may read, or None."""
        ...

    @idempotent
    async def list(self, ctx: SecurityContext, pattern: str) -> builtins.list[dict[str, Any]]:
        """The contents, in registration order, of the readable entities matching ``pattern``
        (a GTS wildcard pattern, OP#4); raises ``GtsRegistrationError`` for a malformed one."""
        ...
