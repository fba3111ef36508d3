"""The ai module's declaration: the gateway of the AI provider plugins."""

from hyperspot.modules.ai.api.rest import ALL_USAGE, USAGE, USE, register_rest
from hyperspot.modules.ai.config import AiConfig
from hyperspot.modules.ai.contract import AI_PROVIDERS, AiApi
from hyperspot.modules.ai.domain.service import AiService
from hyperspot.modules.ai.infra.storage import MIGRATIONS, define_entities
from hyperspot.modules.types_registry.contract import TypesRegistryApi
from hyperspot.platform import Capability, HealthCheck, Module, ModuleContext, Permission
from hyperspot.platform.plugins import PluginGateway, declare_slot


async def init(ctx: ModuleContext[AiConfig]) -> None:
    await declare_slot(ctx.clients.get(TypesRegistryApi), AI_PROVIDERS, gateway=ctx.module.name)
    service = AiService(
        ctx.db,
        define_entities(ctx.db.schema),
        ctx.config,
        PluginGateway(AI_PROVIDERS, ctx.module.name),
        ctx.metrics,
    )
    # Other modules see the contract; the REST layer uses the service itself (streams, usage).
    ctx.clients.register(AiApi, service, owner=ctx.module.name)
    ctx.clients.register(AiService, service, owner=ctx.module.name)


async def start(ctx: ModuleContext[AiConfig]) -> None:
    # Every init has run: every provider plugin has registered.
    service = ctx.clients.get(AiService)
    # Enabled by default, the gateway also runs without providers: every model is then unknown.
    plugins = await service.gateway.discover(
        ctx.clients.get(TypesRegistryApi), ctx.clients, required=False
    )
    if not plugins:
        ctx.logger.warning("no AI provider plugin is running: enable one (e.g. modules.ai_demo)")
    await service.configure(ctx.config)


async def reload(ctx: ModuleContext[AiConfig], config: AiConfig) -> None:
    # Providers are asked for their models again: theirs may have changed with their sections.
    await ctx.clients.get(AiService).configure(config)


def health(ctx: ModuleContext[AiConfig]) -> HealthCheck:
    service = ctx.clients.get(AiService)
    providers = len(service.gateway.plugins)
    return HealthCheck(True, f"{providers} provider(s), {len(service.routes)} model(s)")


module = Module(
    name="ai",
    version="1.0.0",
    description="AI gateway: OpenAI-compatible chat and embeddings through provider plugins, "
    "per-tenant governance, usage and quotas.",
    config_model=AiConfig,
    depends_on=("types_registry",),
    capabilities=frozenset({Capability.DB, Capability.REST}),
    init=init,
    start=start,
    reload=reload,
    health=health,
    register_rest=register_rest,
    migrations=MIGRATIONS,
    provides=(AiApi,),
    uses=(TypesRegistryApi,),
    permissions=(
        Permission(USE, "Chat, embeddings, the model list and the tenant's budget", member=True),
        Permission(USAGE, "Read the tenant's AI usage"),
        Permission(ALL_USAGE, "Read every tenant's AI usage (platform administrators)"),
    ),
)
