"""The notes domain: rules about notes, written against the scoped session only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from hyperspot.modules.notes.config import NotesConfig
from hyperspot.modules.notes.contract import (
    NewNote,
    Note,
    NoteChanges,
    NoteNotFoundError,
    QuotaExceededError,
)
from hyperspot.modules.notes.domain.ports import NoteEntities
from hyperspot.platform.db import (
    ListField,
    ListParams,
    ListSpec,
    PlatformDatabase,
    ScopedSession,
    page,
)
from hyperspot.platform.security import SecurityContext


def _now() -> datetime:
    # Stored naive, in UTC, by platform convention (SQLite and MariaDB keep no zone).
    return datetime.now(UTC).replace(tzinfo=None)


def to_note(row: Any) -> Note:
    return Note.model_validate(row, from_attributes=True)


class NotesService:
    def __init__(self, database: PlatformDatabase, entities: NoteEntities, config: NotesConfig):
        self.database = database
        self.entities = entities
        self.config = config
        self.list_spec = ListSpec(
            fields={
                "title": ListField(str, sort=True),
                "body": ListField(str),
                "priority": ListField(int, sort=True),
                "pinned": ListField(bool, sort=True),
                "created_at": ListField(datetime, sort=True),
                "updated_at": ListField(datetime, sort=True),
            },
            default_order="created_at asc",
            default_limit=config.page_size,
            max_limit=config.max_page_size,
        )

    async def create(self, security: SecurityContext, note: NewNote) -> Note:
        def work(session: ScopedSession) -> Note:
            quota = self.config.max_notes_per_tenant
            if session.count(self.entities.Note) >= quota:
                raise QuotaExceededError(f"the tenant keeps {quota} notes, its quota")
            now = _now()
            row = session.create(
                self.entities.Note,
                id=str(uuid.uuid4()),
                title=note.title,
                body=note.body,
                priority=note.priority,
                pinned=note.pinned,
                created_at=now,
                updated_at=now,
            )
            return to_note(row)

        return await self.database.run(security, work)

    async def get(self, security: SecurityContext, note_id: str) -> Note:
        def work(session: ScopedSession) -> Note:
            row = session.get(self.entities.Note, note_id)
            if row is None:
                raise NoteNotFoundError(note_id)
            return to_note(row)

        return await self.database.run(security, work)

    async def update(self, security: SecurityContext, note_id: str, changes: NoteChanges) -> Note:
        values = changes.model_dump(exclude_unset=True, exclude_none=True)

        def work(session: ScopedSession) -> Note:
            row = session.update(self.entities.Note, note_id, **values, updated_at=_now())
            if row is None:
                raise NoteNotFoundError(note_id)
            return to_note(row)

        return await self.database.run(security, work)

    async def delete(self, security: SecurityContext, note_id: str) -> None:
        def work(session: ScopedSession) -> None:
            if not session.delete(self.entities.Note, note_id):
                raise NoteNotFoundError(note_id)

        await self.database.run(security, work)

    async def count(self, security: SecurityContext) -> int:
        return await self.database.run(security, lambda s: s.count(self.entities.Note))

    async def list(
        self, security: SecurityContext, params: ListParams
    ) -> tuple[list[Note], str | None]:
        def work(session: ScopedSession) -> tuple[list[Note], str | None]:
            found = page(session.query(self.entities.Note), self.list_spec, params)
            return [to_note(row) for row in found.items], found.next_cursor

        return await self.database.run(security, work)
