"""The ai_openai module's declaration: an ``ai`` provider plugin over an OpenAI-compatible API.

Built in and enabled by default, it registers nothing until ``modules.ai_openai.base_url`` is set,
so a server without AI configuration starts as before.
"""

from __future__ import annotations

import os

from hyperspot.modules.ai.contract import AI_PROVIDERS, AiProvider
from hyperspot.modules.ai_openai.config import OpenAiConfig
from hyperspot.modules.ai_openai.infra.client import OpenAiProvider, read_api_key
from hyperspot.modules.types_registry.contract import TypesRegistryApi
from hyperspot.platform import Module, ModuleContext
from hyperspot.platform.plugins import clients_of, register_plugin

PLUGIN_NAME = "openai"
INSTANCE = "hx.core.ai_openai.plugin.v1"


def _provider(ctx: ModuleContext[OpenAiConfig]) -> OpenAiProvider | None:
    found = clients_of(ctx.clients).get(AiProvider, AI_PROVIDERS.type_id + INSTANCE)
    return found if isinstance(found, OpenAiProvider) else None


async def init(ctx: ModuleContext[OpenAiConfig]) -> None:
    config = ctx.config
    if config.base_url is None:
        ctx.logger.info(
            "no upstream configured, no provider registered (set "
            "modules.ai_openai.base_url, e.g. https://api.openai.com/v1, and the key in $%s)",
            config.api_key_env,
        )
        return
    provider = OpenAiProvider(config, read_api_key(os.environ, config.api_key_env), ctx.logger)
    await register_plugin(
        ctx,
        ctx.clients.get(TypesRegistryApi),
        AI_PROVIDERS,
        provider,
        name=PLUGIN_NAME,
        instance=INSTANCE,
        priority=config.priority,
        description=f"OpenAI-compatible API at {provider.upstream}",
    )


async def start(ctx: ModuleContext[OpenAiConfig]) -> None:
    provider = _provider(ctx)
    if provider is not None:
        await provider.start()


async def stop(ctx: ModuleContext[OpenAiConfig]) -> None:
    provider = _provider(ctx)
    if provider is not None:
        await provider.close()


module = Module(
    name="ai_openai",
    version="1.0.0",
    description="AI provider plugin: an OpenAI-compatible HTTP API (OpenAI, vLLM, Ollama...).",
    config_model=OpenAiConfig,
    depends_on=("types_registry",),
    init=init,
    start=start,
    stop=stop,
    uses=(TypesRegistryApi,),
)
