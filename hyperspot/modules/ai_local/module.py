"""The ai_local module: registers the local embeddings provider, when its model is installed.

The model comes with the optional extra ``hyperspot[ai-local]``; without it the module registers
nothing and says how to install it, so the platform starts either way.
"""

import importlib.util
from functools import partial

from hyperspot.modules.ai.contract import AI_PROVIDERS
from hyperspot.modules.ai_local.config import AiLocalConfig
from hyperspot.modules.ai_local.domain.provider import LocalEmbeddingProvider
from hyperspot.modules.ai_local.infra.wordllama_encoder import load_wordllama
from hyperspot.modules.types_registry.contract import TypesRegistryApi
from hyperspot.platform import Module, ModuleContext
from hyperspot.platform.plugins import register_plugin

PLUGIN_NAME = "local"
PLUGIN_INSTANCE = "hx.core.ai_local.plugin.v1"
INSTALL_HINT = "pip install 'hyperspot[ai-local]'"


def model_installed() -> bool:
    # find_spec locates the package without importing it (nor numpy): idle servers stay small.
    return importlib.util.find_spec("wordllama") is not None


def provider_for(config: AiLocalConfig) -> LocalEmbeddingProvider:
    return LocalEmbeddingProvider(
        config.model,
        partial(load_wordllama, config.dimensions, config.batch_size),
        dimensions=config.dimensions,
        max_inputs=config.max_inputs,
    )


async def init(ctx: ModuleContext[AiLocalConfig]) -> None:
    if not model_installed():
        ctx.logger.info(
            "ai_local: the local embedding model is not installed, no provider registered "
            "(%s adds it)",
            INSTALL_HINT,
        )
        return
    await register_plugin(
        ctx,
        ctx.clients.get(TypesRegistryApi),
        AI_PROVIDERS,
        provider_for(ctx.config),
        name=PLUGIN_NAME,
        instance=PLUGIN_INSTANCE,
        priority=0,
        description="Local embeddings (wordllama l2_supercat), loaded on the first request.",
    )


module = Module(
    name="ai_local",
    version="1.0.0",
    description="AI provider plugin: embeddings from a small model running in the process.",
    config_model=AiLocalConfig,
    depends_on=("types_registry",),
    init=init,
    uses=(TypesRegistryApi,),
)
