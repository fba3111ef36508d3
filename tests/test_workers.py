"""``server.workers``: several server processes sharing one port, under one supervisor."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import Launcher, Server, probe_config, run_cli

# Each test starts a multi-process server: end to end, and not backend-specific.
pytestmark = pytest.mark.slow

WORKERS = {"server": {"workers": 2}}


def children(pid: int) -> set[int]:
    try:
        return set(map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split()))
    except FileNotFoundError:
        return set()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited: only its exit status is left


def wait_until(condition: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def serving_workers(server: Server, count: int = 2) -> set[int]:
    """The workers once ``count`` of them answer (each logs its own start-up)."""
    wait_until(lambda: server.log().count("Application startup complete") >= count)
    workers = children(server.process.pid)
    assert len(workers) == count
    return workers


def test_workers_share_the_port_and_stop_together_on_sigterm(
    launcher: Launcher, tmp_path: Path
) -> None:
    log_file = tmp_path / "logs" / "server.log"
    server = launcher.start(WORKERS | {"logging": {"file": {"path": str(log_file)}}})
    workers = serving_workers(server)
    assert "with 2 worker processes" in server.log()
    # Each new connection goes to whichever worker accepts it first.
    for _ in range(10):
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/hello/v1/greetings/en", params={"name": "Ann"}).status_code == 200
    assert server.client.get("/health").json()["status"] == "ok"

    assert server.stop(signal.SIGTERM) == 0
    assert not any(alive(pid) for pid in workers)
    log = server.log()
    assert log.count("Application shutdown complete") == 2
    assert "all workers stopped" in log
    # One writer per log file: each worker writes its own.
    names = sorted(path.name for path in log_file.parent.iterdir())
    assert names == ["server.worker-0.log", "server.worker-1.log"]
    assert all("ready: " in (log_file.parent / name).read_text() for name in names)


def test_a_worker_that_dies_is_replaced_and_sigint_stops_the_rest(launcher: Launcher) -> None:
    server = launcher.start(WORKERS)
    first, second = sorted(serving_workers(server))
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: len(children(server.process.pid) - {second}) == 1)
    wait_until(lambda: server.log().count("Application startup complete") >= 3)
    assert "worker 0 exited with code -9; starting a new one" in server.log()
    assert second in children(server.process.pid)
    assert server.client.get("/healthz").status_code == 200

    workers = children(server.process.pid)
    # Ctrl-C in a terminal reaches only the supervisor (the workers have their own process
    # group); it stops each worker once, gracefully.
    assert server.stop(signal.SIGINT) == 0
    assert not any(alive(pid) for pid in workers)


def test_a_worker_failing_at_start_up_stops_the_server_with_its_error(
    launcher: Launcher, tmp_path: Path
) -> None:
    config = probe_config(tmp_path / "events.log", gamma={"fail_in": "start"})
    process, log_path, _ = launcher.spawn(config | WORKERS)
    assert process.wait(timeout=30) == 1
    output = log_path.read_text()
    assert "error: module 'gamma' failed during start: gamma was told to fail in start" in output
    assert "Traceback" not in output.split("error:")[-1]
    assert not children(process.pid)


def test_workers_stop_when_their_supervisor_is_killed(launcher: Launcher) -> None:
    server = launcher.start(WORKERS)
    workers = serving_workers(server)
    server.process.kill()
    server.process.wait(timeout=10)
    # Orphans would keep the port and the database: each notices and stops gracefully.
    wait_until(lambda: not any(alive(pid) for pid in workers))


def test_reload_serves_one_process() -> None:
    result = run_cli("up", "--reload", "--workers", "2")
    assert result.returncode == 1
    assert "--reload serves one process: leave out --workers" in result.stderr
