"""Gateways and plugins: one module's operations served by whichever of several plugin modules.

A gateway module owns a plugin contract: a ClientHub ``@contract`` Protocol, and a GTS Type that
plugin registrations are instances of. Both are named by one declaration, which drives everything
else (registration, discovery, version checks, selection)::

    GREETERS = PluginSlot(
        contract=GreeterPlugin,
        type_id="gts.hx.core.plugins.plugin.v1~hx.demo.salute.greeter.v1.2~",
    )

* A plugin module, in ``init``, calls :func:`register_plugin`: its implementation goes into the
  ClientHub under its own GTS instance id, and its registration (name, module, priority) into the
  types registry as an instance of the contract's type at the version it was built for, e.g.
  ``gts.hx.core.plugins.plugin.v1~hx.demo.salute.greeter.v1.1~hx.demo.english.plugin.v1``.
* The gateway, in ``start`` (every ``init`` has run), calls :meth:`PluginGateway.discover`: it
  lists the registrations matching the contract, refuses to start on none or on one built for an
  incompatible version (same major, minor at most the gateway's), then :meth:`PluginGateway.call`
  picks a plugin per request (:func:`select_plugins`) and falls back on failure.

The kernel never imports a module: the types registry is reached through :class:`TypesRegistry`,
the few methods of the registry's contract used here. Plugins run in the gateway's process
(the ClientHub keys remote clients by contract alone, one module per contract).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field

from hyperspot.platform.clients import ClientHub
from hyperspot.platform.errors import HyperspotError
from hyperspot.platform.gateway.problems import Problem
from hyperspot.platform.gts import GTS_URI_PREFIX, GtsError, GtsId, GtsSegment, match_pattern
from hyperspot.platform.module import ModuleContext
from hyperspot.platform.rpc.contracts import ContractSpec, spec_of
from hyperspot.platform.security import SecurityContext

logger = logging.getLogger("hyperspot.plugins")

P = TypeVar("P")
R = TypeVar("R")

# The GTS Type every plugin contract's type derives from.
PLUGIN_BASE_TYPE = "gts.hx.core.plugins.plugin.v1~"
JSON_SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"
PLUGIN_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"

Document = dict[str, Any]
Documents = list[Document]


class PluginError(HyperspotError):
    """A plugin contract cannot be served as configured (named in the one-line message)."""


class PluginUnavailableError(Problem):
    """Every plugin selected for a request failed: answered 503, naming the failures."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, detail, kind="plugin-unavailable", headers={"Retry-After": "1"})


class TypesRegistry(Protocol):
    """What this module needs of the types registry's ClientHub contract (``TypesRegistryApi``)."""

    async def register(
        self, ctx: SecurityContext, entities: Documents, validate: bool = True
    ) -> list[str]: ...

    async def list(self, ctx: SecurityContext, pattern: str) -> Documents: ...


def base_type_schema() -> Document:
    """The GTS Type Schema of ``gts.hx.core.plugins.plugin.v1~``: what every registration holds."""
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": GTS_URI_PREFIX + PLUGIN_BASE_TYPE,
        "title": "Plugin registration",
        "description": (
            "A plugin module's registration with a gateway. Abstract: each registration is an "
            "instance of one gateway contract's type, which derives from this one."
        ),
        "type": "object",
        "x-gts-abstract": True,
        "properties": {
            "id": {
                "type": "string",
                "description": "<contract type id><vendor>.<package>.<namespace>.<plugin>.v<N>",
            },
            "name": {
                "type": "string",
                "pattern": PLUGIN_NAME_PATTERN,
                "description": "What the gateway's configuration selects the plugin by.",
            },
            "module": {"type": "string", "description": "The module that serves the plugin."},
            "priority": {
                "type": "integer",
                "default": 0,
                "description": "Without a configured choice, the highest priority serves.",
            },
            "description": {"type": "string"},
        },
        "required": ["id", "name", "module"],
    }


def _spec(contract: type[Any]) -> ContractSpec:
    # A class is hashable; mypy cannot tell from an unbound type variable.
    return spec_of(cast(type, contract))


def _segment_version(segment: GtsSegment) -> str:
    minor = "" if segment.ver_minor is None else f".{segment.ver_minor}"
    return f"v{segment.ver_major}{minor}"


@dataclass(frozen=True)
class PluginInfo:
    """One plugin's registration, as read back from the types registry."""

    id: str
    name: str
    module: str
    priority: int
    # The contract type's segment the plugin was registered under: its version is the one the
    # plugin was built for.
    contract: GtsSegment
    description: str = ""

    @property
    def version(self) -> str:
        return _segment_version(self.contract)

    @classmethod
    def from_content(cls, content: Document) -> PluginInfo:
        raw_id = content.get("id")
        try:
            gts_id = GtsId.parse(raw_id if isinstance(raw_id, str) else "")
        except GtsError as error:
            raise PluginError(f"plugin registration with an invalid id: {error}") from None
        segments = gts_id.segments
        if gts_id.is_type or len(segments) != 3 or gts_id.id.find(PLUGIN_BASE_TYPE) != 0:
            raise PluginError(
                f"{gts_id.id} is not a plugin registration (expected "
                f"{PLUGIN_BASE_TYPE}<contract>~<plugin>)"
            )
        name, module, priority = content.get("name"), content.get("module"), content.get("priority")
        if not isinstance(name, str) or not isinstance(module, str):
            raise PluginError(f"plugin registration {gts_id.id} lacks its name or module")
        return cls(
            id=gts_id.id,
            name=name,
            module=module,
            priority=priority if isinstance(priority, int) else 0,
            contract=segments[1],
            description=str(content.get("description", "")),
        )

    def label(self) -> str:
        return f"plugin '{self.name}' (module '{self.module}')"


@dataclass(frozen=True)
class PluginSlot(Generic[P]):
    """A gateway's plugin contract: the ClientHub Protocol and the GTS Type of registrations.

    ``type_id`` is ``gts.hx.core.plugins.plugin.v1~<vendor>.<package>.<namespace>.<contract>
    .v<MAJOR>.<MINOR>~``: the contract's identity and the version this code was built for.
    """

    contract: type[P]
    type_id: str
    description: str = ""

    def __post_init__(self) -> None:
        try:
            parsed = GtsId.parse(self.type_id)
        except GtsError as error:
            raise PluginError(f"plugin slot type_id: {error}") from None
        if not (
            parsed.is_type
            and len(parsed.segments) == 2
            and self.type_id.startswith(PLUGIN_BASE_TYPE)
        ):
            raise PluginError(
                f"plugin slot type_id {self.type_id!r} must be {PLUGIN_BASE_TYPE}"
                "<vendor>.<package>.<namespace>.<contract>.v<MAJOR>[.<MINOR>]~"
            )
        # A contract that cannot be described fails here, at import, naming what is wrong.
        _spec(self.contract)

    @property
    def segment(self) -> GtsSegment:
        return GtsId.parse(self.type_id).segments[1]

    @property
    def name(self) -> str:
        """``vendor.package.namespace.contract``: the contract whatever its version."""
        seg = self.segment
        return f"{seg.vendor}.{seg.package}.{seg.namespace}.{seg.type}"

    @property
    def version(self) -> str:
        return _segment_version(self.segment)

    @property
    def pattern(self) -> str:
        """The GTS wildcard pattern matching registrations of every version of the contract."""
        return f"{PLUGIN_BASE_TYPE}{self.name}.*"

    def at_version(self, major: int, minor: int | None = None) -> PluginSlot[P]:
        """This contract at another version (a plugin built against an older contract)."""
        version = f"v{major}" if minor is None else f"v{major}.{minor}"
        return dataclasses.replace(self, type_id=f"{PLUGIN_BASE_TYPE}{self.name}.{version}~")

    def type_schema(self) -> Document:
        """The GTS Type Schema of this contract's registrations at this version."""
        return {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": GTS_URI_PREFIX + self.type_id,
            "title": f"Plugin of {self.name} {self.version}",
            "description": self.description or f"Registrations of {self.contract.__qualname__}",
            "type": "object",
            "allOf": [{"$ref": GTS_URI_PREFIX + PLUGIN_BASE_TYPE}],
        }

    def incompatibility(self, plugin: PluginInfo) -> str | None:
        """Why ``plugin`` cannot serve a gateway built for this version, or None.

        Versions follow GTS minor-version compatibility: the same major, and a plugin built for
        minor N serves gateways built for minor N or later (a missing minor is 0).
        """
        mine, theirs = self.segment, plugin.contract
        if theirs.ver_major != mine.ver_major:
            reason = "the major versions differ"
        elif (theirs.ver_minor or 0) > (mine.ver_minor or 0):
            reason = "the plugin needs a newer minor version"
        else:
            return None
        return (
            f"{plugin.label()} implements {self.name} {plugin.version} but the gateway is built "
            f"for {self.version}: {reason}"
        )


class PluginSelection(BaseModel):
    """Which plugin serves a request: a gateway's config model subclasses this one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_plugin: str | None = Field(
        default=None,
        description="The plugin that serves requests; empty: the registered one of top priority.",
    )
    tenant_plugins: dict[str, str] = Field(
        default_factory=dict, description="Per tenant id, the plugin that serves its requests."
    )
    fallback_plugin: str | None = Field(
        default=None,
        description="Tried when the selected plugin fails; empty: the request fails with 503.",
    )
    call_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="How long one plugin call may take; a slower plugin counts as failed, and "
        "the fallback (if any) is tried.",
    )


def select_plugins(
    selection: PluginSelection, plugins: Sequence[PluginInfo], tenant_id: str
) -> list[PluginInfo]:
    """The plugins to try for one request of ``tenant_id``, in order: the chosen one, then the
    fallback. Names the selection gives must be among ``plugins`` (see :func:`check_selection`).
    """
    by_name = {plugin.name: plugin for plugin in plugins}
    chosen = selection.tenant_plugins.get(tenant_id) or selection.default_plugin
    if chosen is None:
        if not plugins:
            return []
        first = min(plugins, key=lambda plugin: (-plugin.priority, plugin.name))
        chosen = first.name
    order = [by_name[chosen]]
    fallback = selection.fallback_plugin
    if fallback is not None and fallback != chosen:
        order.append(by_name[fallback])
    return order


def check_selection(
    selection: PluginSelection, plugins: Sequence[PluginInfo], prefix: str = ""
) -> list[str]:
    """One line per plugin name in ``selection`` that no plugin in ``plugins`` has."""
    names = {plugin.name for plugin in plugins}
    available = ", ".join(sorted(names)) or "none"
    where = f"{prefix}." if prefix else ""
    named = [
        ("default_plugin", selection.default_plugin),
        ("fallback_plugin", selection.fallback_plugin),
        *((f"tenant_plugins.{tenant}", name) for tenant, name in selection.tenant_plugins.items()),
    ]
    return [
        f"{where}{key}: no plugin named '{name}' (plugins: {available})"
        for key, name in named
        if name is not None and name not in names
    ]


class PluginClients:
    """Plugin implementations by contract and GTS instance id: several per contract, which the
    ClientHub (one client per contract) does not hold itself. Kept in the hub: :func:`clients_of`.
    """

    def __init__(self) -> None:
        self._clients: dict[tuple[type[Any], str], tuple[str, object]] = {}

    def register(self, contract: type[P], gts_id: str, client: P, *, owner: str) -> None:
        existing = self._clients.get((contract, gts_id))
        if existing is not None:
            raise PluginError(f"plugin {gts_id} registered twice: by '{existing[0]}' and '{owner}'")
        self._clients[(contract, gts_id)] = (owner, client)

    def get(self, contract: type[P], gts_id: str) -> P | None:
        entry = self._clients.get((contract, gts_id))
        return None if entry is None else cast(P, entry[1])


def clients_of(hub: ClientHub) -> PluginClients:
    """The hub's plugin implementations (created on first use)."""
    found = hub.find(PluginClients)
    if found is None:
        found = PluginClients()
        hub.register(PluginClients, found, owner="platform")
    return found


def _contract_types(slot: PluginSlot[Any]) -> Documents:
    return [base_type_schema(), slot.type_schema()]


async def declare_slot(registry: TypesRegistry, slot: PluginSlot[Any], *, gateway: str) -> None:
    """The gateway's ``init``: make the contract's GTS Types known to the registry."""
    security = SecurityContext.for_system(f"plugins:{gateway}")
    # Registration is idempotent: the registry keeps what earlier starts registered.
    await registry.register(security, _contract_types(slot))


async def register_plugin(
    ctx: ModuleContext[Any],
    registry: TypesRegistry,
    slot: PluginSlot[P],
    implementation: P,
    *,
    name: str,
    instance: str,
    priority: int = 0,
    description: str = "",
) -> PluginInfo:
    """A plugin module's ``init``: register ``implementation`` as the plugin ``name``.

    ``slot`` is the contract at the version the plugin was built for; ``instance`` names the
    plugin in GTS (``<vendor>.<package>.<namespace>.<plugin>.v<N>``) and is appended to the
    contract's type id to make the registration's id.
    """
    missing = [
        method for method in _spec(slot.contract).methods if not hasattr(implementation, method)
    ]
    if missing:
        raise PluginError(
            f"plugin '{name}' does not implement {slot.contract.__qualname__}: "
            f"missing {', '.join(missing)}"
        )
    gts_id = slot.type_id + instance
    registration: Document = {
        "id": gts_id,
        "name": name,
        "module": ctx.module.name,
        "priority": priority,
        "description": description,
    }
    info = PluginInfo.from_content(registration)
    security = SecurityContext.for_system(f"plugins:{ctx.module.name}")
    await registry.register(security, [*_contract_types(slot), registration])
    clients_of(ctx.clients).register(slot.contract, gts_id, implementation, owner=ctx.module.name)
    return info


@dataclass(frozen=True)
class PluginResult(Generic[R]):
    """A plugin's answer, which plugin gave it and the failures of those tried before it."""

    value: R
    plugin: PluginInfo
    failures: tuple[str, ...] = ()


class PluginGateway(Generic[P]):
    """The gateway side of one slot: the plugins found at start-up and the current selection."""

    def __init__(self, slot: PluginSlot[P], gateway: str) -> None:
        self.slot = slot
        self.gateway = gateway
        self.plugins: list[PluginInfo] = []
        self.selection = PluginSelection()
        self._clients: dict[str, P] = {}
        # The contract's own typed errors are answers, not failures: no fallback for them.
        self._answers = tuple(_spec(slot.contract).errors.values())

    async def discover(
        self, registry: TypesRegistry, hub: ClientHub, *, required: bool = True
    ) -> list[PluginInfo]:
        """Find every plugin of the contract; refuse any of an incompatible version, and none at
        all unless ``required`` is false (a gateway that is useful without plugins, e.g. enabled
        by default, answering that nothing serves a request)."""
        security = SecurityContext.for_system(f"plugins:{self.gateway}")
        documents = await registry.list(security, self.slot.pattern)
        implementations = clients_of(hub)
        plugins: list[PluginInfo] = []
        clients: dict[str, P] = {}
        problems: list[str] = []
        for document in documents:
            if "$schema" in document:
                continue  # the contract's types themselves
            plugin = PluginInfo.from_content(document)
            if not match_pattern(self.slot.pattern, plugin.id):  # a registry's wider answer
                continue
            client = implementations.get(self.slot.contract, plugin.id)
            if client is None:
                # Registered by an earlier run (the registry keeps it) but not served now.
                logger.warning(
                    "gateway '%s': %s is registered but not running here; ignored",
                    self.gateway,
                    plugin.label(),
                )
                continue
            reason = self.slot.incompatibility(plugin)
            if reason is not None:
                problems.append(reason)
            plugins.append(plugin)
            clients[plugin.id] = client
        names = [plugin.name for plugin in plugins]
        problems += [
            f"two plugins of {self.slot.name} are named '{name}'"
            for name in sorted({name for name in names if names.count(name) > 1})
        ]
        if problems:
            raise PluginError(f"gateway '{self.gateway}': " + "; ".join(problems))
        if not plugins and required:
            raise PluginError(
                f"gateway '{self.gateway}': no plugin of {self.slot.name} {self.slot.version} is "
                "running (enable a module that registers one)"
            )
        self.plugins = sorted(plugins, key=lambda plugin: (-plugin.priority, plugin.name))
        self._clients = clients
        logger.info(
            "gateway '%s': plugins %s",
            self.gateway,
            ", ".join(f"{p.name} {p.version} ({p.module})" for p in self.plugins),
        )
        return self.plugins

    def configure(self, selection: PluginSelection, prefix: str | None = None) -> None:
        """Use ``selection`` from now on; raises ``PluginError`` if it names unknown plugins."""
        where = f"modules.{self.gateway}" if prefix is None else prefix
        problems = check_selection(selection, self.plugins, where)
        if problems:
            raise PluginError("; ".join(problems))
        self.selection = selection

    async def call(
        self,
        security: SecurityContext,
        invoke: Callable[[P], Awaitable[R]],
        *,
        order: Sequence[PluginInfo] | None = None,
        timeout_s: float | None = None,
    ) -> PluginResult[R]:
        """``invoke`` the plugin selected for the caller's tenant, then the fallback if it fails.

        ``order`` replaces the selection: the plugins to try, in order, as the gateway decides
        per request (e.g. those serving the model asked for); each must be one ``discover`` found.
        Each try may take ``timeout_s`` (default: the selection's ``call_timeout_s``); a plugin
        that takes longer has failed, so a hung plugin falls back like a broken one.
        The contract's declared errors pass through unchanged; any other failure of every plugin
        tried is a :class:`PluginUnavailableError` (503).
        """
        failures: list[str] = []
        if order is None:
            order = select_plugins(self.selection, self.plugins, security.tenant_id)
        limit = self.selection.call_timeout_s if timeout_s is None else timeout_s
        for plugin in order:
            try:
                async with asyncio.timeout(limit):
                    value = await invoke(self._clients[plugin.id])
            except self._answers:
                raise
            except TimeoutError:
                failure = f"plugin '{plugin.name}' did not answer within {limit:g} s"
                logger.warning("gateway '%s': %s", self.gateway, failure)
                failures.append(failure)
                continue
            except Exception as error:
                failure = f"plugin '{plugin.name}' failed ({type(error).__name__})"
                logger.warning("gateway '%s': %s: %s", self.gateway, failure, error, exc_info=error)
                failures.append(failure)
                continue
            return PluginResult(value, plugin, tuple(failures))
        raise PluginUnavailableError(
            f"{self.slot.name} is unavailable: " + ("; ".join(failures) or "no plugin")
        )
