"""The module lifecycle, seen from outside: a real server process and its events."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from conftest import FIXTURES, Launcher, clean_env, probe_config, run_cli

PROBES = ("alpha", "beta", "gamma")


def events(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_phases_run_in_dependency_order_and_stop_in_reverse(
    launcher: Launcher, tmp_path: Path
) -> None:
    log = tmp_path / "events.log"
    server = launcher.start(probe_config(log))
    health = server.client.get("/health").json()
    assert health["status"] == "ok"
    assert {m["name"]: m["state"] for m in health["modules"]} == {
        "access": "ready",
        "ai": "ready",
        "ai_demo": "ready",
        "ai_local": "ready",
        "ai_openai": "ready",
        "audit": "ready",
        "tenants": "ready",
        "alpha": "ready",
        "beta": "ready",
        "gamma": "ready",
        "hello": "ready",
        "notes": "ready",
        "types_registry": "ready",
    }
    assert server.stop() == 0
    expected = [f"{name} {phase}" for phase in ("init", "migrate", "start") for name in PROBES]
    expected += [f"{name} stop" for name in reversed(PROBES)]
    assert events(log) == expected


def test_failed_init_aborts_start_up_and_stops_initialized_modules(
    launcher: Launcher, tmp_path: Path
) -> None:
    log = tmp_path / "events.log"
    process, log_path, _ = launcher.spawn(probe_config(log, beta={"fail_in": "init"}))
    assert process.wait(timeout=30) == 1
    output = log_path.read_text()
    assert "error: module 'beta' failed during init: beta was told to fail in init" in output
    assert "Traceback" not in output.split("error:")[-1]
    # alpha was initialized, so it is stopped; beta failed, gamma never ran.
    assert events(log) == ["alpha init", "beta init", "alpha stop"]


def test_failed_start_stops_everything_already_initialized(
    launcher: Launcher, tmp_path: Path
) -> None:
    log = tmp_path / "events.log"
    process, log_path, _ = launcher.spawn(probe_config(log, gamma={"fail_in": "start"}))
    assert process.wait(timeout=30) == 1
    assert "module 'gamma' failed during start" in log_path.read_text()
    assert events(log)[-3:] == ["gamma stop", "beta stop", "alpha stop"]


def test_unhealthy_module_degrades_readiness_without_stopping(
    launcher: Launcher, tmp_path: Path
) -> None:
    server = launcher.start(probe_config(tmp_path / "e.log", beta={"unhealthy": True}))
    response = server.client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    beta = next(m for m in body["modules"] if m["name"] == "beta")
    assert beta == {
        "name": "beta",
        "version": "0.1.0",
        "state": "ready",
        "healthy": False,
        "detail": "the probe was told to be unhealthy",
    }
    assert server.client.get("/healthz").status_code == 200
    assert server.client.get("/alpha/v1/slow").status_code == 200


def test_crashed_background_task_marks_module_unhealthy(launcher: Launcher, tmp_path: Path) -> None:
    server = launcher.start(probe_config(tmp_path / "e.log", gamma={"crash_task": True}))
    body = server.client.get("/health").json()
    gamma = next(m for m in body["modules"] if m["name"] == "gamma")
    assert body["status"] == "degraded"
    assert "the ticker fell over" in gamma["detail"]


def test_disabled_module_is_skipped_and_listed(launcher: Launcher, tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    server = launcher.start(probe_config(log, gamma={"enabled": False}))
    states = {m["name"]: m["state"] for m in server.client.get("/health").json()["modules"]}
    assert states["gamma"] == "disabled"
    assert server.stop() == 0
    assert not any(line.startswith("gamma") for line in events(log))


def test_sigterm_lets_in_flight_requests_finish(launcher: Launcher, tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    server = launcher.start(merge_grace(probe_config(log), 10))
    results: list[httpx.Response] = []
    worker = threading.Thread(
        target=lambda: results.append(httpx.get(f"{server.url}/alpha/v1/slow?ms=1500", timeout=30))
    )
    worker.start()
    time.sleep(0.5)  # the request is in flight
    server.process.send_signal(signal.SIGTERM)
    worker.join(timeout=30)
    assert results and results[0].status_code == 200
    assert results[0].json() == {"slept_ms": 1500, "tags": []}
    assert server.process.wait(timeout=30) == 0
    assert events(log)[-1] == "alpha stop"


def test_requests_past_the_grace_period_are_cut(launcher: Launcher, tmp_path: Path) -> None:
    server = launcher.start(merge_grace(probe_config(tmp_path / "e.log"), 1))
    outcomes: list[object] = []

    def call() -> None:
        try:
            outcomes.append(httpx.get(f"{server.url}/alpha/v1/slow?ms=20000", timeout=30))
        except httpx.HTTPError as error:
            outcomes.append(error)

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.5)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    assert time.monotonic() - started < 10
    worker.join(timeout=30)
    assert len(outcomes) == 1
    cut = outcomes[0]
    assert isinstance(cut, httpx.Response), cut
    assert cut.status_code == 503
    assert cut.headers["content-type"] == "application/problem+json"
    assert cut.json()["detail"] == "the server is shutting down; retry the request"
    assert cut.json()["request_id"] == cut.headers["x-request-id"] != ""


def merge_grace(config: dict[str, object], seconds: float) -> dict[str, object]:
    return {**config, "server": {"grace_period_s": seconds}}


def test_dependency_cycle_names_the_path(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"modules_path: [{FIXTURES / 'cyclic'}]\n")
    result = run_cli("up", "--config", str(config))
    assert result.returncode == 1
    assert "module dependency cycle: cyc_a -> cyc_b -> cyc_c -> cyc_a" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_dependency_names_both_modules(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"modules_path: [{FIXTURES / 'missing'}]\n")
    result = run_cli("up", "--config", str(config))
    assert result.returncode == 1
    assert "module 'needs_ghost' depends on 'ghost', which is not installed" in result.stderr


def test_port_in_use_is_one_clear_line(launcher: Launcher) -> None:
    server = launcher.start()
    port = server.url.rsplit(":", 1)[1]
    result = run_cli("up", "--port", port, env={"HYPERSPOT_DATA_DIR": str(launcher.tmp_path / "d")})
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_json_logs_carry_the_request_id(launcher: Launcher) -> None:
    server = launcher.start({"logging": {"format": "json"}})
    server.client.get("/hello/v1/languages", headers={"X-Request-Id": "json-trace-1"})
    assert server.stop() == 0
    entries = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    access = [e for e in entries if e["logger"] == "hyperspot.access" and "/hello/" in e["message"]]
    assert access[0]["request_id"] == "json-trace-1"
    assert access[0]["status"] == 200
    assert access[0]["message"].startswith("GET /hello/v1/languages 200")
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in entries)


def test_reload_mode_serves_and_stops(launcher: Launcher) -> None:
    config_path, port = launcher.config()
    process = subprocess.Popen(
        [sys.executable, "-m", "hyperspot", "up", "--reload", "--config", str(config_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=clean_env(),
        cwd=launcher.tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(
                    f"http://127.0.0.1:{port}/hello/v1/languages", timeout=1
                ).status_code
            except httpx.TransportError:
                time.sleep(0.1)
        assert status == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
