"""Module declarations, discovery and dependency resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES

from hyperspot.platform import Capability, Module, NoConfig
from hyperspot.platform.errors import ModuleGraphError, ModuleLoadError
from hyperspot.platform.registry import discover, resolve


def declare(name: str, *depends_on: str) -> Module[NoConfig]:
    return Module(name=name, version="1.0.0", config_model=NoConfig, depends_on=depends_on)


def names(modules: list[Module[NoConfig]]) -> list[str]:
    return [m.name for m in modules]


def test_resolve_puts_dependencies_first() -> None:
    modules = [declare("web", "auth", "db"), declare("auth", "db"), declare("db"), declare("audit")]
    assert names(resolve(modules)) == ["audit", "db", "auth", "web"]


def test_cycle_reports_its_path() -> None:
    modules = [declare("a", "b"), declare("b", "c"), declare("c", "a"), declare("d", "a")]
    with pytest.raises(ModuleGraphError, match=r"module dependency cycle: a -> b -> c -> a"):
        resolve(modules)


def test_missing_and_disabled_dependencies_are_named_together() -> None:
    modules = [declare("a", "ghost"), declare("b", "c"), declare("c")]
    with pytest.raises(ModuleGraphError) as caught:
        resolve(modules, disabled={"c"})
    message = str(caught.value)
    assert (
        "module 'a' depends on 'ghost', which is not installed (known modules: a, b, c)" in message
    )
    assert "module 'b' depends on 'c', which is disabled in config (modules.c.enabled)" in message


def test_disabled_module_is_left_out() -> None:
    assert names(resolve([declare("a"), declare("b")], disabled={"a"})) == ["b"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad-Name"}, "module name 'Bad-Name' is invalid"),
        ({"name": "me", "depends_on": ("me",)}, "module 'me' depends on itself"),
        (
            {"name": "r", "capabilities": frozenset({Capability.REST})},
            "'rest' capability and a register_rest hook go together",
        ),
        ({"name": "m", "migrate": lambda ctx: None}, "migrations need the 'db' capability"),
    ],
)
def test_declaration_is_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ModuleLoadError, match=message):
        Module(version="1", config_model=NoConfig, **kwargs)  # type: ignore[arg-type]


def test_discover_finds_entry_points_and_local_modules() -> None:
    found = {item.module.name: item.origin for item in discover([FIXTURES / "lifecycle"])}
    assert found["hello"] == "entry point 'hello = hyperspot.modules.hello.module:module'"
    assert found["alpha"].endswith("lifecycle/alpha/module.py")
    assert {"alpha", "beta", "gamma", "hello"} <= set(found)


def test_discover_refuses_bad_local_modules(tmp_path: Path) -> None:
    with pytest.raises(ModuleLoadError, match="is not a folder"):
        discover([tmp_path / "absent"])
    (tmp_path / "notamodule").mkdir()
    (tmp_path / "notamodule" / "__init__.py").write_text("")
    (tmp_path / "notamodule" / "module.py").write_text("module = 42\n")
    with pytest.raises(
        ModuleLoadError, match=r"module.py does not name a hyperspot Module \(got int\)"
    ):
        discover([tmp_path])


def test_discover_refuses_broken_and_shadowing_packages(tmp_path: Path) -> None:
    broken = tmp_path / "broken_root"
    (broken / "broken_mod").mkdir(parents=True)
    (broken / "broken_mod" / "module.py").write_text("raise ValueError('boom at import')\n")
    with pytest.raises(ModuleLoadError, match=r"cannot import module from .*boom at import"):
        discover([broken])
    shadow = tmp_path / "shadow_root"
    (shadow / "json").mkdir(parents=True)
    (shadow / "json" / "module.py").write_text("")
    with pytest.raises(ModuleLoadError, match=r"local module package 'json' .* would shadow"):
        discover([shadow])


def test_duplicate_module_names_are_refused(tmp_path: Path) -> None:
    twin = tmp_path / "hello_twin"
    twin.mkdir()
    (twin / "module.py").write_text(
        "from hyperspot.platform import Module, NoConfig\n"
        "module = Module(name='hello', version='9', config_model=NoConfig)\n"
    )
    with pytest.raises(ModuleLoadError, match="two modules are named 'hello'"):
        discover([tmp_path])
