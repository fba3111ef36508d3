"""The registry: GTS entities in the platform database, mirrored in a ``GtsStore`` for reads.

Writes go to the database first, in one transaction that holds the change counter's row, and
then to this process's store. Every worker (and every instance sharing the database) keeps its own
store: before a read it compares the counter with the one it mirrors (one indexed read, or less
often with ``sync_interval_s``) and pulls only the rows changed since. A registration validates
against the database's latest state (pulled inside its transaction), so two writers in different
workers cannot validate against each other's stale view.

Modules register at init, before the database is mapped: those registrations wait in memory
(readable at once) and are committed, validated, when this module starts, which is before any
module that depends on it starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from hyperspot.modules.types_registry.config import RefValidationPolicy, TypesRegistryConfig
from hyperspot.modules.types_registry.contract import GtsRegistrationError
from hyperspot.modules.types_registry.domain.access import WRITE, ReadScope, may_write
from hyperspot.modules.types_registry.domain.ports import (
    EntityRecord,
    RegistryStorage,
    StoredChange,
)
from hyperspot.platform.db import PlatformDatabase, ScopedSession
from hyperspot.platform.gts import GtsEntity, GtsError, GtsStore
from hyperspot.platform.security import SecurityContext

logger = logging.getLogger("hyperspot.modules.types_registry")

# The registry's tables are global: a context without tenants reads them (and nothing else).
_READER = SecurityContext(subject="types_registry", tenant_id="")
# Filtered stores kept for callers with scoped grants (one per distinct set of patterns).
_VIEW_CACHE_SIZE = 64


class RegistryAccessError(PermissionError):
    """The caller may not change the registry (answered 403)."""


class EntityNotFoundError(LookupError):
    """No entity with that id is visible to the caller (it may exist outside its grants)."""


def actor_of(security: SecurityContext) -> str:
    if security.system:
        return security.subject
    return f"{security.home_tenant}/{security.subject}"


def parse_entity(content: dict[str, Any]) -> GtsEntity:
    """The entity of a document, or GtsError with the spec's wording for a missing id."""
    try:
        return GtsEntity.from_content(content)
    except GtsError as error:
        kind = "schema" if isinstance(content, dict) and "$schema" in content else "instance entity"
        raise GtsError(f"Unable to detect GTS ID in {kind}: {error}") from None


@dataclass
class _Plan:
    """What one write changes: entities to put, identifiers to remove."""

    put: list[GtsEntity] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.put or self.removed)


@dataclass
class _Pending:
    actor: str
    entities: list[GtsEntity]
    validate: bool
    policy: RefValidationPolicy


def _apply(store: GtsStore, changes: list[StoredChange]) -> None:
    for change in changes:
        if change.content is None:
            store.remove(change.gts_id)
        else:
            store.put(GtsEntity.from_content(change.content))


class TypesRegistry:
    def __init__(
        self,
        database: PlatformDatabase,
        storage: RegistryStorage,
        config: TypesRegistryConfig,
    ) -> None:
        self.database = database
        self.storage = storage
        self.config = config
        self.store = GtsStore()
        self._generation = 0
        self._checked_at = 0.0
        # Bumped by every change of ``store``: the filtered views' cache key.
        self._version = 0
        self._ready = False
        self._pending: list[_Pending] = []
        self._lock = asyncio.Lock()
        self._views: OrderedDict[frozenset[str], tuple[int, GtsStore]] = OrderedDict()

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the database's registry, then commit what modules registered during init."""

        def load(session: ScopedSession) -> tuple[int, list[StoredChange]]:
            generation = self.storage.generation(session)
            return generation, self.storage.changes_since(session, 0)

        generation, rows = await self.database.run(_READER, load)
        store = GtsStore()
        _apply(store, rows)
        async with self._lock:
            self.store, self._generation = store, generation
            self._changed()
        self._ready = True
        pending, self._pending = self._pending, []
        for batch in pending:
            try:
                await self._register(batch.entities, batch.validate, batch.actor, batch.policy)
            except GtsRegistrationError as error:
                raise GtsRegistrationError(
                    f"the registration by {batch.actor} was refused: {error}", error.errors
                ) from None
        logger.info("types registry: %d entities (change %d)", len(self.store), self._generation)

    # -- reads --------------------------------------------------------------------------------

    async def view(self, scope: ReadScope) -> GtsStore:
        """The registry as the caller may see it, up to date with other workers' changes."""
        await self.sync()
        if scope.patterns is None:
            return self.store
        cached = self._views.get(scope.patterns)
        if cached is not None and cached[0] == self._version:
            self._views.move_to_end(scope.patterns)
            return cached[1]
        visible = GtsStore({e.id: e for e in self.store.entities() if scope.sees(e)})
        self._views[scope.patterns] = (self._version, visible)
        if len(self._views) > _VIEW_CACHE_SIZE:
            self._views.popitem(last=False)
        return visible

    async def get(self, scope: ReadScope, gts_id: str) -> GtsEntity:
        if not scope.anything:
            raise EntityNotFoundError(gts_id)
        await self.sync()
        entity = self.store.get(gts_id)
        if entity is None or not scope.sees(entity):
            raise EntityNotFoundError(gts_id)
        return entity

    async def sync(self) -> None:
        """Pull the changes other workers committed since this store was last brought up to
        date (at most every ``sync_interval_s``)."""
        if not self._ready:
            return
        now = time.monotonic()
        interval = self.config.sync_interval_s
        if interval and now - self._checked_at < interval:
            return
        generation = await self.database.run(_READER, self.storage.generation)
        self._checked_at = now
        if generation <= self._generation:
            return
        async with self._lock:
            base = self._generation
            if generation <= base:
                return

            def pull(session: ScopedSession) -> tuple[int, list[StoredChange]]:
                # The counter first: every row of a change up to it is committed with it.
                current = self.storage.generation(session)
                return current, self.storage.changes_since(session, base)

            current, changes = await self.database.run(_READER, pull)
            _apply(self.store, changes)
            self._generation = max(self._generation, current)
            self._changed()

    # -- writes -------------------------------------------------------------------------------

    def check_writer(self, security: SecurityContext) -> None:
        if not may_write(security, self.config.writers == "platform-admins"):
            if WRITE in security.permissions:
                raise RegistryAccessError(
                    "the types registry is shared by every tenant: only platform "
                    "administrators may change it"
                )
            raise RegistryAccessError("the credential lacks the permission 'types:write'")

    async def register(
        self,
        security: SecurityContext,
        contents: list[dict[str, Any]],
        validate: bool,
        ref_validation: RefValidationPolicy | None = None,
    ) -> list[GtsEntity]:
        """Register ``contents`` all or none; raises GtsRegistrationError naming each problem.

        ``ref_validation`` overrides the configured x-gts-ref policy for this registration.
        """
        self.check_writer(security)
        entities = self.parse(contents)
        actor = actor_of(security)
        policy = ref_validation or self.config.ref_validation
        if not self._ready:
            self._pending.append(_Pending(actor, entities, validate, policy))
            for entity in entities:
                self.store.put(entity)
            self._changed()
            return entities
        await self._register(entities, validate, actor, policy)
        return entities

    def parse(self, contents: list[dict[str, Any]]) -> list[GtsEntity]:
        problems: list[str] = []
        entities: list[GtsEntity] = []
        seen: set[str] = set()
        for index, content in enumerate(contents):
            try:
                entity = parse_entity(content)
            except GtsError as error:
                problems.append(f"entity {index}: {error}")
                continue
            if entity.id in seen:
                problems.append(f"entity {index}: '{entity.id}' appears twice in the batch")
            seen.add(entity.id)
            entities.append(entity)
        if problems:
            raise GtsRegistrationError("; ".join(problems), problems)
        return entities

    async def _register(
        self, entities: list[GtsEntity], validate: bool, actor: str, policy: RefValidationPolicy
    ) -> None:
        allow_updates = self.config.allow_updates

        def plan(view: GtsStore) -> _Plan:
            changed: list[GtsEntity] = []
            problems: list[str] = []
            for entity in entities:
                # Checks every type schema registration runs, validating or not (§9.6, §9.11).
                if entity.is_type:
                    problems.extend(
                        f"{entity.id}: {p}"
                        for p in _validation().check_schema_basic(entity.content)
                    )
                existing = view.get(entity.id)
                if existing is not None and existing.content == entity.content:
                    continue  # the same content again: nothing to do
                if existing is not None and not allow_updates:
                    problems.append(
                        f"Entity '{entity.id}' is already registered with different content"
                    )
                    continue
                changed.append(entity)
            if problems:
                raise GtsRegistrationError("; ".join(problems), problems)
            for entity in changed:
                view.put(entity)
            if validate:
                for entity in entities:
                    for problem in _validation().check_registration(view, entity, policy):
                        problems.append(f"{entity.id}: {problem}")
                if problems:
                    raise GtsRegistrationError(
                        "Validation failed: " + "; ".join(problems), problems
                    )
            return _Plan(put=changed)

        await self._write(plan, actor)

    async def delete(self, security: SecurityContext, gts_id: str) -> None:
        self.check_writer(security)
        if not self._ready:
            raise EntityNotFoundError(gts_id)

        def plan(view: GtsStore) -> _Plan:
            if gts_id not in view:
                raise EntityNotFoundError(gts_id)
            return _Plan(removed=[gts_id])

        await self._write(plan, actor_of(security))

    async def _write(self, planner: Callable[[GtsStore], _Plan], actor: str) -> None:
        async with self._lock:
            # Concurrent first writes in several workers may collide creating the counter's row.
            generation, pulled, plan = await self.database.run(
                _READER, self._unit(self._generation, planner, actor), retry_conflicts=True
            )
            _apply(self.store, pulled)
            for entity in plan.put:
                self.store.put(entity)
            for gts_id in plan.removed:
                self.store.remove(gts_id)
            self._generation = max(self._generation, generation)
            self._changed()

    def _unit(
        self, base: int, planner: Callable[[GtsStore], _Plan], actor: str
    ) -> Callable[[ScopedSession], tuple[int, list[StoredChange], _Plan]]:
        """One write's unit of work: take the counter, catch up from ``base``, plan, save."""

        def work(session: ScopedSession) -> tuple[int, list[StoredChange], _Plan]:
            generation = self.storage.lock_generation(session)
            pulled = self.storage.changes_since(session, base) if generation > base else []
            view = self.store.snapshot()
            _apply(view, pulled)
            plan = planner(view)
            if not plan.empty:
                generation += 1
                self.storage.save(
                    session,
                    generation=generation,
                    put=[EntityRecord(e.id, e.is_type, e.type_id, e.content) for e in plan.put],
                    removed=plan.removed,
                    actor=actor,
                    now=datetime.now(UTC).replace(tzinfo=None),
                )
            return generation, pulled, plan

        return work

    def _changed(self) -> None:
        self._version += 1


def _validation() -> ModuleType:
    # jsonschema and the validators load at the first registration, not at every process start.
    from hyperspot.platform.gts import validation

    return validation
