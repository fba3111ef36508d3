"""The types registry's declaration: a system module that keeps the platform's GTS registry."""

from hyperspot.modules.types_registry.api.rest import register_rest
from hyperspot.modules.types_registry.config import TypesRegistryConfig
from hyperspot.modules.types_registry.contract import TypesRegistryApi
from hyperspot.modules.types_registry.domain.access import READ, WRITE
from hyperspot.modules.types_registry.domain.registry import TypesRegistry
from hyperspot.modules.types_registry.domain.service import TypesRegistryService
from hyperspot.modules.types_registry.infra.storage import MIGRATIONS, PonyRegistryStorage
from hyperspot.platform import Capability, Module, ModuleContext, Permission


def init(ctx: ModuleContext[TypesRegistryConfig]) -> None:
    registry = TypesRegistry(ctx.db, PonyRegistryStorage(ctx.db.schema), ctx.config)
    # Other modules see the contract; the REST layer uses the registry itself.
    ctx.clients.register(TypesRegistryApi, TypesRegistryService(registry), owner=ctx.module.name)
    ctx.clients.register(TypesRegistry, registry, owner=ctx.module.name)


async def start(ctx: ModuleContext[TypesRegistryConfig]) -> None:
    await ctx.clients.get(TypesRegistry).start()


module = Module(
    name="types_registry",
    version="1.0.0",
    description="The GTS types registry: type schemas and well-known instances, the spec's API.",
    config_model=TypesRegistryConfig,
    capabilities=frozenset({Capability.DB, Capability.REST, Capability.SYSTEM}),
    init=init,
    start=start,
    register_rest=register_rest,
    migrations=MIGRATIONS,
    provides=(TypesRegistryApi,),
    permissions=(
        # Not granted to members by default: what a tenant reads is a role's decision.
        Permission(
            READ, "Read the GTS types registry (types:read:<pattern> reads a part)", scoped=True
        ),
        Permission(WRITE, "Register and remove GTS types and instances (platform-wide)"),
    ),
)
