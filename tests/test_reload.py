"""Configuration reload without a restart: SIGHUP and ``POST /admin/reload``.

The server runs the plugin fixture modules (``tests/fixtures/plugins``): the ``salute`` gateway's
plugin selection is what changes live; its ``salute_fr`` plugin has a reloadable section too, and
``hello`` (no reload hook) and platform settings stand for what needs a restart.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import ROOT, Launcher, Server, add_tenant, bearer
from test_plugins import greet, member, plugins_config

from hyperspot.platform.config import changed_paths
from hyperspot.sandbox.databases import ProvisionedDatabase

# Plugins and reload behave alike on every database: shown once, on SQLite (tests(db='sqlite')).
pytestmark = pytest.mark.slow


def config_path(launcher: Launcher, server: Server) -> Path:
    """The file the server was started with (conftest's Launcher names it after the port)."""
    return launcher.tmp_path / f"config-{server.url.rsplit(':', 1)[1]}.yaml"


def rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(config)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


def select(plugin: str, **more: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        config["modules"].setdefault("salute", {}).update(default_plugin=plugin, **more)

    return change


def wait_until(condition: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def plugin_of(server: Server, tenant: str = "acme") -> str:
    answer = greet(server, tenant)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["plugin"])


def reload(server: Server, headers: dict[str, str] | None = None) -> httpx.Response:
    return server.client.post("/admin/reload", headers=headers or bearer(ROOT))


def test_sighup_switches_the_selection_and_keeps_the_old_one_on_errors(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    server = launcher.start(plugins_config(database, {"salute": {"default_plugin": "english"}}))
    add_tenant(server, "acme")
    path = config_path(launcher, server)
    assert plugin_of(server) == "english"

    rewrite(path, select("french"))
    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: plugin_of(server) == "french")
    assert "configuration reloaded: applied to salute" in server.log()

    # The gateway refuses a plugin it does not have: its previous selection stays.
    rewrite(path, select("klingon"))
    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "no plugin named 'klingon'" in server.log())
    assert (
        "configuration reload: modules.salute: refused its new section, the previous one stays: "
        "modules.salute.default_plugin: no plugin named 'klingon' (plugins: english, french)"
    ) in server.log()
    assert plugin_of(server) == "french"

    # An unreadable file is rejected whole.
    path.write_text("modules: [", encoding="utf-8")
    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reload rejected" in server.log())
    assert "the running configuration stays: " in server.log()
    assert "invalid YAML" in server.log()
    assert plugin_of(server) == "french"
    # SIGHUP reloads; it never stopped the server.
    assert server.process.poll() is None
    assert server.stop() == 0


def test_admin_reload_applies_reports_and_refuses(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    server = launcher.start(plugins_config(database, {"salute": {"default_plugin": "english"}}))
    add_tenant(server, "acme")
    path = config_path(launcher, server)

    # Platform administrators only.
    assert reload(server, member("acme")).status_code == 403
    assert reload(server, bearer("acme")).status_code == 403
    assert server.client.post("/admin/reload").status_code == 401

    unchanged = reload(server)
    assert unchanged.status_code == 200, unchanged.text
    assert unchanged.json() == {
        "status": "unchanged",
        "applied": [],
        "restart_required": [],
        "errors": [],
        "detail": "",
    }

    def change(config: dict[str, Any]) -> None:
        select("french", fallback_plugin="english")(config)
        config["modules"]["salute_fr"] = {"fail_names": ["Bob"]}
        config["modules"]["hello"] = {"shout": True}
        config["modules"]["salute_en"] = {"enabled": False}
        config["server"]["max_body_bytes"] = 2048

    rewrite(path, change)
    report = reload(server)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["status"] == "applied"
    assert body["applied"] == ["salute", "salute_fr"]
    assert body["errors"] == []
    restart = body["restart_required"]
    assert len(restart) == 3, restart
    assert restart[0].startswith(f"server.max_body_bytes: needs a restart (from {path}:")
    assert restart[1] == "modules.hello: needs a restart (the module has no reload hook)"
    assert restart[2].startswith(f"modules.salute_en.enabled: needs a restart (from {path}:")
    # Both modules' new sections are in force: french serves, fails for Bob, english takes over.
    assert plugin_of(server) == "french"
    fallback = greet(server, "acme", "Bob")
    assert fallback.json()["plugin"] == "english", fallback.text
    assert fallback.json()["failures"] == ["plugin 'french' failed (RuntimeError)"]
    # Not applied: a 2 KB body would have been refused with 413.
    big = server.client.post("/admin/reload", headers=bearer(ROOT), content=b"x" * 4096)
    assert big.status_code != 413

    # A gateway that refuses its new section keeps the old one: partial.
    rewrite(path, select("klingon"))
    partial = reload(server).json()
    assert partial["status"] == "partial"
    assert partial["applied"] == []
    assert partial["errors"] == [
        "modules.salute: refused its new section, the previous one stays: "
        "modules.salute.default_plugin: no plugin named 'klingon' (plugins: english, french)"
    ]
    assert plugin_of(server) == "french"

    # An invalid configuration changes nothing: 422, naming the key and where it is.
    rewrite(path, lambda config: config["modules"]["salute"].update(colour="blue"))
    refused = reload(server)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/invalid-configuration")
    assert refused.json()["detail"].startswith(
        "invalid configuration, the running one stays: modules.salute.colour: unknown key (from "
        f"{path}:"
    )
    assert plugin_of(server) == "french"
    assert "configuration reload rejected" in server.log()


@pytest.mark.slow  # two worker processes
def test_workers_reload_on_sighup_to_the_supervisor_and_on_the_endpoint(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    config = plugins_config(database, {"salute": {"default_plugin": "english"}})
    server = launcher.start(config | {"server": {"workers": 2}})
    wait_until(lambda: server.log().count("Application startup complete") == 2)
    add_tenant(server, "acme")
    path = config_path(launcher, server)

    def everyone_uses(plugin: str) -> bool:
        # A fresh connection each time: the kernel hands it to either worker.
        for _ in range(12):
            with httpx.Client(base_url=server.url, timeout=10) as client:
                answer = client.get(
                    "/salute/v1/greeting", params={"name": "Ann"}, headers=member("acme")
                )
            if answer.json()["plugin"] != plugin:
                return False
        return True

    assert everyone_uses("english")
    applied = "configuration reloaded: applied to salute"

    # SIGHUP to the supervisor reaches both workers, and stops nobody.
    rewrite(path, select("french"))
    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: server.log().count(applied) == 2)
    assert "SIGHUP: the workers reload their configuration" in server.log()
    assert everyone_uses("french")
    assert server.process.poll() is None

    # The endpoint reaches one worker, which has the supervisor reload the others.
    rewrite(path, select("english"))
    report = reload(server)
    assert report.status_code == 200, report.text
    assert report.json()["applied"] == ["salute"]
    assert report.json()["detail"] == "the other worker processes reload too"
    wait_until(lambda: server.log().count(applied) == 4)
    assert everyone_uses("english")
    assert server.stop() == 0


def test_changed_paths_lists_leaves_that_differ() -> None:
    old = {"server": {"port": 1, "cors": {"allow_origins": []}}, "a": 1, "gone": 2}
    new = {"server": {"port": 2, "cors": {"allow_origins": ["*"]}}, "a": 1, "added": {"b": 3}}
    assert changed_paths(old, new) == [
        ("added", "b"),
        ("gone",),
        ("server", "cors", "allow_origins"),
        ("server", "port"),
    ]
    assert changed_paths(old, old) == []
