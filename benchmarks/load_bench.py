"""Load, latency and the cost of the stack: HyperSpot against a bare ASGI app (run on demand).

For each database (SQLite, PostgreSQL) it starts ``hyperspot up`` (``--workers`` processes) with a
JWT secret, creates a tenant with ``--notes`` notes and a second tenant for writes, and measures:

- closed loop (``wrk``, zero think time) at each ``--connections`` (100, 1,000, 10,000):
  ``GET /notes/v1/notes?limit=20`` (read), ``POST /notes/v1/notes`` (write) and ``/healthz``;
- open loop (``--users`` users, 10,000 by default, in ``--generators`` processes of this script):
  each user keeps a connection and sends one read, or one ``/healthz``, every ``--think`` seconds
  on a fixed schedule (offered rate = users / think). Latency is counted from the scheduled send
  time, so a late generator or a queue in the server cannot hide (no coordinated omission).

Then a bare ASGI app (about ten lines, answering the same JSON bodies as the read endpoint and
``/healthz``) served by the same ASGI server with the same worker count gets the same closed-loop
and open-loop runs: "full stack / bare" is the cost of everything HyperSpot adds.

``--asgi granian`` serves both apps with granian instead of uvicorn (for the side-by-side
comparison; ``hyperspot up`` itself runs uvicorn). Needs ``wrk`` (``apt-get install wrk``).

    python benchmarks/load_bench.py --json load.json
    python benchmarks/load_bench.py --database sqlite --connections 100 --duration 5 --users 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import httpx
from http_bench import (
    Result,
    free_port,
    machine,
    raise_fd_limit,
    results_table,
    run_wrk,
    show,
    summarise,
    wait_healthy,
)
from notes_bench import cpu_ticks, database_url, problems_in

from hyperspot.platform.auth import issue_token
from hyperspot.platform.config import JwtSettings

Backend = Literal["sqlite", "postgres"]
NOTES = "/notes/v1/notes"
READ = f"{NOTES}?limit=20"
HEALTHZ = "/healthz"
READ_TENANT, WRITE_TENANT = "load-read", "load-write"
BODIES_ENV = "HYPERSPOT_BENCH_BARE_BODIES"
REQUEST_TIMEOUT_S = 10.0

# --- the bare ASGI app --------------------------------------------------------------------------

_BODIES: dict[str, bytes] = (
    {
        path: body.encode()
        for path, body in json.loads(Path(os.environ[BODIES_ENV]).read_text()).items()
    }
    if BODIES_ENV in os.environ
    else {}
)


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The floor: the same JSON bodies as HyperSpot's endpoints, with nothing in between."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = _BODIES.get(scope["path"], b"{}")
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- servers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Running:
    name: str
    base_url: str
    process: subprocess.Popen[bytes]


def asgi_command(args: argparse.Namespace, target: str, port: int) -> list[str]:
    """The ASGI server command for ``target`` (``module:attr``; a factory for HyperSpot)."""
    factory = target.startswith("hyperspot.")
    if args.asgi == "granian":
        command = [sys.executable, "-m", "granian", "--interface", "asgi", "--loop", "uvloop"]
        command += ["--no-ws", "--log-level", "warning", "--workers", str(args.workers)]
        command += ["--host", "127.0.0.1", "--port", str(port), "--backlog", "4096"]
        return [*command, *(["--factory"] if factory else []), target]
    # uvicorn as `hyperspot up` configures it (httptools, uvloop, no WebSockets, no access log).
    command = [sys.executable, "-m", "uvicorn", "--http", "httptools", "--loop", "uvloop"]
    command += ["--ws", "none", "--no-access-log", "--log-level", "warning", "--backlog", "4096"]
    command += ["--timeout-keep-alive", str(args.keep_alive)]
    command += ["--limit-concurrency", str(args.max_connections)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers)]
    return [*command, *(["--factory"] if factory else []), target]


@contextmanager
def serving(
    name: str, command: list[str], env: Mapping[str, str], log: IO[bytes], workers: int
) -> Iterator[Running]:
    port = int(command[command.index("--port") + 1])
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=log)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base_url, process, timeout_s=60)
        # /healthz answers with the first worker up; measure with all of them serving.
        time.sleep(1.0 + 0.5 * workers)
        yield Running(name, base_url, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def hyperspot_command(args: argparse.Namespace, port: int) -> list[str]:
    if args.asgi == "granian":
        return asgi_command(args, "hyperspot.platform.server:app_from_environment", port)
    up = [sys.executable, "-c", "from hyperspot.cli.main import main; main()", "up"]
    return [*up, "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers)]


# --- set-up -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tokens:
    admin: str
    reader: str
    writer: str
    # One per open-loop user (distinct subjects of the read tenant), as real users would have.
    users: list[str]


def make_tokens(secret: str, users: int) -> Tokens:
    settings = JwtSettings(secret=secret)

    def token(tenant: str, subject: str, roles: tuple[str, ...] = ("member",)) -> str:
        return issue_token(settings, tenant=tenant, subject=subject, roles=roles, ttl_s=6 * 3600)

    return Tokens(
        admin=token("root", "load-admin", ("tenant-admin",)),
        reader=token(READ_TENANT, "reader"),
        writer=token(WRITE_TENANT, "writer"),
        users=[token(READ_TENANT, f"user-{n}") for n in range(users)],
    )


def seed(base_url: str, tokens: Tokens, notes: int) -> dict[str, bytes]:
    """Create both tenants and the read tenant's notes; return the bodies the bare app answers."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        admin = {"Authorization": f"Bearer {tokens.admin}"}
        for tenant in (READ_TENANT, WRITE_TENANT):
            created = client.post(
                "/tenants/v1/tenants", json={"id": tenant, "name": tenant}, headers=admin
            )
            created.raise_for_status()
        reader = {"Authorization": f"Bearer {tokens.reader}"}
        for number in range(notes):
            body = {"title": f"note {number}", "body": "lorem ipsum " * 8, "priority": number % 5}
            client.post(NOTES, json=body, headers=reader).raise_for_status()
        listed = client.get(READ, headers=reader)
        listed.raise_for_status()
        if len(listed.json()["items"]) != min(20, notes):
            raise SystemExit(f"unexpected list page: {listed.text[:200]}")
        health = client.get(HEALTHZ)
        health.raise_for_status()
        return {"/notes/v1/notes": listed.content, HEALTHZ: health.content}


# --- closed loop (wrk) --------------------------------------------------------------------------

WRITE_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title": "written under load", "body": "lorem ipsum dolor sit amet"}'
"""


@dataclass(frozen=True)
class Measured:
    server: str  # "hyperspot sqlite", "bare" ...
    target: str  # read / write / healthz
    mode: str  # "closed" or "open"
    connections: int  # closed: wrk connections; open: users
    result: Result
    offered_per_s: float | None = None  # open loop only
    server_cpu: float | None = None  # cores used by the server's process tree
    extra: dict[str, Any] = field(default_factory=dict)


def tree_ticks(pid: int) -> int:
    """CPU ticks of a process and its children (workers), from /proc."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += cpu_ticks(current) or 0
        with suppress(OSError):
            todo += map(int, Path(f"/proc/{current}/task/{current}/children").read_text().split())
    return total


def settle(running: Running, timeout_s: float = 120) -> None:
    """Wait until the server is idle: requests of connections a run dropped still complete."""
    deadline = time.monotonic() + timeout_s
    ticks = tree_ticks(running.process.pid)
    while time.monotonic() < deadline:
        time.sleep(1)
        now = tree_ticks(running.process.pid)
        if (now - ticks) / os.sysconf("SC_CLK_TCK") < 0.1:
            return
        ticks = now
    print(f"{running.name} still busy after {timeout_s:.0f} s", flush=True)


def closed_loop(
    wrk: str, running: Running, target: str, connections: int, args: argparse.Namespace, token: str
) -> Measured:
    path = HEALTHZ if target == "healthz" else (NOTES if target == "write" else READ)
    headers = [] if target == "healthz" else [f"Authorization: Bearer {token}"]
    settle(running)
    ticks, started = tree_ticks(running.process.pid), time.monotonic()
    raw = run_wrk(
        wrk,
        running.base_url + path,
        connections,
        args.duration,
        threads=args.wrk_threads,
        headers=headers,
        timeout_s=int(REQUEST_TIMEOUT_S),
        lua=WRITE_LUA if target == "write" else "",
    )
    cpu = (tree_ticks(running.process.pid) - ticks) / os.sysconf("SC_CLK_TCK")
    result = summarise(path, raw)
    measured = Measured(
        running.name,
        target,
        "closed",
        connections,
        result,
        server_cpu=round(cpu / (time.monotonic() - started), 2),
    )
    report(measured)
    return measured


# --- open loop (this script's generator processes) ----------------------------------------------


def http_request(method: str, path: str, host: str, token: str | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def generate(spec: dict[str, Any]) -> dict[str, Any]:
    """One generator process: its share of the users, each on its own connection and schedule."""
    host, port = spec["host"], spec["port"]
    think, duration = spec["think_s"], spec["duration_s"]
    requests = [
        http_request("GET", spec["path"], f"{host}:{port}", token) for token in spec["tokens"]
    ]
    users = len(requests)
    latencies: list[float] = []
    send_delays: list[float] = []
    errors: Counter[str] = Counter()
    counters: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.5
    # The first think period is the ramp: every user has connected and sent once by its end.
    measure_from = start + think
    end = measure_from + duration
    rng = random.Random(spec["seed"])

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        counters["connects"] += 1
        return await asyncio.open_connection(host, port)

    async def exchange(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> int:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        return status

    async def user(index: int) -> None:
        # Users are spread evenly over the think time. Each connects when it first has a request
        # to send, as a browser does: the server closes a connection that sends nothing for
        # server.header_timeout_s after opening.
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        due = start + think * ((index + rng.random()) / users)
        while due < end:
            await asyncio.sleep(max(0.0, due - loop.time()))
            measured = due >= measure_from
            sent = loop.time()
            if measured:
                send_delays.append(sent - due)
            try:
                status = None
                for attempt in range(2):
                    if connection is None:
                        connection = await connect()
                    try:
                        status = await asyncio.wait_for(
                            exchange(*connection, requests[index]), REQUEST_TIMEOUT_S
                        )
                        break
                    except (asyncio.IncompleteReadError, ConnectionError):
                        # The server closed an idle keep-alive connection: reconnect and resend
                        # once, as browsers do.
                        connection[1].close()
                        connection = None
                        if attempt or not measured:
                            raise
                        counters["reconnects"] += 1
                if measured:
                    latencies.append((loop.time() - due) * 1000)
                    if status is not None and status >= 400:
                        errors[f"HTTP {status}"] += 1
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
                if measured:
                    errors[type(error).__name__] += 1
                if connection is not None:
                    connection[1].close()
                connection = None
            due += think
        # Hold the connection to the end: the server carries all the users' connections.
        await asyncio.sleep(max(0.0, end - loop.time()))
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(user(index) for index in range(users)))
    return {
        "latencies_ms": latencies,
        "errors": dict(errors),
        "counters": dict(counters),
        "send_delay_p99_ms": quantile(send_delays, 0.99) * 1000 if send_delays else 0.0,
    }


def quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def established(port: int) -> int:
    """Connections the server holds open now (its side of the loopback), from ``ss``."""
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return len(out.splitlines())


def open_loop(
    running: Running, target: str, tokens: list[str], think: float, args: argparse.Namespace
) -> Measured:
    path = HEALTHZ if target == "healthz" else READ
    port = int(running.base_url.rsplit(":", 1)[1])
    shares = [tokens[n :: args.generators] for n in range(args.generators)]
    ramp = think  # the first think period: see generate()
    specs = [
        {
            "host": "127.0.0.1",
            "port": port,
            "path": path,
            "tokens": share if target != "healthz" else [""] * len(share),
            "think_s": think,
            "duration_s": args.open_duration,
            "seed": n,
        }
        for n, share in enumerate(shares)
    ]
    settle(running)
    ticks = tree_ticks(running.process.pid)
    # Reports go to files: one is larger than a pipe's buffer, read only once the process ends.
    outputs = [tempfile.TemporaryFile("w+") for _ in specs]  # noqa: SIM115 - closed once read
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--generator"],
            stdin=subprocess.PIPE,
            stdout=output,
            text=True,
        )
        for output in outputs
    ]
    for process, spec in zip(processes, specs, strict=True):
        assert process.stdin is not None
        process.stdin.write(json.dumps(spec))
        process.stdin.close()
    try:
        # Server-side open connections, sampled while measuring.
        time.sleep(0.5 + ramp)
        measure_started = time.monotonic()
        open_counts = []
        while any(p.poll() is None for p in processes):
            if time.monotonic() - measure_started < args.open_duration:
                open_counts.append(established(port))
            time.sleep(2)
        elapsed = time.monotonic() - measure_started
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
    cpu = (tree_ticks(running.process.pid) - ticks) / os.sysconf("SC_CLK_TCK")
    reports = []
    for output in outputs:
        output.seek(0)
        reports.append(json.loads(output.read().splitlines()[-1]))
        output.close()
    latencies = [v for r in reports for v in r["latencies_ms"]]
    errors: Counter[str] = Counter()
    counters: Counter[str] = Counter()
    for r in reports:
        errors.update(r["errors"])
        counters.update(r["counters"])
    error_count = sum(errors.values())
    done = len(latencies) + sum(v for k, v in errors.items() if not k.startswith("HTTP"))
    result = Result(
        target=path,
        requests=done,
        errors=error_count,
        elapsed_s=round(args.open_duration, 3),
        requests_per_s=round(len(latencies) / args.open_duration, 1),
        p50_ms=round(quantile(latencies, 0.50), 2),
        p95_ms=round(quantile(latencies, 0.95), 2),
        p99_ms=round(quantile(latencies, 0.99), 2),
        error_kinds=dict(errors),
    )
    measured = Measured(
        running.name,
        target,
        "open",
        len(tokens),
        result,
        offered_per_s=round(len(tokens) / think, 1),
        # The server's CPU over ramp + measurement + drain: a rough figure.
        server_cpu=round(cpu / (elapsed + ramp + 0.5), 2),
        extra={
            "think_s": think,
            "server_open_connections": {
                "min": min(open_counts, default=0),
                "max": max(open_counts, default=0),
            },
            "connects": counters["connects"],
            "reconnects_after_idle_close": counters["reconnects"],
            "generator_send_delay_p99_ms": round(max(r["send_delay_p99_ms"] for r in reports), 1),
        },
    )
    report(measured)
    return measured


# --- orchestration ------------------------------------------------------------------------------


def report(m: Measured) -> None:
    r = m.result
    rate = f" offered {m.offered_per_s:,.0f}/s" if m.offered_per_s else ""
    print(
        f"{time.strftime('%H:%M:%S')} {m.server} {m.target} {m.mode} c={m.connections}{rate}: "
        f"{r.requests_per_s:,.0f} req/s, "
        f"p50 {r.p50_ms:.1f} p95 {r.p95_ms:.1f} p99 {r.p99_ms:.1f} ms, errors {r.errors} "
        f"{r.error_kinds or ''}, server CPU {m.server_cpu} {m.extra or ''}",
        flush=True,
    )


def measure_server(
    wrk: str, running: Running, tokens: Tokens, args: argparse.Namespace, writes: bool
) -> list[Measured]:
    results = []
    # Open loop first: a closed-loop run at 10,000 connections leaves work behind (see settle).
    if args.users:
        for think in args.think:
            for target in ("read", "healthz"):
                results.append(open_loop(running, target, tokens.users, think, args))
    targets = ["read", *(["write"] if writes else []), "healthz"]
    for connections in args.connections:
        for target in targets:
            token = tokens.writer if target == "write" else tokens.reader
            results.append(closed_loop(wrk, running, target, connections, args, token))
    return results


def run(args: argparse.Namespace, wrk: str, scratch: Path) -> list[Measured]:
    secret = secrets.token_urlsafe(32)
    tokens = make_tokens(secret, args.users)
    results: list[Measured] = []
    bodies: dict[str, bytes] = {}
    for backend in args.database:
        log_path = scratch / f"hyperspot-{backend}.log"
        env = {
            "HYPERSPOT_LOGGING__LEVEL": "WARNING",
            "HYPERSPOT_DATA_DIR": str(scratch / f"data-{backend}"),
            "HYPERSPOT_AUTH__JWT__SECRET": secret,
            "HYPERSPOT_SERVER__WORKERS": str(args.workers),
            # 10,000 users need that many connections (the default, 1,024 per worker, answers
            # 503 beyond it) kept open between their requests (the default closes after 5 s).
            "HYPERSPOT_SERVER__MAX_CONNECTIONS": str(args.max_connections),
            "HYPERSPOT_SERVER__KEEP_ALIVE_S": str(args.keep_alive),
            "HYPERSPOT_SERVER__BACKLOG": "4096",
            # Writes under load must not meet the notes quota.
            "HYPERSPOT_MODULES__NOTES__MAX_NOTES_PER_TENANT": "100000000",
        }
        with database_url(backend) as database_env, log_path.open("ab") as log:
            command = hyperspot_command(args, free_port())
            name = f"hyperspot {backend}"
            with serving(name, command, env | database_env, log, args.workers) as running:
                bodies = seed(running.base_url, tokens, args.notes)
                results += measure_server(wrk, running, tokens, args, writes=True)
        for problem in problems_in(log_path):
            print(f"{backend} server log: {problem}")
    bodies_path = scratch / "bodies.json"
    bodies_path.write_text(json.dumps({k: v.decode() for k, v in bodies.items()}))
    with (scratch / "bare.log").open("ab") as log:
        command = asgi_command(args, "load_bench:bare_app", free_port())
        env = {BODIES_ENV: str(bodies_path), "PYTHONPATH": str(Path(__file__).parent)}
        with serving("bare", command, env, log, args.workers) as running:
            results += measure_server(wrk, running, tokens, args, writes=False)
    return results


def table(results: list[Measured], args: argparse.Namespace) -> None:
    rows = []
    for m in results:
        load = (
            f"{m.connections:,} conns"
            if m.mode == "closed"
            else f"{m.connections:,} users / {m.extra['think_s']:g}s = {m.offered_per_s:,.0f}/s"
        )
        cpu = "-" if m.server_cpu is None else f"{m.server_cpu:.2f}"
        rows.append(((m.server, m.target, m.mode, load), m.result, (cpu,)))
    title = (
        f"HyperSpot load ({args.asgi}, {args.workers} worker(s); closed: wrk -t{args.wrk_threads} "
        f"{args.duration}s; open: {args.open_duration:g}s measured)"
    )
    show(results_table(title, ["server", "target", "mode", "load"], rows, ("server CPU",)))
    by_key = {(m.server, m.target, m.mode, m.connections, m.offered_per_s): m for m in results}
    for m in results:
        if not m.server.startswith("hyperspot") or m.target == "write":
            continue
        bare = by_key.get(("bare", m.target, m.mode, m.connections, m.offered_per_s))
        if bare and bare.result.requests_per_s and m.mode == "closed":
            ratio = m.result.requests_per_s / bare.result.requests_per_s
            print(f"{m.server} {m.target} at {m.connections:,} connections: {ratio:.2f} of bare")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--generator", action="store_true", help=argparse.SUPPRESS)  # internal
    parser.add_argument(
        "--database",
        action="append",
        choices=("sqlite", "postgres"),
        help="sqlite and/or postgres (repeatable; default both)",
    )
    parser.add_argument(
        "--connections",
        action="append",
        type=int,
        help="closed-loop connections (repeatable; default 100, 1000, 10000)",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (2)")
    parser.add_argument("--asgi", choices=("uvicorn", "granian"), default="uvicorn")
    parser.add_argument(
        "--max-connections",
        type=int,
        default=20_000,
        help="server.max_connections per worker for the run (20000)",
    )
    parser.add_argument(
        "--keep-alive",
        type=int,
        default=75,
        help="server.keep_alive_s for the run (75: longer than a user's think time)",
    )
    parser.add_argument("--notes", type=int, default=100, help="notes in the read tenant (100)")
    parser.add_argument(
        "--users", type=int, default=10_000, help="open-loop users (10000; 0 skips the open loop)"
    )
    parser.add_argument(
        "--think",
        action="append",
        type=float,
        help="seconds between one user's requests (repeatable; default 30)",
    )
    parser.add_argument(
        "--open-duration", type=float, default=30, help="seconds measured per open-loop run (30)"
    )
    parser.add_argument("--generators", type=int, default=2, help="open-loop processes (2)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    args.database = args.database or ["sqlite", "postgres"]
    args.connections = args.connections or [100, 1000, 10_000]
    args.think = args.think or [30.0]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the servers and load processes started here stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.generator:
        import uvloop

        spec = json.loads(sys.stdin.read())
        print(json.dumps(uvloop.run(generate(spec))))
        return
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not on PATH (apt-get install wrk)")
    # Servers, wrk and generators inherit it: one descriptor per connection on each side.
    needed = max(*args.connections, args.users) + 1024
    if raise_fd_limit(needed) < needed:
        raise SystemExit(f"the open-files limit is below {needed}: raise `ulimit -Hn`")
    before = machine()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="hyperspot-load-") as scratch:
        results = run(args, wrk, Path(scratch))
    table(results, args)
    print(f"load average before {before['load_average']}, after {machine()['load_average']}")
    if args.json:
        document = {
            "date": started,
            "settings": {k: v for k, v in vars(args).items() if k not in ("json", "generator")},
            "machine_before": before,
            "machine_after": machine(),
            "results": [
                {k: v for k, v in asdict(m).items() if k != "result"} | asdict(m.result)
                for m in results
            ],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
