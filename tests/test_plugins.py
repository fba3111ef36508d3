"""Gateways and plugins (hyperspot/platform/plugins.py).

End to end: the fixture modules in ``tests/fixtures/plugins`` — the gateway ``salute`` (one REST
operation), its plugins ``salute_en`` (built for contract 1.1) and ``salute_fr`` (1.2), and
``salute_next`` (built for another version, enabled only to see the gateway refuse it) — on a
server with the real ``types_registry`` module. Unit: the selector, the version checks and the
gateway object against an in-memory registry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import pytest
from conftest import ROOT, Launcher, Server, add_tenant, bearer, run_cli, secured_config

from hyperspot.platform.clients import ClientHub
from hyperspot.platform.config import PlatformSettings
from hyperspot.platform.gts import GtsEntity, match_pattern
from hyperspot.platform.module import Module, ModuleContext, NoConfig
from hyperspot.platform.plugins import (
    PLUGIN_BASE_TYPE,
    PluginError,
    PluginGateway,
    PluginInfo,
    PluginSelection,
    PluginSlot,
    PluginUnavailableError,
    base_type_schema,
    check_selection,
    clients_of,
    declare_slot,
    register_plugin,
    select_plugins,
)
from hyperspot.platform.rpc import contract
from hyperspot.platform.security import SecurityContext
from hyperspot.sandbox.databases import ProvisionedDatabase

# Plugins and reload behave alike on every database: shown once, on SQLite (tests(db='sqlite')).
pytestmark = pytest.mark.slow

PLUGIN_MODULES = Path(__file__).parent / "fixtures" / "plugins"
T = TypeVar("T")


def plugins_config(
    database: ProvisionedDatabase, modules: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The fixture modules on ``database``; the incompatible plugin stays off unless enabled."""
    sections: dict[str, Any] = {"salute_next": {"enabled": False}}
    sections.update(modules or {})
    return secured_config(
        database.url.url, {"modules_path": [str(PLUGIN_MODULES)], "modules": sections}
    )


def member(tenant: str) -> dict[str, str]:
    return bearer(tenant, "ann", roles=("member",))


def greet(server: Server, tenant: str, name: str = "Ann") -> Any:
    return server.client.get("/salute/v1/greeting", params={"name": name}, headers=member(tenant))


# --- end to end -------------------------------------------------------------------------------


def test_plugins_selected_per_tenant_with_fallback(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    server = launcher.start(
        plugins_config(
            database,
            {
                "salute": {
                    "default_plugin": "english",
                    "tenant_plugins": {"globex": "french"},
                    "fallback_plugin": "english",
                },
                "salute_fr": {"fail_names": ["Bob"]},
            },
        )
    )
    for tenant in ("acme", "globex"):
        add_tenant(server, tenant)

    # Two plugins of one contract side by side; english was built for 1.1, french for 1.2.
    answer = greet(server, "acme")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "text": "Hello, Ann!",
        "plugin": "english",
        "version": "v1.1",
        "failures": [],
    }
    answer = greet(server, "globex")
    assert answer.json()["text"] == "Bonjour, Ann !"
    assert answer.json()["plugin"] == "french"

    # French fails for Bob: the configured fallback answers, and says what failed.
    answer = greet(server, "globex", "Bob")
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == "Hello, Bob!"
    assert answer.json()["failures"] == ["plugin 'french' failed (RuntimeError)"]
    assert "plugin 'french' failed (RuntimeError): the French greeter is down for Bob" in (
        server.log()
    )

    # The contract's own typed error is an answer, not a failure: no fallback.
    refused = greet(server, "globex", " ")
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"] == "personne à saluer"

    # The registrations are GTS instances in the registry, under the versions built for.
    found = server.client.get(
        "/gts/entities", params={"pattern": "gts.hx.core.plugins.plugin.v1~*"}, headers=bearer(ROOT)
    )
    assert found.status_code == 200, found.text
    ids = {item["id"] for item in found.json()["entities"]}
    assert {
        "gts.hx.core.plugins.plugin.v1~hx.demo.salute.greeter.v1.1~hx.demo.salute_en.plugin.v1",
        "gts.hx.core.plugins.plugin.v1~hx.demo.salute.greeter.v1.2~hx.demo.salute_fr.plugin.v1",
    } <= ids
    # Plugins expose no REST of their own.
    paths = server.client.get("/openapi.json").json()["paths"]
    assert "/salute/v1/greeting" in paths
    assert not any(path.startswith(("/salute_en", "/salute_fr")) for path in paths)


def test_failure_without_fallback_is_a_503_naming_it(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    server = launcher.start(
        plugins_config(
            database,
            {"salute": {"default_plugin": "french"}, "salute_fr": {"fail_names": ["Bob"]}},
        )
    )
    add_tenant(server, "acme")
    assert greet(server, "acme").json()["plugin"] == "french"
    failed = greet(server, "acme", "Bob")
    assert failed.status_code == 503, failed.text
    assert failed.headers["content-type"] == "application/problem+json"
    problem = failed.json()
    assert problem["type"].endswith("/plugin-unavailable")
    assert problem["detail"] == (
        "hx.demo.salute.greeter is unavailable: plugin 'french' failed (RuntimeError)"
    )


def test_without_a_configured_choice_the_top_priority_plugin_serves(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    server = launcher.start(plugins_config(database))
    add_tenant(server, "acme")
    # english registers with priority 10, french with 0.
    assert greet(server, "acme").json()["plugin"] == "english"


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (
            {"major": 1, "minor": 3},
            "plugin 'next' (module 'salute_next') implements hx.demo.salute.greeter v1.3 but the "
            "gateway is built for v1.2: the plugin needs a newer minor version",
        ),
        (
            {"major": 2, "minor": 0},
            "plugin 'next' (module 'salute_next') implements hx.demo.salute.greeter v2.0 but the "
            "gateway is built for v1.2: the major versions differ",
        ),
    ],
)
def test_start_up_refuses_an_incompatible_plugin(
    launcher: Launcher,
    database: ProvisionedDatabase,
    version: dict[str, int],
    message: str,
) -> None:
    path, _ = launcher.config(plugins_config(database, {"salute_next": version}))
    done = run_cli("up", "--config", str(path))
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert errors[0] == (
        f"error: module 'salute' failed during start: gateway 'salute': {message}"
    ), done.stderr


def test_start_up_refuses_no_plugin_and_an_unknown_choice(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    off = {"enabled": False}
    path, _ = launcher.config(plugins_config(database, {"salute_en": off, "salute_fr": off}))
    done = run_cli("up", "--config", str(path))
    assert done.returncode == 1
    assert (
        "error: module 'salute' failed during start: gateway 'salute': no plugin of "
        "hx.demo.salute.greeter v1.2 is running (enable a module that registers one)"
    ) in done.stderr, done.stderr

    path, _ = launcher.config(
        plugins_config(database, {"salute": {"tenant_plugins": {"acme": "klingon"}}})
    )
    done = run_cli("up", "--config", str(path))
    assert done.returncode == 1
    assert (
        "modules.salute.tenant_plugins.acme: no plugin named 'klingon' (plugins: english, french)"
    ) in done.stderr, done.stderr


# --- unit: selection and versions ---------------------------------------------------------------


class ShoutRefusedError(RuntimeError):
    pass


@contract(errors=(ShoutRefusedError,))
class Shouter(Protocol):
    async def shout(self, security: SecurityContext, text: str) -> str: ...


SLOT: PluginSlot[Shouter] = PluginSlot(
    contract=Shouter, type_id=f"{PLUGIN_BASE_TYPE}hx.test.units.shouter.v1.2~"
)


def info(name: str, priority: int = 0, version: tuple[int, int | None] = (1, 2)) -> PluginInfo:
    slot = SLOT.at_version(*version)
    return PluginInfo.from_content(
        {
            "id": f"{slot.type_id}hx.test.{name}.plugin.v1",
            "name": name,
            "module": f"mod_{name}",
            "priority": priority,
        }
    )


A, B, C = info("a", priority=1), info("b", priority=5), info("c", priority=5)


def test_selector_order_default_tenant_priority_and_fallback() -> None:
    plugins = [A, B, C]
    # Nothing configured: the top priority, ties by name.
    assert select_plugins(PluginSelection(), plugins, "t1") == [B]
    chosen = PluginSelection(default_plugin="a", tenant_plugins={"t2": "c"}, fallback_plugin="b")
    assert select_plugins(chosen, plugins, "t1") == [A, B]
    assert select_plugins(chosen, plugins, "t2") == [C, B]
    # A fallback equal to the choice is not tried twice.
    only = PluginSelection(default_plugin="b", fallback_plugin="b")
    assert select_plugins(only, plugins, "t1") == [B]
    assert select_plugins(PluginSelection(), [], "t1") == []


def test_check_selection_names_every_unknown_plugin() -> None:
    selection = PluginSelection(
        default_plugin="x", tenant_plugins={"t1": "a", "t2": "y"}, fallback_plugin="b"
    )
    assert check_selection(selection, [A, B], "modules.gw") == [
        "modules.gw.default_plugin: no plugin named 'x' (plugins: a, b)",
        "modules.gw.tenant_plugins.t2: no plugin named 'y' (plugins: a, b)",
    ]
    assert check_selection(PluginSelection(default_plugin="a"), [A]) == []


@pytest.mark.parametrize(
    ("version", "compatible"),
    [
        ((1, 2), True),
        ((1, 0), True),
        ((1, None), True),  # no minor: 0
        ((1, 3), False),
        ((2, 0), False),
        ((0, 2), False),
    ],
)
def test_minor_version_compatibility(version: tuple[int, int | None], compatible: bool) -> None:
    reason = SLOT.incompatibility(info("p", version=version))
    assert (reason is None) is compatible, reason


def test_a_slot_without_minor_accepts_only_minor_zero() -> None:
    slot = SLOT.at_version(3)
    assert slot.version == "v3"
    assert slot.incompatibility(info("p", version=(3, 0))) is None
    assert slot.incompatibility(info("p", version=(3, 1))) is not None


@pytest.mark.parametrize(
    "type_id",
    [
        "gts.hx.test.units.shouter.v1~",  # not derived from the plugin base type
        f"{PLUGIN_BASE_TYPE}hx.test.units.shouter.v1",  # an instance, not a type
        f"{PLUGIN_BASE_TYPE}hx.test.units.shouter.v1~hx.test.units.more.v1~",  # too deep
        f"{PLUGIN_BASE_TYPE}Bad.id~",
    ],
)
def test_slot_declarations_are_checked(type_id: str) -> None:
    with pytest.raises(PluginError, match="type_id"):
        PluginSlot(contract=Shouter, type_id=type_id)


def test_slot_derives_its_pattern_and_type_schema() -> None:
    assert SLOT.name == "hx.test.units.shouter"
    assert SLOT.version == "v1.2"
    assert SLOT.pattern == f"{PLUGIN_BASE_TYPE}hx.test.units.shouter.*"
    # The pattern reaches registrations of every version, and nothing of another contract.
    for candidate in (info("p").id, info("p", version=(2, None)).id):
        assert match_pattern(SLOT.pattern, candidate)
    assert not match_pattern(SLOT.pattern, f"{PLUGIN_BASE_TYPE}hx.test.units.other.v1~x.y.z.w.v1")
    schema = GtsEntity.from_content(SLOT.type_schema())
    assert (schema.id, schema.type_id) == (SLOT.type_id, PLUGIN_BASE_TYPE)
    assert GtsEntity.from_content(base_type_schema()).id == PLUGIN_BASE_TYPE


def test_registrations_that_are_not_plugins_are_refused() -> None:
    with pytest.raises(PluginError, match="is not a plugin registration"):
        PluginInfo.from_content({"id": "gts.hx.test.units.thing.v1~hx.test.a.b.v1", "name": "a"})
    with pytest.raises(PluginError, match="invalid id"):
        PluginInfo.from_content({"id": 7})
    with pytest.raises(PluginError, match="lacks its name or module"):
        PluginInfo.from_content({"id": info("a").id, "name": "a"})


# --- unit: the gateway against an in-memory registry ------------------------------------------


class MemoryRegistry:
    """The TypesRegistry protocol over a dict: idempotent, all-or-none, type must exist."""

    def __init__(self) -> None:
        self.entities: dict[str, dict[str, Any]] = {}

    async def register(
        self, ctx: SecurityContext, entities: list[dict[str, Any]], validate: bool = True
    ) -> list[str]:
        assert ctx.system
        parsed = [GtsEntity.from_content(content) for content in entities]
        known = set(self.entities) | {entity.id for entity in parsed}
        for entity in parsed:
            if entity.type_id is not None and entity.type_id not in known:
                raise ValueError(f"{entity.id}: type {entity.type_id} is not registered")
        for entity in parsed:
            self.entities[entity.id] = dict(entity.content)
        return [entity.id for entity in parsed]

    async def list(self, ctx: SecurityContext, pattern: str) -> list[dict[str, Any]]:
        return [
            content for gts_id, content in self.entities.items() if match_pattern(pattern, gts_id)
        ]


class Loud:
    def __init__(
        self, suffix: str = "!", fail: BaseException | None = None, delay_s: float = 0
    ) -> None:
        self.suffix = suffix
        self.fail = fail
        self.delay_s = delay_s

    async def shout(self, security: SecurityContext, text: str) -> str:
        await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        return text.upper() + self.suffix


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def plugin_context(hub: ClientHub, module: str) -> ModuleContext[NoConfig]:
    declared: Module[NoConfig] = Module(name=module, version="1", config_model=NoConfig)
    return ModuleContext(declared, NoConfig(), hub, PlatformSettings())


USER = SecurityContext(subject="u", tenant_id="t1")


def world(*plugins: tuple[str, Loud, tuple[int, int | None]]) -> tuple[MemoryRegistry, ClientHub]:
    registry, hub = MemoryRegistry(), ClientHub()
    run(declare_slot(registry, SLOT, gateway="gw"))
    for name, implementation, version in plugins:
        run(
            register_plugin(
                plugin_context(hub, f"mod_{name}"),
                registry,
                SLOT.at_version(*version),
                implementation,
                name=name,
                instance=f"hx.test.{name}.plugin.v1",
            )
        )
    return registry, hub


def test_gateway_discovers_selects_and_falls_back() -> None:
    registry, hub = world(("a", Loud(), (1, 1)), ("b", Loud("?"), (1, 2)))
    gateway = PluginGateway(SLOT, "gw")
    found = run(gateway.discover(registry, hub))
    assert [(p.name, p.module, p.version) for p in found] == [
        ("a", "mod_a", "v1.1"),
        ("b", "mod_b", "v1.2"),
    ]
    gateway.configure(PluginSelection(default_plugin="b", tenant_plugins={"t9": "a"}))
    result = run(gateway.call(USER, lambda plugin: plugin.shout(USER, "hi")))
    assert (result.value, result.plugin.name, result.failures) == ("HI?", "b", ())

    # A bad selection is refused and the previous one stays.
    with pytest.raises(PluginError, match=r"modules\.gw\.fallback_plugin: no plugin named 'zz'"):
        gateway.configure(PluginSelection(fallback_plugin="zz"))
    assert gateway.selection.default_plugin == "b"


def test_gateway_fallback_503_and_typed_errors() -> None:
    registry, hub = world(
        ("a", Loud(fail=RuntimeError("down")), (1, 2)),
        ("b", Loud(), (1, 2)),
        ("c", Loud(fail=ShoutRefusedError("no")), (1, 2)),
    )
    gateway = PluginGateway(SLOT, "gw")
    run(gateway.discover(registry, hub))

    def shout(plugin: Shouter) -> Coroutine[Any, Any, str]:
        return plugin.shout(USER, "x")

    gateway.configure(PluginSelection(default_plugin="a", fallback_plugin="b"))
    result = run(gateway.call(USER, shout))
    assert (result.value, result.plugin.name) == ("X!", "b")
    assert result.failures == ("plugin 'a' failed (RuntimeError)",)

    gateway.configure(PluginSelection(default_plugin="a", fallback_plugin="a"))
    with pytest.raises(PluginUnavailableError) as failed:
        run(gateway.call(USER, shout))
    assert failed.value.status_code == 503
    assert failed.value.description == (
        "hx.test.units.shouter is unavailable: plugin 'a' failed (RuntimeError)"
    )

    gateway.configure(PluginSelection(default_plugin="c", fallback_plugin="b"))
    with pytest.raises(ShoutRefusedError):
        run(gateway.call(USER, shout))


def test_a_hung_plugin_fails_after_the_call_timeout() -> None:
    registry, hub = world(("a", Loud(delay_s=30), (1, 2)), ("b", Loud(), (1, 2)))
    gateway = PluginGateway(SLOT, "gw")
    run(gateway.discover(registry, hub))
    gateway.configure(PluginSelection(default_plugin="a", fallback_plugin="b", call_timeout_s=0.05))

    def shout(plugin: Shouter) -> Coroutine[Any, Any, str]:
        return plugin.shout(USER, "x")

    started = time.monotonic()
    result = run(gateway.call(USER, shout))
    assert (result.value, result.plugin.name) == ("X!", "b")
    assert result.failures == ("plugin 'a' did not answer within 0.05 s",)
    assert time.monotonic() - started < 5
    # A gateway may give one call its own bound.
    with pytest.raises(PluginUnavailableError) as failed:
        run(gateway.call(USER, shout, order=gateway.plugins[:1], timeout_s=0.01))
    assert str(failed.value.description).endswith("plugin 'a' did not answer within 0.01 s")


def test_discovery_refusals() -> None:
    registry, hub = world()
    with pytest.raises(PluginError, match=r"^gateway 'gw': no plugin of hx\.test"):
        run(PluginGateway(SLOT, "gw").discover(registry, hub))

    registry, hub = world(("a", Loud(), (1, 2)), ("b", Loud(), (1, 4)), ("c", Loud(), (3, 0)))
    with pytest.raises(PluginError) as refused:
        run(PluginGateway(SLOT, "gw").discover(registry, hub))
    assert str(refused.value) == (
        "gateway 'gw': plugin 'b' (module 'mod_b') implements hx.test.units.shouter v1.4 but the "
        "gateway is built for v1.2: the plugin needs a newer minor version; plugin 'c' (module "
        "'mod_c') implements hx.test.units.shouter v3.0 but the gateway is built for v1.2: the "
        "major versions differ"
    )


def test_registrations_no_module_serves_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    registry, hub = world(("a", Loud(), (1, 2)))
    # Another run's plugin: in the registry, but no implementation in this process.
    _, other_hub = world(("gone", Loud(), (1, 2)))
    stale = f"{SLOT.type_id}hx.test.gone.plugin.v1"
    registry.entities[stale] = {"id": stale, "name": "gone", "module": "mod_gone"}
    found = run(PluginGateway(SLOT, "gw").discover(registry, hub))
    assert [p.name for p in found] == ["a"]
    assert "plugin 'gone' (module 'mod_gone') is registered but not running here" in caplog.text
    assert clients_of(other_hub) is not clients_of(hub)


def test_register_plugin_checks_the_implementation_and_duplicates() -> None:
    registry, hub = world(("a", Loud(), (1, 2)))

    class Mute:
        pass

    with pytest.raises(PluginError, match="plugin 'm' does not implement Shouter: missing shout"):
        run(
            register_plugin(
                plugin_context(hub, "mod_m"),
                registry,
                SLOT,
                cast(Shouter, Mute()),  # what a type checker would have caught
                name="m",
                instance="x.y.z.m.v1",
            )
        )
    with pytest.raises(PluginError, match="registered twice: by 'mod_a' and 'mod_a2'"):
        run(
            register_plugin(
                plugin_context(hub, "mod_a2"),
                registry,
                SLOT,
                Loud(),
                name="a",
                instance="hx.test.a.plugin.v1",
            )
        )
    # Two plugins under one name (different instances) cannot be told apart by the config.
    run(
        register_plugin(
            plugin_context(hub, "mod_a3"), registry, SLOT, Loud(), name="a", instance="x.y.z.a.v1"
        )
    )
    with pytest.raises(PluginError, match=r"two plugins of hx\.test\.units\.shouter are named 'a'"):
        run(PluginGateway(SLOT, "gw").discover(registry, hub))
