"""What the domain needs from storage, declared here so that the domain never imports infra/.

Every method runs inside one unit of work (``PlatformDatabase.run``): they take its session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from hyperspot.platform.db import ScopedSession


@dataclass(frozen=True)
class StoredChange:
    """One entity as the database holds it now; ``content`` None: it was deleted."""

    gts_id: str
    content: dict[str, Any] | None
    generation: int


@dataclass(frozen=True)
class EntityRecord:
    """An entity to write: its id, what kind it is, its content."""

    gts_id: str
    is_type: bool
    type_id: str | None
    content: dict[str, Any]


class RegistryStorage(Protocol):
    def generation(self, session: ScopedSession) -> int:
        """The registry's change counter: bumped by every committed change (0 when new)."""
        ...

    def lock_generation(self, session: ScopedSession) -> int:
        """The change counter, locked until the unit of work ends: writers take turns."""
        ...

    def changes_since(self, session: ScopedSession, generation: int) -> list[StoredChange]:
        """Entities changed after ``generation`` (deleted ones with ``content`` None), in the
        order they were first registered; with 0: every live entity."""
        ...

    def save(
        self,
        session: ScopedSession,
        *,
        generation: int,
        put: list[EntityRecord],
        removed: list[str],
        actor: str,
        now: datetime,
    ) -> None:
        """Write ``put`` and delete ``removed`` as change ``generation`` (which is stored)."""
        ...
