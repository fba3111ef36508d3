"""ClientHub across processes: one consumer, the same code, in every transport.

The fixture modules in ``tests/fixtures/rpc``: ``echo`` provides ``EchoApi`` (it reports the
caller's context, trace and process as the far side sees them) and ``relay`` calls it and
``NotesApi`` through the hub from its REST operations. Config alone moves echo and notes between
this process (local), a child process reached over HTTP, and one reached over gRPC.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from conftest import (
    ROOT,
    Launcher,
    Server,
    add_tenant,
    bearer,
    clean_env,
    free_port,
    run_cli,
    secured_config,
)

from hyperspot.sandbox.databases import ProvisionedDatabase

RPC_MODULES = Path(__file__).parent / "fixtures" / "rpc"
TRANSPORTS = {
    "local": {"runtime": "local"},
    "http": {"runtime": "oop", "transport": "http"},
    "grpc": {"runtime": "oop", "transport": "grpc"},
}
CHILD = re.compile(r"process (\d+) at (http://127\.0\.0\.1:\d+)")


def rpc_config(database: ProvisionedDatabase, placement: dict[str, Any]) -> dict[str, Any]:
    return secured_config(
        database.url.url,
        {
            "modules_path": [str(RPC_MODULES)],
            "clients": {"timeout_s": 1.0, "retries": 1, "backoff_s": 0.05},
            "modules": {"echo": dict(placement), "notes": dict(placement)},
        },
    )


def member(tenant: str, subject: str = "ann") -> dict[str, str]:
    return bearer(tenant, subject, roles=("member",))


def child_of(server: Server, module: str) -> tuple[int, str]:
    """The pid and address of the process serving ``module``, from /health."""
    for entry in server.client.get("/health").json()["modules"]:
        if entry["name"] == module:
            found = CHILD.search(entry["detail"])
            assert found, entry
            return int(found.group(1)), found.group(2)
    raise AssertionError(f"{module} not in /health")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by a dead parent's init) is gone too.
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split()[2] != "Z"


def wait_until(check: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_one_consumer_in_every_transport(
    launcher: Launcher, database: ProvisionedDatabase, transport: str
) -> None:
    server = launcher.start(rpc_config(database, TRANSPORTS[transport]))
    add_tenant(server, "acme")
    add_tenant(server, "globex")
    remote = transport != "local"

    # The far side sees the caller's own context, in the caller's trace.
    answer = server.client.get("/relay/v1/whoami", headers=member("acme"))
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    assert seen["far"]["subject"] == "ann"
    assert seen["far"]["tenant"] == "acme"
    assert seen["far"]["roles"] == ["member"]
    assert seen["far"]["trace_id"] == seen["near_trace_id"] == answer.headers["x-trace-id"]
    assert (seen["far"]["pid"] != seen["near_pid"]) is remote
    if remote:
        assert child_of(server, "echo")[0] == seen["far"]["pid"]

    # Tenant scoping holds on the far side: another tenant's note is as missing as no note.
    created = server.client.post("/relay/v1/notes", json={"title": "plan"}, headers=member("acme"))
    assert created.status_code == 200, created.text
    note_id = created.json()["id"]
    mine = server.client.get(f"/relay/v1/notes/{note_id}", headers=member("acme"))
    assert mine.status_code == 200 and mine.json()["title"] == "plan"
    theirs = server.client.get(f"/relay/v1/notes/{note_id}", headers=member("globex", "bob"))
    assert theirs.status_code == 404, theirs.text

    # The contract's typed error arrives as that type; a call without a context works too.
    refused = server.client.post("/relay/v1/fail", json={"typed": True}, headers=member("acme"))
    assert refused.status_code == 409 and "refused for ann" in refused.json()["detail"]
    version = server.client.get("/relay/v1/version", headers=member("acme"))
    assert version.json() == {"version": "echo 1"}

    if remote:
        # Anything else that goes wrong far away is one ClientUnavailable: a 503 problem.
        broken = server.client.post("/relay/v1/fail", json={"typed": False}, headers=member("acme"))
        assert broken.status_code == 503, broken.text
        assert broken.headers["content-type"] == "application/problem+json"
        # The configured timeout (1 s) bounds a call that does not answer.
        started = time.monotonic()
        slow = server.client.post("/relay/v1/sleep", json={"seconds": 5}, headers=member("acme"))
        assert slow.status_code == 503
        assert time.monotonic() - started < 4
        assert "no answer within 1.0 s" in server.log()
        # The module's REST operations are served through the platform's gateway.
        pid = server.client.get("/echo/v1/pid", headers=member("acme"))
        assert pid.json() == {"pid": seen["far"]["pid"], "tenant": "acme"}
        assert server.client.get("/echo/v1/pid").status_code == 401
        assert "/echo/v1/pid" in server.client.get("/openapi.json").json()["paths"]


@pytest.mark.slow  # processes, not databases: once, on SQLite
def test_a_hung_module_process_is_killed_and_restarted(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    config = rpc_config(database, TRANSPORTS["http"])
    config["clients"].update(liveness_interval_s=0.3, liveness_failures=2)
    server = launcher.start(config)
    add_tenant(server, "acme")
    pid, _ = child_of(server, "echo")

    # Its event loop blocked for two minutes: alive, and of no use to anyone.
    started = time.monotonic()
    frozen = server.client.post("/echo/v1/freeze", json={"seconds": 120}, headers=member("acme"))
    assert frozen.status_code == 503, frozen.text  # its connection died with it
    assert time.monotonic() - started < 15
    assert f"process {pid} left /healthz unanswered 2 times in a row" in server.log()

    def serves_again() -> bool:
        answer = server.client.get("/echo/v1/pid", headers=member("acme"))
        return answer.status_code == 200 and answer.json()["pid"] != pid

    wait_until(serves_again)
    assert not alive(pid)
    assert child_of(server, "echo")[0] != pid
    assert "restarts 1" in next(
        entry["detail"]
        for entry in server.client.get("/health").json()["modules"]
        if entry["name"] == "echo"
    )


@pytest.mark.slow  # processes, not databases: once, on SQLite
def test_a_module_process_streams_through_the_gateway(
    launcher: Launcher, database: ProvisionedDatabase, tmp_path: Path
) -> None:
    config = rpc_config(database, TRANSPORTS["http"])
    log_file = tmp_path / "platform.log"
    config["logging"] = {"file": {"path": str(log_file)}}
    server = launcher.start(config)
    add_tenant(server, "acme")
    pid, _ = child_of(server, "echo")
    url = "/echo/v1/ticks"
    headers = {**member("acme"), "Accept": "text/event-stream"}

    # Each event arrives when the module's process sends it, not when the stream ends.
    started = time.monotonic()
    with server.client.stream(
        "GET", url, params={"count": 4, "interval_ms": 400}, headers=headers
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        lines = answer.iter_lines()
        assert next(lines) == 'data: {"number":0}'
        assert time.monotonic() - started < 1.0  # the last one comes after 1.2 s
        rest = [line for line in lines if line]
    assert rest == [f'data: {{"number":{n}}}' for n in (1, 2, 3)]
    wait_until(lambda: f"echo ticks: 4 of 4 sent by process {pid}" in server.log())
    # Its log lines reach the platform's console and file, each naming the module process.
    assert re.search(rf"WARNING +echo:{pid} echo \[.*\] echo ticks: 4 of 4", server.log())
    filed = [json.loads(line) for line in log_file.read_text().splitlines()]
    ticks = next(entry for entry in filed if "echo ticks: 4 of 4" in entry["message"])
    assert (ticks["process"], ticks["logger"], ticks["level"]) == (f"echo:{pid}", "echo", "WARNING")
    assert ticks["request_id"] not in ("", "-")

    # A client that leaves stops the stream in the module's process too.
    with server.client.stream(
        "GET", url, params={"count": 50, "interval_ms": 100}, headers=headers
    ) as answer:
        assert next(answer.iter_lines()) == 'data: {"number":0}'
    wait_until(lambda: f"of 50 sent by process {pid}" in server.log(), timeout=5)
    assert "50 of 50 sent" not in server.log()


@pytest.mark.slow  # processes, not databases: once, on SQLite
def test_module_process_refuses_calls_not_from_the_platform(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    server = launcher.start(rpc_config(database, TRANSPORTS["http"]))
    _, address = child_of(server, "echo")
    with httpx.Client(base_url=address, timeout=10) as child:
        # A user's token is for the platform's gateway, not for the module's own process.
        assert child.get("/echo/v1/pid", headers=bearer(ROOT)).status_code == 401
        forged = jwt.encode(
            {
                "aud": "hyperspot-internal",
                "mod": "echo",
                "sub": "mallory",
                "iat": 0,
                "exp": 2**31,
                "ten": "acme",
                "per": [],
                "rol": [],
                "tid": "",
                "vis": ["acme"],
                "sys": True,
                "adm": True,
                "hom": "acme",
            },
            "a-secret-that-is-not-the-platforms-0123456789",
            algorithm="HS256",
        )
        for headers in ({}, {"X-Hyperspot-Context": forged}, bearer(ROOT)):
            rpc = child.post("/_rpc/echo/echo_api/whoami", json={}, headers=headers)
            assert rpc.status_code == 401, rpc.text
        # Internal operations are not in any public document.
        assert not any(p.startswith("/_rpc") for p in child.get("/openapi.json").json()["paths"])
    assert not any(
        p.startswith("/_rpc") for p in server.client.get("/openapi.json").json()["paths"]
    )


@pytest.mark.slow  # processes, not databases: once, on SQLite
def test_crashed_module_process_is_reported_restarted_and_stopped(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    server = launcher.start(rpc_config(database, TRANSPORTS["grpc"]))
    add_tenant(server, "acme")
    pid, _ = child_of(server, "echo")

    # A process that hangs is as unhealthy as a dead one.
    os.kill(pid, signal.SIGSTOP)
    try:
        hung = server.client.get("/health")
        echo = next(m for m in hung.json()["modules"] if m["name"] == "echo")
        assert hung.status_code == 503 and "does not answer" in echo["detail"], echo
    finally:
        os.kill(pid, signal.SIGCONT)
    assert server.client.get("/health").status_code == 200

    os.kill(pid, signal.SIGKILL)

    def reported() -> bool:
        health = server.client.get("/health")
        echo = next(m for m in health.json()["modules"] if m["name"] == "echo")
        return health.status_code == 503 and "killed by SIGKILL" in echo["detail"]

    wait_until(reported, timeout=5)
    wait_until(lambda: server.client.get("/health").status_code == 200)
    restarted, _ = child_of(server, "echo")
    assert restarted != pid
    answer = server.client.get("/relay/v1/whoami", headers=member("acme"))
    assert answer.status_code == 200 and answer.json()["far"]["pid"] == restarted

    assert server.stop(signal.SIGTERM) == 0
    assert not alive(restarted)


@pytest.mark.slow  # processes, not databases: once, on SQLite
def test_no_orphan_when_the_platform_is_killed(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    server = launcher.start(rpc_config(database, TRANSPORTS["http"]))
    pid, _ = child_of(server, "echo")
    server.stop(signal.SIGKILL)
    wait_until(lambda: not alive(pid), timeout=10)


def test_a_contract_nobody_provides_stops_start_up(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    config = rpc_config(database, {})
    config["modules"]["echo"] = {"enabled": False}
    path, _ = launcher.config(config)
    done = run_cli("up", "--config", str(path))
    assert done.returncode != 0
    assert "module 'relay' uses EchoApi, which no enabled module provides" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("placement", "message"),
    [
        ({"transport": "grpc"}, "modules.echo.transport: 'grpc' needs runtime 'oop' or 'remote'"),
        ({"runtime": "remote"}, "modules.echo.address: required for runtime 'remote'"),
        ({"runtime": "oop", "transport": "local"}, "called over 'http' or 'grpc', not 'local'"),
        ({"runtime": "elsewhere"}, "modules.echo.runtime"),
        (
            {"runtime": "oop", "server_workers": 2},
            "'oop' with server.workers > 1 would start one child per worker",
        ),
    ],
)
def test_bad_placements_are_refused(
    launcher: Launcher, database: ProvisionedDatabase, placement: dict[str, Any], message: str
) -> None:
    config = rpc_config(database, {})
    placement = dict(placement)
    if "server_workers" in placement:
        config["server"] = {"workers": placement.pop("server_workers")}
    config["modules"]["echo"] = placement
    path, _ = launcher.config(config)
    done = run_cli("modules", "--config", str(path))
    assert done.returncode != 0
    assert message in done.stderr, done.stderr


@pytest.mark.slow  # processes, not databases: once, on SQLite
def test_remote_module_on_another_host(launcher: Launcher, database: ProvisionedDatabase) -> None:
    """`hyperspot run-module` started by an operator; the platform points at its address."""
    secret = "shared-between-both-hosts-0123456789abcdef"
    http_port, grpc_port = free_port(), free_port()
    config_path, _ = launcher.config(rpc_config(database, {}))
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hyperspot",
            "run-module",
            "echo",
            "--config",
            str(config_path),
            "--port",
            str(http_port),
            "--grpc-port",
            str(grpc_port),
        ],
        stdout=subprocess.PIPE,
        env=clean_env({"HYPERSPOT_CLIENTS__SECRET": secret}),
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().startswith(b"HYPERSPOT-MODULE-READY ")
        placement = {
            "runtime": "remote",
            "transport": "grpc",
            "address": f"http://127.0.0.1:{http_port}",
            "grpc_address": f"127.0.0.1:{grpc_port}",
        }
        config = rpc_config(database, {})
        config["modules"]["echo"] = placement
        config["clients"]["secret"] = secret
        server = launcher.start(config)
        add_tenant(server, "acme")
        answer = server.client.get("/relay/v1/whoami", headers=member("acme"))
        assert answer.status_code == 200, answer.text
        assert answer.json()["far"]["pid"] == child.pid
        assert server.client.get("/echo/v1/pid", headers=member("acme")).json()["pid"] == child.pid
    finally:
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=15) == 0
        assert child.stdout is not None
        child.stdout.close()


def test_contracts_are_listed_with_their_generated_services(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    path, _ = launcher.config(rpc_config(database, TRANSPORTS["grpc"]))
    listed = run_cli("contracts", "--config", str(path), env={"COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    rows = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines() if "│" in line}
    assert "echo" in rows["EchoApi"] and "oop" in rows["EchoApi"] and "whoami*" in rows["EchoApi"]
    assert "in-process only" in rows["TenantsApi"]
    proto = run_cli("contracts", "--config", str(path), "--proto")
    assert "package hyperspot.echo;" in proto.stdout
    assert "  rpc whoami(Json) returns (Json);" in proto.stdout
