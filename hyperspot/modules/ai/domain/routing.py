"""Which providers serve which model: asked of each provider at start and on reload."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hyperspot.modules.ai.contract import AiProvider, ModelKind, ProviderModel
from hyperspot.platform.plugins import PluginGateway, PluginInfo, PluginUnavailableError
from hyperspot.platform.security import SecurityContext

logger = logging.getLogger("hyperspot.modules.ai")


class RoutesError(ValueError):
    """The configured routes name a provider or model that is not there."""


@dataclass(frozen=True)
class Route:
    model: str
    kind: ModelKind
    owned_by: str
    providers: tuple[PluginInfo, ...]


async def provider_models(
    gateway: PluginGateway[AiProvider],
) -> dict[str, list[ProviderModel]]:
    """Each discovered provider's models; one that cannot say serves none (logged)."""
    security = SecurityContext.for_system("ai:models")
    found: dict[str, list[ProviderModel]] = {}
    for plugin in gateway.plugins:
        try:
            result = await gateway.call(
                security, lambda provider: provider.models(security), order=[plugin]
            )
        except PluginUnavailableError as error:
            logger.warning("ai provider '%s' did not list its models: %s", plugin.name, error)
            found[plugin.name] = []
            continue
        found[plugin.name] = result.value
    return found


def build_routes(
    plugins: list[PluginInfo],
    models: dict[str, list[ProviderModel]],
    configured: dict[str, tuple[str, ...]],
) -> dict[str, Route]:
    """Model id -> its route: the providers declaring it by priority, or the configured order."""
    by_name = {plugin.name: plugin for plugin in plugins}
    declared: dict[str, list[tuple[PluginInfo, ProviderModel]]] = {}
    for plugin in plugins:  # already in priority order
        for model in models.get(plugin.name, []):
            declared.setdefault(model.id, []).append((plugin, model))
    problems = []
    for model_id, names in configured.items():
        if model_id not in declared:
            problems.append(f"routes.{model_id}: no running provider declares the model")
        unknown = [name for name in names if name not in by_name]
        if unknown:
            available = ", ".join(sorted(by_name)) or "none"
            problems.append(
                f"routes.{model_id}: no provider named {', '.join(unknown)} (providers: "
                f"{available})"
            )
    if problems:
        raise RoutesError("; ".join(problems))
    routes = {}
    for model_id, serving in declared.items():
        first = serving[0][1]
        order = configured.get(model_id)
        providers = (
            tuple(by_name[name] for name in order)
            if order
            else tuple(plugin for plugin, _ in serving)
        )
        routes[model_id] = Route(model_id, first.kind, first.owned_by, providers)
    return routes
