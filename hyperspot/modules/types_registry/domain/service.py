"""The TypesRegistryApi contract, served by the registry."""

from __future__ import annotations

import builtins
from typing import Any

from hyperspot.modules.types_registry.contract import GtsRegistrationError
from hyperspot.modules.types_registry.domain.access import ReadScope
from hyperspot.modules.types_registry.domain.registry import (
    EntityNotFoundError,
    RegistryAccessError,
    TypesRegistry,
)
from hyperspot.platform.gts import GtsError, is_valid_pattern, match_pattern
from hyperspot.platform.security import SecurityContext


class TypesRegistryService:
    """What other modules call (TypesRegistryApi): contents in, contents out."""

    def __init__(self, registry: TypesRegistry) -> None:
        self.registry = registry

    async def register(
        self,
        ctx: SecurityContext,
        entities: builtins.list[dict[str, Any]],
        validate: bool = True,
    ) -> builtins.list[str]:
        try:
            registered = await self.registry.register(ctx, entities, validate)
        except RegistryAccessError as error:
            # The contract's one error type: a refusal, whatever its reason.
            raise GtsRegistrationError(str(error)) from None
        return [entity.id for entity in registered]

    async def get(self, ctx: SecurityContext, gts_id: str) -> dict[str, Any] | None:
        try:
            entity = await self.registry.get(ReadScope.of(ctx), gts_id)
        except EntityNotFoundError:
            return None
        return dict(entity.content)

    async def list(self, ctx: SecurityContext, pattern: str) -> builtins.list[dict[str, Any]]:
        if not is_valid_pattern(pattern):
            raise GtsRegistrationError(f"not a GTS identifier or wildcard pattern: {pattern!r}")
        view = await self.registry.view(ReadScope.of(ctx))
        found = []
        for entity in view.entities():
            subject = entity.id
            try:
                matched = match_pattern(pattern, subject)
            except GtsError:
                matched = entity.type_id is not None and match_pattern(pattern, entity.type_id)
            if matched:
                found.append(dict(entity.content))
        return found
