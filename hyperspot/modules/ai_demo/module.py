"""The ai_demo module: registers the demo provider with the ai gateway (no REST of its own)."""

from hyperspot.modules.ai.contract import AI_PROVIDERS
from hyperspot.modules.ai_demo.config import AiDemoConfig
from hyperspot.modules.ai_demo.domain.provider import DemoProvider
from hyperspot.modules.types_registry.contract import TypesRegistryApi
from hyperspot.platform import Module, ModuleContext
from hyperspot.platform.plugins import register_plugin

PLUGIN_NAME = "demo"
PLUGIN_INSTANCE = "hx.core.ai_demo.plugin.v1"


def provider_for(config: AiDemoConfig) -> DemoProvider:
    return DemoProvider(
        [(model.id, model.kind) for model in config.models],
        latency_ms=config.latency_ms,
        dimensions=config.dimensions,
    )


async def init(ctx: ModuleContext[AiDemoConfig]) -> None:
    await register_plugin(
        ctx,
        ctx.clients.get(TypesRegistryApi),
        AI_PROVIDERS,
        provider_for(ctx.config),
        name=PLUGIN_NAME,
        instance=PLUGIN_INSTANCE,
        priority=0,
        description="Deterministic answers for tests and demos: echoes chat, hashes embeddings.",
    )


module = Module(
    name="ai_demo",
    version="1.0.0",
    description="AI provider plugin: deterministic chat and embeddings for tests and demos.",
    config_model=AiDemoConfig,
    depends_on=("types_registry",),
    init=init,
    uses=(TypesRegistryApi,),
)
