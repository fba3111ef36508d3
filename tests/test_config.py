"""Configuration: sources, precedence, and one clear message for each kind of mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import LIFECYCLE_MODULES, Launcher, run_cli

from hyperspot.platform.config import MASK, load_config, mask_url
from hyperspot.platform.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hyperspot.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file() -> None:
    loaded = load_config(None, environ={})
    assert loaded.settings.server.port == 8087
    assert loaded.settings.database_url.startswith("sqlite:///")
    assert str(loaded.source_of(("server", "port"))) == "default"


def test_env_overrides_file_which_overrides_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 9001\n  host: 0.0.0.0\n")
    loaded = load_config(path, environ={"HYPERSPOT_SERVER__PORT": "9002"})
    assert loaded.settings.server.port == 9002
    assert loaded.settings.server.host == "0.0.0.0"
    assert str(loaded.source_of(("server", "port"))) == "env HYPERSPOT_SERVER__PORT"
    assert str(loaded.source_of(("server", "host"))) == f"{path}:3"


def test_env_json_values_and_module_sections(tmp_path: Path) -> None:
    loaded = load_config(
        None,
        environ={
            "HYPERSPOT_SERVER__CORS__ALLOW_ORIGINS": '["https://a.example"]',
            "HYPERSPOT_MODULES__HELLO__SHOUT": "true",
            "HYPERSPOT_TEST_POSTGRES_URL": "postgresql://not-config",
        },
    )
    assert loaded.settings.server.cors.allow_origins == ["https://a.example"]
    assert loaded.settings.modules == {"hello": {"shout": "true"}}


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        (
            "server:\n  prot: 1\n",
            {},
            "server.prot: unknown key (from {file}:2); did you mean 'port'?",
        ),
        (
            "server:\n  port: many\n",
            {},
            "server.port: Input should be a valid integer, unable to parse string as an integer, "
            "got 'many' (from {file}:2)",
        ),
        (
            "",
            {"HYPERSPOT_SERVER__PORT": "99999"},
            "server.port: Input should be less than or equal to 65535, got '99999' "
            "(from env HYPERSPOT_SERVER__PORT)",
        ),
        (
            "",
            {"HYPERSPOT_SERVR__PORT": "1"},
            "servr: unknown key (from env HYPERSPOT_SERVR__PORT); did you mean 'server'?",
        ),
        ("server: [1, 2\n", {}, "{file}:2: invalid YAML"),
        ("- 1\n- 2\n", {}, "{file}:1: the config file must hold a mapping of sections"),
        (
            "",
            {"HYPERSPOT_SERVER__CORS__ALLOW_ORIGINS": "[oops"},
            "env HYPERSPOT_SERVER__CORS__ALLOW_ORIGINS: invalid JSON value",
        ),
        (
            "server: 5\n",
            {"HYPERSPOT_SERVER__PORT": "1"},
            "env HYPERSPOT_SERVER__PORT: server is not a section",
        ),
    ],
)
def test_each_error_names_key_and_source(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ)
    assert message.format(file=path) in str(caught.value)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*nope.yaml: No such file"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_mask_url() -> None:
    assert mask_url("postgresql://app:s3cret@db:5432/x") == f"postgresql://app:{MASK}@db:5432/x"
    assert mask_url("sqlite:///tmp/x.db") == "sqlite:///tmp/x.db"


# The same mistakes stop the real server before any module runs, with one line and exit 1.


def test_up_refuses_unknown_key_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "logging:\n  level: INFO\n  colour: blue\n")
    result = run_cli("up", "--config", str(path))
    assert result.returncode == 1
    assert f"logging.colour: unknown key (from {path}:3)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_up_refuses_wrong_type_from_env(tmp_path: Path) -> None:
    result = run_cli("up", env={"HYPERSPOT_SERVER__GRACE_PERIOD_S": "soon"})
    assert result.returncode == 1
    assert "server.grace_period_s: Input should be a valid number" in result.stderr
    assert "(from env HYPERSPOT_SERVER__GRACE_PERIOD_S)" in result.stderr


def test_up_refuses_missing_required_module_value(tmp_path: Path) -> None:
    path = write(tmp_path, f"modules_path: [{LIFECYCLE_MODULES}]\n")
    result = run_cli("up", "--config", str(path))
    assert result.returncode == 1
    assert (
        "modules.alpha.events_file: required value is missing (set it in the config file or in "
        "HYPERSPOT_MODULES__ALPHA__EVENTS_FILE)" in result.stderr
    )


def test_up_refuses_bad_module_value_and_unknown_module(tmp_path: Path) -> None:
    path = write(tmp_path, "modules:\n  hello:\n    max_name_length: 0\n")
    result = run_cli("up", "--config", str(path))
    assert (
        "modules.hello.max_name_length: Input should be greater than or equal to 1" in result.stderr
    )
    assert f"(from {path}:3)" in result.stderr
    path = write(tmp_path, "modules:\n  helo: {}\n")
    result = run_cli("up", "--config", str(path))
    assert result.returncode == 1
    assert (
        f"modules.helo: no such module (from {path}:2; "
        "installed: access, ai, ai_demo, ai_local, ai_openai, audit, hello, notes, tenants, "
        "types_registry)" in result.stderr
    )
    path = write(tmp_path, "modules:\n  hello:\n    volume: 11\n")
    assert (
        f"modules.hello.volume: unknown key (from {path}:3)"
        in run_cli("up", "--config", str(path)).stderr
    )
    path = write(tmp_path, "modules:\n  hello:\n    enabled: maybe\n")
    assert (
        "modules.hello.enabled: expected true or false"
        in run_cli("up", "--config", str(path)).stderr
    )


def test_env_override_reaches_the_running_server(launcher: Launcher) -> None:
    server = launcher.start(
        {"modules": {"hello": {"default_name": "file", "shout": False}}},
        # Environment values are text: "false" must switch a module off as YAML's false does.
        env={
            "HYPERSPOT_MODULES__HELLO__SHOUT": "true",
            "HYPERSPOT_MODULES__NOTES__ENABLED": "false",
        },
    )
    greeting = server.client.get("/hello/v1/greetings/en").json()
    assert greeting["message"] == "HELLO, FILE!"
    assert server.client.get("/notes/v1/notes").status_code == 404
    modules = {m["name"]: m for m in server.client.get("/health").json()["modules"]}
    assert modules["notes"]["state"] == "disabled"


def test_config_show_lists_sources_and_masks_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  url: postgresql://app:hunter2@db.internal/hs\n")
    result = run_cli(
        "config", "show", "--json", "--config", str(path), env={"HYPERSPOT_SERVER__PORT": "9100"}
    )
    assert result.returncode == 0, result.stderr
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert rows["server.port"] == {
        "key": "server.port",
        "value": 9100,
        "source": "env HYPERSPOT_SERVER__PORT",
    }
    assert rows["database.url"]["value"] == f"postgresql://app:{MASK}@db.internal/hs"
    assert rows["database.url"]["source"] == f"{path}:2"
    assert rows["logging.level"]["source"] == "default"
    assert "hunter2" not in result.stdout
    table = run_cli("config", "show", "--config", str(path))
    assert "hunter2" not in table.stdout and "server.port" in table.stdout


def test_module_config_cross_field_rule(tmp_path: Path) -> None:
    result = run_cli("up", env={"HYPERSPOT_MODULES__NOTES__PAGE_SIZE": "500"})
    assert result.returncode == 1
    assert "modules.notes: Value error, page_size (500) exceeds max_page_size (200)" in (
        result.stderr
    )
