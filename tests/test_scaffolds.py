"""``hyperspot new`` and ``hyperspot check``: generated modules pass every check, then serve."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import pytest
import yaml
from conftest import Launcher, bearer, clean_env, secured_config
from typer.testing import CliRunner, Result

from hyperspot.cli import check as check_cli
from hyperspot.cli import new as new_cli
from hyperspot.cli.main import app
from hyperspot.platform.plugins import PLUGIN_BASE_TYPE, PluginSlot
from hyperspot.platform.rpc import contract
from hyperspot.platform.security import SecurityContext
from hyperspot.sandbox.databases import ProvisionedDatabase
from hyperspot.scaffolds import Kind, Scaffold, ScaffoldError, plan
from hyperspot.scaffolds.project import with_modules_path
from hyperspot.scaffolds.render import MAX_NAME_LENGTH, render_project, tidy_imports

PLATFORM = Path(__file__).resolve().parents[1]


def new(project: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, ["new", *args, "--dir", str(project)], input=stdin)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@contract()
class Shouter(Protocol):
    """A plugin contract to check the generated type ids with."""

    async def shout(self, security: SecurityContext, text: str) -> str: ...


def mypy_cache(pytestconfig: pytest.Config, tmp_path: Path, name: str) -> str:
    """A mypy cache kept between runs: a cold one spends seconds on hyperspot and pydantic."""
    cache = getattr(pytestconfig, "cache", None)  # absent under -p no:cacheprovider
    return str(cache.mkdir(name) if cache is not None else tmp_path / name)


# End to end: new -> check -> serve.


@pytest.mark.slow
def test_generated_modules_pass_check_and_serve(
    tmp_path: Path,
    launcher: Launcher,
    database: ProvisionedDatabase,
    pytestconfig: pytest.Config,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for args in (
        ["gw", "--kind", "gateway"],
        ["echo", "--kind", "plugin", "--implements", "gw"],
        ["stock", "--kind", "regular"],
        # A provider of the built-in ai gateway: its own tests run a server of the project.
        ["llm", "--kind", "plugin", "--implements", "ai"],
    ):
        result = new(project, *args)
        assert result.exit_code == 0, result.output

    # As a developer runs it: in the project folder, with only what `new` wrote.
    env = clean_env(
        {"MYPY_CACHE_DIR": mypy_cache(pytestconfig, tmp_path, "scaffolds-e2e"), "COLUMNS": "160"}
    )
    checked = subprocess.run(
        [sys.executable, "-m", "hyperspot", "check"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "all passed" in checked.stdout
    for step in ("ruff format", "ruff check", "mypy --strict", "hyperspot lint", "pytest"):
        assert step in checked.stdout

    # The project's own config, with its modules_path made absolute for the launcher's folder.
    config: dict[str, Any] = yaml.safe_load((project / "hyperspot.yaml").read_text())
    config["modules_path"] = [str((project / p).resolve()) for p in config["modules_path"]]
    server = launcher.start(secured_config(database.url.url, config))
    health = {m["name"]: m for m in server.client.get("/health").json()["modules"]}
    ours = ("gw", "echo", "stock", "llm")
    assert {name: health[name]["state"] for name in ours} == dict.fromkeys(ours, "ready")
    paths = server.client.get("/openapi.json").json()["paths"]
    assert paths["/stock/v1/items"]["post"]["x-hyperspot-permission"] == "stock:write"
    assert paths["/stock/v1/items/{item_id}"].keys() == {"get", "patch", "delete"}
    assert paths["/gw/v1/plugins"]["get"]["x-hyperspot-permission"] == "gw:read"
    assert paths["/gw/v1/calls"]["post"]["x-hyperspot-permission"] == "gw:call"
    assert not [path for path in paths if path.startswith(("/echo/", "/llm/"))]  # no REST

    member = bearer("root", subject="ann", roles=("member",))
    created = server.client.post("/stock/v1/items", json={"name": "first"}, headers=member)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "first"
    assert server.client.post("/stock/v1/items", json={"name": "x"}).status_code == 401
    # The gateway found its one plugin, registered in the types registry, and calls it.
    listed = server.client.get("/gw/v1/plugins", headers=member).json()["items"]
    assert [(p["name"], p["module"], p["version"]) for p in listed] == [("echo", "echo", "v1.0")]
    called = server.client.post("/gw/v1/calls", json={"input": "hi"}, headers=member)
    assert called.json() == {
        "output": "hi (for root)",
        "plugin": "echo",
        "version": "v1.0",
        "failures": [],
    }
    # The ai gateway routes the provider's model to it, plain and streamed.
    models = server.client.get("/ai/v1/models", headers=member).json()["data"]
    assert {"id": "llm-chat", "kind": "chat", "providers": ["llm"]}.items() <= next(
        model for model in models if model["id"] == "llm-chat"
    ).items()
    body = {"model": "llm-chat", "messages": [{"role": "user", "content": "Hi"}]}
    answered = server.client.post("/ai/v1/chat/completions", json=body, headers=member)
    assert answered.status_code == 200, answered.text
    assert answered.json()["choices"][0]["message"]["content"] == "Llm heard: Hi"
    streamed = server.client.post(
        "/ai/v1/chat/completions", json={**body, "stream": True}, headers=member
    )
    assert streamed.status_code == 200, streamed.text
    assert '"content":" heard:"' in streamed.text and streamed.text.endswith("data: [DONE]\n\n")


# What `new` writes.


@pytest.mark.parametrize(
    ("gateway", "plugin", "regular", "provider"),
    [
        ("a", "a_b", "x2", "b"),
        ("x10", "x2", "zz", "ai_x2"),
        ("zzz", "aaa", "b1", "zz_top"),
        (
            "g" * MAX_NAME_LENGTH,
            "p" * MAX_NAME_LENGTH,
            "r" * MAX_NAME_LENGTH,
            "q" * MAX_NAME_LENGTH,
        ),
    ],
)
def test_generated_code_is_ruff_clean_whatever_the_names(
    tmp_path: Path, gateway: str, plugin: str, regular: str, provider: str
) -> None:
    # Import order and line breaks depend on the names: ruff must find nothing to change.
    for args in (
        [gateway, "--kind", "gateway"],
        [plugin, "--kind", "plugin", "--implements", gateway],
        [regular, "--kind", "regular"],
        [provider, "--kind", "plugin", "--implements", "ai"],
    ):
        assert new(tmp_path, *args).exit_code == 0
    for command in (["format", "--check", "--diff"], ["check"]):
        ruff = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "modules", "tests"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert ruff.returncode == 0, ruff.stdout + ruff.stderr


def test_a_module_has_every_layer_and_the_project_is_set_up(tmp_path: Path) -> None:
    result = new(tmp_path, "stock", "--kind", "regular")
    assert result.exit_code == 0, result.output
    module = tmp_path / "modules" / "stock"
    for part in ("module.py", "config.py", "contract", "domain", "api/rest.py", "infra/storage.py"):
        assert (module / part).exists(), part
    assert (tmp_path / "tests" / "test_stock.py").is_file()
    assert (tmp_path / "tests" / "test_stock_api.py").is_file()
    storage = (module / "infra" / "storage.py").read_text()
    assert "Migration(" in storage and "tenant_scoped=True" in storage
    assert 'Permission(\n            "stock:write"' in (module / "module.py").read_text()
    assert yaml.safe_load((tmp_path / "hyperspot.yaml").read_text()) == {
        "modules_path": ["./modules"]
    }
    assert "pyproject.toml" in result.output
    # No staging folder is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "hyperspot.yaml",
        "modules",
        "pyproject.toml",
        "tests",
    ]


def test_the_project_gets_the_platforms_tool_settings() -> None:
    generated = tomllib.loads(render_project("demo"))["tool"]
    platform = tomllib.loads((PLATFORM / "pyproject.toml").read_text())["tool"]
    assert generated["ruff"]["line-length"] == platform["ruff"]["line-length"]
    assert generated["ruff"]["target-version"] == platform["ruff"]["target-version"]
    assert generated["ruff"]["lint"]["select"] == platform["ruff"]["lint"]["select"]
    assert generated["ruff"]["lint"]["ignore"] == platform["ruff"]["lint"]["ignore"]
    for key in ("strict", "python_version", "plugins", "disable_error_code"):
        assert generated["mypy"][key] == platform["mypy"][key], key
    for key in ("filterwarnings", "addopts"):
        assert generated["pytest"]["ini_options"][key] == platform["pytest"]["ini_options"][key]
    assert generated["coverage"]["report"]["fail_under"] == 90


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("Stock", "lower_snake_case"),
        ("9lives", "lower_snake_case"),
        ("my-module", "lower_snake_case"),
        ("double__underscore", "lower_snake_case"),
        ("trailing_", "lower_snake_case"),
        ("x" * (MAX_NAME_LENGTH + 1), "longer than"),
        ("class", "keyword"),
        ("match", "keyword"),
        ("notes", "installed module"),
        ("tenants", "installed module"),
        ("json", "standard library"),
        ("scaffolds", "hyperspot package"),
        ("tests", "project layout"),
        ("yaml", "shadow the installed package"),
    ],
)
def test_invalid_names_are_refused_and_nothing_is_written(
    tmp_path: Path, name: str, why: str
) -> None:
    line = one_error_line(new(tmp_path, name, "--kind", "regular"))
    assert why in line
    assert list(tmp_path.iterdir()) == []


def test_an_existing_module_is_kept_unless_forced(tmp_path: Path) -> None:
    assert new(tmp_path, "stock", "--kind", "regular").exit_code == 0
    module = tmp_path / "modules" / "stock"
    (module / "module.py").write_text("# my own work\n")
    (module / "stray.py").write_text("")
    before = snapshot(tmp_path)
    line = one_error_line(new(tmp_path, "stock", "--kind", "gateway"))
    assert "modules/stock, tests/test_stock.py, tests/test_stock_api.py already exist" in line
    assert "--force" in line
    assert snapshot(tmp_path) == before

    # A test file of that name is an existing target too.
    (tmp_path / "tests" / "test_shop_api.py").write_text("")
    assert "tests/test_shop_api.py" in one_error_line(new(tmp_path, "shop", "--kind", "regular"))

    forced = new(tmp_path, "stock", "--kind", "gateway", "--force")
    assert forced.exit_code == 0, forced.output
    assert "(replaced)" in forced.output
    assert "--kind gateway" in (module / "__init__.py").read_text()
    assert "my own work" not in (module / "module.py").read_text()
    assert not (module / "stray.py").exists()
    assert not (module / "infra" / "storage.py").exists()  # the regular module's files are gone


def test_plugins_need_an_existing_gateway(tmp_path: Path) -> None:
    line = one_error_line(new(tmp_path, "echo", "--kind", "plugin", "--implements", "gw"))
    assert "no gateway module 'gw'" in line
    assert "none yet; built in: ai" in line
    assert new(tmp_path, "stock", "--kind", "regular").exit_code == 0
    before = snapshot(tmp_path)
    assert "not a gateway" in one_error_line(
        new(tmp_path, "echo", "--kind", "plugin", "--implements", "stock")
    )
    assert "cannot implement itself" in one_error_line(
        new(tmp_path, "stock2", "--kind", "plugin", "--implements", "stock2")
    )
    assert "--implements is for --kind plugin" in one_error_line(
        new(tmp_path, "other", "--kind", "regular", "--implements", "stock")
    )
    # Without a terminal there is nobody to ask: say what is missing.
    line = one_error_line(new(tmp_path, "echo", "--kind", "plugin"))
    assert "--implements GATEWAY" in line and "none yet; built in: ai" in line
    assert snapshot(tmp_path) == before


def test_a_provider_of_the_built_in_ai_gateway(tmp_path: Path) -> None:
    result = new(tmp_path, "my_llm", "--kind", "plugin", "--implements", "ai")
    assert result.exit_code == 0, result.output
    assert "models: my-llm-chat, at /ai/v1/chat/completions" in result.output
    module = tmp_path / "modules" / "my_llm"
    declaration = (module / "module.py").read_text()
    assert "from hyperspot.modules.ai.contract import AI_PROVIDERS" in declaration
    assert 'name="my_llm"' in declaration and 'INSTANCE = "hx.app.my_llm.plugin.v1"' in declaration
    assert 'depends_on=("types_registry",)' in declaration  # the gateway need not start first
    assert 'default=("my-llm-chat",)' in (module / "config.py").read_text()
    provider = (module / "domain" / "provider.py").read_text()
    assert "class MyLlmProvider:" in provider and "async def chat_stream(" in provider
    assert "TODO" not in provider and "NotImplementedError" not in provider
    # The only module of the platform it imports is the gateway's contract.
    imported = {
        line.split()[1]
        for path in module.rglob("*.py")
        for line in path.read_text().splitlines()
        if line.startswith(("from hyperspot.modules.", "import hyperspot.modules."))
    }
    assert imported == {
        "hyperspot.modules.ai.contract",
        "hyperspot.modules.types_registry.contract",
    }
    assert (tmp_path / "tests" / "test_my_llm.py").is_file()
    api_tests = (tmp_path / "tests" / "test_my_llm_api.py").read_text()
    assert '"/ai/v1/chat/completions"' in api_tests and "stream=True" in api_tests
    # A gateway of the project keeps its plugin template; an unknown built-in is no template.
    assert new(tmp_path, "gw", "--kind", "gateway").exit_code == 0
    assert new(tmp_path, "echo", "--kind", "plugin", "--implements", "gw").exit_code == 0
    assert (
        "from gw.contract import PLUGIN_SLOT" in (tmp_path / "modules/echo/module.py").read_text()
    )
    with pytest.raises(ScaffoldError, match="not a built-in gateway"):
        Scaffold(Kind.PLUGIN, "echo2", "gw", builtin_gateway=True)


def test_a_gateway_without_the_plugin_contract_is_not_one(tmp_path: Path) -> None:
    assert new(tmp_path, "gw", "--kind", "gateway").exit_code == 0
    contract = tmp_path / "modules" / "gw" / "contract" / "__init__.py"
    # A contract the plugin templates cannot use: no PLUGIN_SLOT (as before PluginSlot existed).
    contract.write_text(contract.read_text().replace("PLUGIN_SLOT", "GREETERS"))
    line = one_error_line(new(tmp_path, "echo", "--kind", "plugin", "--implements", "gw"))
    assert "not a gateway" in line and "PLUGIN_SLOT" in line


@pytest.mark.parametrize("name", ["a", "x10", "a_b2_c", "g" * MAX_NAME_LENGTH])
def test_a_gateway_declares_a_plugin_type_named_after_it(name: str) -> None:
    files = Scaffold(Kind.GATEWAY, name).render()
    contract = files[PurePosixPath("modules", name, "contract", "__init__.py")]
    type_id = f"{PLUGIN_BASE_TYPE}hx.app.{name}.plugin.v1.0~"
    assert f'type_id="{type_id}"' in contract
    # A valid slot for every module name: GTS tokens are [a-z_][a-z0-9_]*, module names fit.
    assert PluginSlot(contract=Shouter, type_id=type_id).name == f"hx.app.{name}.plugin"
    # The stand-in plugins the gateway's tests run with, and nothing of the old registry.
    stub = PurePosixPath("tests", f"{name}_stubs", f"{name}_stub", "module.py")
    assert f'depends_on=("{name}", "types_registry")' in files[stub]
    assert not [path for path, text in files.items() if "PluginRegistry" in text]


def test_a_plugin_asks_for_its_gateway_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(new_cli, "_interactive", lambda: True)
    # No gateway in the project: the built-in one is the only choice, and the default.
    result = new(tmp_path, "llm", "--kind", "plugin", stdin="\n")
    assert result.exit_code == 0, result.output
    assert "Gateway to implement (ai (built in)) [ai]" in result.output
    assert (tmp_path / "modules" / "llm" / "domain" / "provider.py").is_file()
    assert new(tmp_path, "gw", "--kind", "gateway").exit_code == 0
    assert new(tmp_path, "hub", "--kind", "gateway").exit_code == 0
    result = new(tmp_path, "echo", "--kind", "plugin", stdin="hub\n")
    assert result.exit_code == 0, result.output
    assert "Gateway to implement (gw, hub, ai (built in))" in result.output
    module = (tmp_path / "modules" / "echo" / "module.py").read_text()
    assert 'depends_on=("hub", "types_registry")' in module
    assert "from hub.contract import PLUGIN_SLOT" in module


def test_the_config_file_keeps_its_content(tmp_path: Path) -> None:
    config = tmp_path / "hyperspot.yaml"
    config.write_text("# mine\nserver:\n  port: 9000  # not the default\n")
    assert new(tmp_path, "stock", "--kind", "regular").exit_code == 0
    text = config.read_text()
    assert text.startswith("# mine\nserver:\n  port: 9000  # not the default\n")
    assert yaml.safe_load(text) == {"server": {"port": 9000}, "modules_path": ["./modules"]}
    assert new(tmp_path, "shop", "--kind", "regular").exit_code == 0
    assert config.read_text() == text


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("", "modules_path: [./modules]\n"),
        ("# only a comment\n", "# only a comment\nmodules_path: [./modules]\n"),
        ("a: 1", "a: 1\nmodules_path: [./modules]\n"),
        (
            "modules_path:\n  - ./mine   # keep\nb: 2\n",
            "modules_path:\n  - ./mine   # keep\n  - ./modules\nb: 2\n",
        ),
        ("modules_path:\n- ./mine", "modules_path:\n- ./mine\n- ./modules"),
        ("modules_path: [./mine]  # c\n", "modules_path: [./mine, ./modules]  # c\n"),
        ("modules_path: []\n", "modules_path: [./modules]\n"),
        ("modules_path:\nb: 2\n", "modules_path: [./modules]\nb: 2\n"),
        ("modules_path: ./mine\n", "modules_path: [./mine, ./modules]\n"),
        ("modules_path: [modules]\n", None),
        ("modules_path: [PROJECT/modules/]\n", None),
    ],
)
def test_modules_path_is_added_in_place(tmp_path: Path, before: str, after: str | None) -> None:
    before = before.replace("PROJECT", str(tmp_path))
    assert with_modules_path(before, tmp_path, tmp_path / "hyperspot.yaml") == after


def test_a_config_the_edit_cannot_keep_is_rewritten_as_data(tmp_path: Path) -> None:
    # An alias: editing the list in place would change the anchored one as well.
    text = "base: &b [./a]\nmodules_path: *b\n"
    rewritten = with_modules_path(text, tmp_path, tmp_path / "hyperspot.yaml")
    assert rewritten is not None and rewritten.startswith("# Rewritten by `hyperspot new`")
    assert yaml.safe_load(rewritten) == {"base": ["./a"], "modules_path": ["./a", "./modules"]}


@pytest.mark.parametrize(
    ("text", "problem"),
    [("a: [\n", "hyperspot.yaml:2: invalid YAML"), ("- 1\n", "must hold a mapping")],
)
def test_a_broken_config_file_is_refused(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "hyperspot.yaml").write_text(text)
    assert problem in one_error_line(new(tmp_path, "stock", "--kind", "regular"))
    assert snapshot(tmp_path) == {"hyperspot.yaml": text.encode()}


def test_an_existing_pyproject_is_kept_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "mine"\n')
    result = new(tmp_path, "stock", "--kind", "regular")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pyproject.toml").read_text() == '[project]\nname = "mine"\n'
    assert "note: kept" in result.output and 'pythonpath = ["modules"]' in result.output


def test_a_failed_write_leaves_the_project_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert new(tmp_path, "stock", "--kind", "regular").exit_code == 0
    (tmp_path / "hyperspot.yaml").write_text("# mine\n")
    before = snapshot(tmp_path)
    replace = os.replace
    calls = []

    def failing(source: Any, target: Any) -> None:
        calls.append(target)
        # All but hyperspot.yaml in place: 3 set aside, 5 moved in (the module, its 2 tests and
        # the 2 files of the gateway's stand-in plugins).
        if len(calls) == 9:
            raise OSError(28, "No space left on device")
        replace(source, target)

    monkeypatch.setattr("hyperspot.scaffolds.project.os.replace", failing)
    line = one_error_line(new(tmp_path, "stock", "--kind", "gateway", "--force"))
    assert "No space left on device" in line
    assert snapshot(tmp_path) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hyperspot-new-")]


def test_a_failed_write_removes_the_project_folder_it_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(source: Any, target: Any) -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr("hyperspot.scaffolds.project.os.replace", failing)
    line = one_error_line(new(tmp_path / "a" / "b", "stock", "--kind", "regular"))
    assert "Permission denied" in line
    assert list(tmp_path.iterdir()) == []


def test_a_missing_project_folder_is_created(tmp_path: Path) -> None:
    project = tmp_path / "new" / "project"
    result = new(project, "stock", "--kind", "regular")
    assert result.exit_code == 0, result.output
    assert f"next (in {project})" in result.output
    assert (project / "modules" / "stock" / "module.py").is_file()
    (tmp_path / "file").write_text("")
    with pytest.raises(ScaffoldError, match="is not a folder"):
        plan(tmp_path / "file", Kind.REGULAR, "stock")
    with pytest.raises(ScaffoldError, match="needs --implements GATEWAY"):
        plan(tmp_path, Kind.PLUGIN, "echo")


def test_an_unreadable_pyproject_gets_a_note(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("not [toml\n")
    result = new(tmp_path, "stock", "--kind", "regular")
    assert result.exit_code == 0, result.output
    assert "could not be read" in result.output
    assert not check_cli.detect(tmp_path).platform


def test_first_party_imports_are_sorted_like_ruff() -> None:
    text = "from zeta.api import B, A\nfrom alpha.contract import CONSTANT, Thing, helper\nx = 1\n"
    assert tidy_imports(text, {"zeta", "alpha"}) == (
        "from alpha.contract import CONSTANT, Thing, helper\nfrom zeta.api import A, B\nx = 1\n"
    )
    long = "from pkg.contract import " + ", ".join(f"Name{i}" for i in range(12))
    wrapped = tidy_imports(long, {"pkg"}).splitlines()
    assert wrapped[0] == "from pkg.contract import (" and wrapped[-1] == ")"
    assert wrapped[1:3] == ["    Name0,", "    Name1,"] and wrapped[-2] == "    Name11,"
    # Digits sort as numbers (natural order), as in ruff.
    assert tidy_imports("from x10 import A\nfrom x2 import B", {"x10", "x2"}) == (
        "from x2 import B\nfrom x10 import A"
    )


def test_every_kind_renders_its_layers() -> None:
    scaffolds = [Scaffold(kind, "demo", "gw" if kind is Kind.PLUGIN else None) for kind in Kind]
    for scaffold in [*scaffolds, Scaffold(Kind.PLUGIN, "demo", "ai", builtin_gateway=True)]:
        files = scaffold.render()
        names = {str(path) for path in files}
        for layer in ("module.py", "config.py", "contract", "domain", "api", "infra"):
            assert any(n.startswith(f"modules/demo/{layer}") for n in names), (scaffold, layer)
        assert {"tests/test_demo.py", "tests/test_demo_api.py"} <= names
        assert all("${" not in text for text in files.values())


# `hyperspot check`.


def test_check_finds_what_to_check(tmp_path: Path) -> None:
    platform = check_cli.detect(PLATFORM)
    assert platform.platform and platform.targets == ("hyperspot", "tests")
    assert check_cli.detect(PLATFORM / "hyperspot" / "cli").root == PLATFORM
    assert new(tmp_path, "stock", "--kind", "regular").exit_code == 0
    project = check_cli.detect(tmp_path / "modules" / "stock")
    assert (project.root, project.platform, project.targets) == (
        tmp_path,
        False,
        ("modules", "tests"),
    )
    chosen = check_cli.detect(tmp_path, [tmp_path / "modules" / "stock" / "module.py"])
    assert chosen.targets == ("modules/stock/module.py",)


@pytest.mark.parametrize(
    ("setup", "problem"),
    [("empty", "nothing to check"), ("missing path", "no such path")],
)
def test_check_refuses_when_there_is_nothing_to_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setup: str, problem: str
) -> None:
    (tmp_path / "hyperspot.yaml").write_text("")
    if setup == "missing path":
        (tmp_path / "modules").mkdir()
    monkeypatch.chdir(tmp_path)
    args = ["check", "nope.py"] if setup == "missing path" else ["check"]
    assert problem in one_error_line(CliRunner().invoke(app, args))


def test_a_missing_lint_command_is_a_failure_not_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    project = check_cli.Project(PLATFORM, False, ("modules",), None)
    usage = "Usage: python -m hyperspot [OPTIONS] COMMAND\nError: No such command 'lint'."
    monkeypatch.setattr(check_cli, "_run", lambda *args, **kwargs: (2, usage))
    status, summary, output = check_cli._hyperspot_lint(project)
    assert status == "not available" and "no `hyperspot lint`" in summary and output == usage
    assert check_cli._tests(project)[:2] == ("failed", f"no tests/ folder in {PLATFORM}")

    def low_coverage(project: check_cli.Project, *commands: list[str], **kwargs: Any) -> Any:
        if commands[-1][:2] == ["coverage", "report"]:
            return 2, "TOTAL    100     15    85%\nCoverage failure: total of 85 < fail-under=90"
        return 0, "==== 3 passed in 1.00s ===="

    monkeypatch.setattr(check_cli, "_run", low_coverage)
    tested = check_cli._tests(check_cli.Project(PLATFORM, False, ("modules",), "tests"))
    assert tested[:2] == ("failed", "3 passed in 1.00s; coverage 85% (at least 90% needed)")
    absent = check_cli.Step("imaginary", "no_such_tool_here", check_cli._mypy)
    outcome = check_cli._perform(absent, project)
    assert outcome.status == "not available" and "not installed" in outcome.summary


@pytest.mark.slow
def test_check_reports_failures_and_fix_repairs_what_ruff_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config
) -> None:
    # A small project that fails: unformatted, an unused import, a failing test.
    (tmp_path / "pyproject.toml").write_text(render_project("small"))
    package = tmp_path / "modules" / "small"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "values.py").write_text("import os\nVALUE=1\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_small.py").write_text(
        "from small.values import VALUE\n\n\ndef test_value() -> None:\n    assert VALUE == 2\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MYPY_CACHE_DIR", mypy_cache(pytestconfig, tmp_path, "scaffolds-small"))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 1, result.output
    table = result.output[result.output.index("hyperspot check") :]
    rows = {line.split("│")[1].strip(): line for line in table.splitlines() if "│" in line}
    assert "failed" in rows["ruff format"] and "failed" in rows["ruff check"]
    assert "passed" in rows["mypy --strict"] and "failed" in rows["pytest + coverage"]
    assert "1 failed" in rows["pytest + coverage"]
    assert "F401" in result.output  # each failed step's output is shown
    assert "assert 1 == 2" in result.output
    assert not list(tmp_path.glob(".coverage.*"))  # combined even though the tests failed

    fixed = CliRunner().invoke(app, ["check", "--fix"])
    assert fixed.exit_code == 1  # the test still fails
    assert (package / "values.py").read_text() == "VALUE = 1\n"
    table = fixed.output[fixed.output.index("hyperspot check") :]
    rows = {line.split("│")[1].strip(): line for line in table.splitlines() if "│" in line}
    assert "passed" in rows["ruff format"] and "passed" in rows["ruff check"]
