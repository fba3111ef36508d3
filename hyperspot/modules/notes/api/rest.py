"""The notes REST operations. Every one requires a permission: notes are tenant data."""

from pydantic import BaseModel, Field

from hyperspot.modules.notes.config import NotesConfig
from hyperspot.modules.notes.contract import (
    NewNote,
    Note,
    NoteChanges,
    NoteNotFoundError,
    QuotaExceededError,
)
from hyperspot.modules.notes.domain.service import NotesService
from hyperspot.platform import Call, ModuleContext, Problem, Reply, RestApi
from hyperspot.platform.fields import UuidText


class NotePath(BaseModel):
    note_id: UuidText = Field(description="The note's id (a UUID).")


class NoteList(BaseModel):
    items: list[Note]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


def _not_found(error: NoteNotFoundError) -> Problem:
    # The same answer whether the note is missing or another tenant's: no existence leak.
    return Problem(404, f"no note {error}")


def register_rest(ctx: ModuleContext[NotesConfig], api: RestApi) -> None:
    service = ctx.clients.get(NotesService)
    list_query = service.list_spec.params_model("NoteListQuery")
    api.problems(NoteNotFoundError, _not_found)
    api.problems(QuotaExceededError, lambda error: Problem(403, str(error), kind="quota-exceeded"))

    async def create(call: Call) -> Reply:
        note = await service.create(call.security, call.body(NewNote))
        return Reply(201, note, headers={"Location": f"/notes/v1/notes/{note.id}"})

    async def list_notes(call: Call) -> NoteList:
        items, cursor = await service.list(call.security, call.query(list_query))
        return NoteList(items=items, next_cursor=cursor)

    async def get(call: Call) -> Note:
        return await service.get(call.security, call.path(NotePath).note_id)

    async def update(call: Call) -> Note:
        note_id = call.path(NotePath).note_id
        return await service.update(call.security, note_id, call.body(NoteChanges))

    async def delete(call: Call) -> Reply:
        await service.delete(call.security, call.path(NotePath).note_id)
        return Reply(204)

    (
        api.operation("POST", "/notes/v1/notes", "notes.create_note")
        .summary("Create a note in the caller's tenant")
        .body(NewNote)
        .response(201, Note)
        .error(403, "Missing permission, or the tenant's note quota is reached")
        .require("notes:write")
        .rate_limit("standard")
        .handler(create)
    )
    (
        api.operation("GET", "/notes/v1/notes", "notes.list_notes")
        .summary("List the caller's notes: $filter, $orderby, limit, cursor")
        .query(list_query)
        .response(200, NoteList)
        .require("notes:read")
        .handler(list_notes)
    )
    (
        api.operation("GET", "/notes/v1/notes/{note_id}", "notes.get_note")
        .summary("Read one note")
        .path_params(NotePath)
        .response(200, Note)
        .error(404, "No such note in the caller's tenant")
        .require("notes:read")
        .handler(get)
    )
    (
        api.operation("PATCH", "/notes/v1/notes/{note_id}", "notes.update_note")
        .summary("Change a note's fields")
        .path_params(NotePath)
        .body(NoteChanges)
        .response(200, Note)
        .error(404, "No such note in the caller's tenant")
        .require("notes:write")
        .handler(update)
    )
    (
        api.operation("DELETE", "/notes/v1/notes/{note_id}", "notes.delete_note")
        .summary("Delete a note")
        .path_params(NotePath)
        .response(204, None, "Deleted")
        .error(404, "No such note in the caller's tenant")
        .require("notes:write")
        .handler(delete)
    )
