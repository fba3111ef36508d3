"""The notes module's public face: the only part other modules may import."""

from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from hyperspot.platform.fields import NonBlank, UtcDatetime
from hyperspot.platform.rpc import contract, idempotent
from hyperspot.platform.security import SecurityContext


class Note(BaseModel):
    id: str
    title: str
    body: str
    priority: int
    pinned: bool
    created_at: UtcDatetime
    updated_at: UtcDatetime


class NewNote(BaseModel):
    # extra="forbid": a forged tenant_id (or any unknown field) in a body is refused, not ignored.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"title": "Quarterly plan", "body": "Draft", "priority": 2}]
        },
    )

    title: NonBlank = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=100_000)
    priority: int = Field(default=0, ge=0, le=9)
    pinned: bool = False


class NoteChanges(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"title": "Quarterly plan (final)", "pinned": True}]},
    )

    title: NonBlank | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = Field(default=None, max_length=100_000)
    priority: int | None = Field(default=None, ge=0, le=9)
    pinned: bool | None = None


class NoteNotFoundError(LookupError):
    """No note with that id is visible to the caller (it may exist for another tenant)."""


class QuotaExceededError(RuntimeError):
    """The tenant already keeps as many notes as its quota allows."""


@contract(errors=(NoteNotFoundError, QuotaExceededError))
class NotesApi(Protocol):
    """What other modules may ask of the notes module, in this process or another."""

    async def create(self, security: SecurityContext, note: NewNote) -> Note: ...

    @idempotent
    async def get(self, security: SecurityContext, note_id: str) -> Note: ...

    async def update(
        self, security: SecurityContext, note_id: str, changes: NoteChanges
    ) -> Note: ...

    async def delete(self, security: SecurityContext, note_id: str) -> None: ...

    @idempotent
    async def count(self, security: SecurityContext) -> int: ...
