"""The notes module's declaration."""

from hyperspot.modules.notes.api.rest import register_rest
from hyperspot.modules.notes.config import NotesConfig
from hyperspot.modules.notes.contract import NotesApi
from hyperspot.modules.notes.domain.service import NotesService
from hyperspot.modules.notes.infra.storage import MIGRATIONS, define_entities
from hyperspot.platform import Capability, Module, ModuleContext, Permission


def init(ctx: ModuleContext[NotesConfig]) -> None:
    service = NotesService(ctx.db, define_entities(ctx.db.schema), ctx.config)
    # Other modules see the contract; this module's REST layer uses the full service.
    ctx.clients.register(NotesApi, service, owner=ctx.module.name)
    ctx.clients.register(NotesService, service, owner=ctx.module.name)


module = Module(
    name="notes",
    version="1.0.0",
    description="Tenant-scoped notes: CRUD, lists with filter/sort/cursor, a quota, migrations.",
    config_model=NotesConfig,
    capabilities=frozenset({Capability.DB, Capability.REST}),
    init=init,
    register_rest=register_rest,
    migrations=MIGRATIONS,
    provides=(NotesApi,),
    permissions=(
        Permission("notes:read", "Read and list the tenant's notes", member=True),
        Permission("notes:write", "Create, change and delete the tenant's notes", member=True),
    ),
)
