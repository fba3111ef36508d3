"""Throughput and latency of the tenant-scoped notes endpoints on SQLite and PostgreSQL (on demand).

For each database: starts ``hyperspot up`` with a JWT secret (SQLite under a temporary data dir;
PostgreSQL in a freshly provisioned database, dropped afterwards), seeds ``--tenants`` tenants with
``--notes`` notes each through ``POST /notes/v1/notes``, then drives two reads of the first tenant
with ``wrk`` at each ``--connections`` value:

- list: ``GET /notes/v1/notes?limit=20`` (first page, default order);
- get: ``GET /notes/v1/notes/{id}``, cycling through that tenant's note ids.

Prints a table of requests/s, p50/p95/p99 latency and errors, plus the CPU used by the server
process and by wrk; ``--json FILE`` also writes everything with the machine and settings.

    python benchmarks/notes_bench.py --database sqlite --database postgres --json notes.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import httpx
from http_bench import (
    Result,
    Row,
    machine,
    raise_fd_limit,
    results_table,
    run_wrk,
    server_process,
    show,
    summarise,
)

from hyperspot.platform.auth import issue_token
from hyperspot.platform.config import JwtSettings
from hyperspot.sandbox.databases import provision

Backend = Literal["sqlite", "postgres"]
BACKENDS: tuple[Backend, ...] = ("sqlite", "postgres")
NOTES = "/notes/v1/notes"
LIST_TARGET = f"{NOTES}?limit=20"
GET_TARGET = f"{NOTES}/{{id}}"
ROLES = ("member",)
CREATE_ATTEMPTS = 5


@dataclass(frozen=True)
class Seeded:
    """What seeding did: the ids of the measured tenant's notes and how creating them went."""

    ids: list[str]
    seconds: float
    creates_per_s: float
    # Failed attempts by cause ("HTTP 500", "ReadTimeout" ...); each was retried.
    failed_attempts: dict[str, int]


@dataclass(frozen=True)
class Run:
    database: str
    endpoint: str
    connections: int
    result: Result
    # Share of one core over the run: the server process (all threads) and wrk, and the share of
    # the whole machine that was busy (everything, PostgreSQL included). None where /proc is absent.
    server_cpu: float | None = None
    wrk_cpu: float | None = None
    machine_busy: float | None = None


@dataclass
class Report:
    database: str
    seed: Seeded | None = None
    runs: list[Run] = field(default_factory=list)
    server_log_problems: list[str] = field(default_factory=list)


def get_lua(ids: list[str]) -> str:
    """A wrk ``request`` function cycling through the note ids (one Lua state per wrk thread)."""
    quoted = ",".join(json.dumps(note_id) for note_id in ids)
    return f"""
local ids = {{{quoted}}}
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "{NOTES}/" .. ids[(counter % #ids) + 1])
end
"""


async def seed(
    base_url: str, tokens: list[str], notes: int, concurrency: int
) -> tuple[list[str], Counter[str]]:
    """Create ``notes`` notes per token (tenant); return the first tenant's ids and failures."""
    failures: Counter[str] = Counter()
    jobs: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for number in range(notes):
        for tenant in range(len(tokens)):
            jobs.put_nowait((tenant, number))
    first_ids: list[str] = []

    async def create(client: httpx.AsyncClient, tenant: int, number: int) -> str:
        headers = {"Authorization": f"Bearer {tokens[tenant]}"}
        body = {"title": f"note {number} of tenant {tenant}", "priority": number % 10}
        for _ in range(CREATE_ATTEMPTS):
            try:
                response = await client.post(f"{base_url}{NOTES}", json=body, headers=headers)
            except httpx.HTTPError as error:
                failures[type(error).__name__] += 1
                continue
            if response.status_code == 201:
                note_id: str = response.json()["id"]
                return note_id
            failures[f"HTTP {response.status_code}"] += 1
        raise SystemExit(f"seeding failed {CREATE_ATTEMPTS} times in a row: {dict(failures)}")

    async def worker() -> None:
        async with httpx.AsyncClient(timeout=30.0) as client:
            while not jobs.empty():
                tenant, number = jobs.get_nowait()
                note_id = await create(client, tenant, number)
                if tenant == 0:
                    first_ids.append(note_id)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return first_ids, failures


def check_reads(base_url: str, token: str, ids: list[str]) -> None:
    """Both measured requests must succeed before they are measured (wrk counts only statuses)."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10.0) as client:
        listed = client.get(LIST_TARGET)
        listed.raise_for_status()
        if len(listed.json()["items"]) != min(20, len(ids)):
            raise SystemExit(f"unexpected list page: {listed.text[:200]}")
        client.get(f"{NOTES}/{ids[0]}").raise_for_status()


def cpu_ticks(pid: int) -> int | None:
    """User + system clock ticks of a process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def machine_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(values) - values[3] - values[4], sum(values)


@contextmanager
def database_url(backend: Backend) -> Iterator[dict[str, str]]:
    """Environment for the server's database; a provisioned PostgreSQL one is always dropped."""
    if backend == "sqlite":
        yield {}  # the default: SQLite under the server's temporary data dir
        return
    database = provision("postgres")
    try:
        yield {"HYPERSPOT_DATABASE__URL": database.url.url}
    finally:
        database.drop()


def measure(
    wrk: str,
    args: argparse.Namespace,
    server: subprocess.Popen[bytes],
    url: str,
    connections: int,
    headers: list[str],
    lua: str,
) -> tuple[dict[str, Any], float | None, float | None, float | None]:
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    server_before, machine_before = cpu_ticks(server.pid), machine_ticks()
    children_before = os.times()
    started = time.monotonic()
    raw = run_wrk(
        wrk,
        url,
        connections,
        args.duration,
        threads=args.threads,
        headers=headers,
        timeout_s=args.timeout,
        lua=lua,
    )
    wall = time.monotonic() - started
    server_after, machine_after = cpu_ticks(server.pid), machine_ticks()
    children_after = os.times()
    # The server is our child too, but has not exited, so children_* counts wrk only.
    wrk_s = (children_after.children_user + children_after.children_system) - (
        children_before.children_user + children_before.children_system
    )
    server_cpu = None
    if server_before is not None and server_after is not None:
        server_cpu = round((server_after - server_before) / ticks_per_s / wall, 2)
    busy = None
    if machine_before is not None and machine_after is not None:
        total = machine_after[1] - machine_before[1]
        busy = round((machine_after[0] - machine_before[0]) / total, 2) if total else None
    return raw, server_cpu, round(wrk_s / wall, 2), busy


def create_tenants(base_url: str, admin_token: str, tenants: list[str]) -> None:
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        for tenant in tenants:
            created = client.post("/tenants/v1/tenants", json={"id": tenant, "name": tenant})
            created.raise_for_status()


def problems_in(log: Path) -> list[str]:
    """Distinct warning/error lines the server logged (first 160 characters), most common first."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    found = Counter(
        line[:160]
        for line in lines
        if any(word in line for word in ("WARNING", "ERROR", "Error", "Traceback", "locked"))
    )
    return [f"{count} x {line}" for line, count in found.most_common(10)]


def bench_database(wrk: str, backend: Backend, args: argparse.Namespace, log: IO[bytes]) -> Report:
    report = Report(backend)
    secret = secrets.token_urlsafe(32)
    settings = JwtSettings(secret=secret)
    tenants = [f"bench-{n}" for n in range(args.tenants)]
    tokens = [
        issue_token(settings, tenant=tenant, subject=f"user-of-{tenant}", roles=ROLES)
        for tenant in tenants
    ]
    platform_admin = issue_token(
        settings, tenant="root", subject="bench-admin", roles=("tenant-admin",)
    )
    env = {"HYPERSPOT_AUTH__JWT__SECRET": secret}
    if args.pool_size:
        env["HYPERSPOT_DATABASE__POOL_SIZE"] = str(args.pool_size)
    with (
        database_url(backend) as database_env,
        server_process(env | database_env, log) as (base_url, server),
    ):
        create_tenants(base_url, platform_admin, tenants)
        started = time.monotonic()
        ids, failures = asyncio.run(seed(base_url, tokens, args.notes, args.seed_concurrency))
        took = time.monotonic() - started
        created = args.notes * args.tenants
        report.seed = Seeded(ids, round(took, 2), round(created / took, 1), dict(failures))
        print(
            f"{backend}: seeded {args.tenants} x {args.notes} notes in {took:.1f}s "
            f"({created / took:,.0f}/s), failed attempts (retried): {dict(failures) or 'none'}",
            flush=True,
        )
        check_reads(base_url, tokens[0], ids)
        headers = [f"Authorization: Bearer {tokens[0]}"]
        targets = (("list", f"{base_url}{LIST_TARGET}", ""), ("get", base_url, get_lua(ids)))
        for connections in args.connections:
            for endpoint, url, lua in targets:
                raw, server_cpu, wrk_cpu, busy = measure(
                    wrk, args, server, url, connections, headers, lua
                )
                target = LIST_TARGET if endpoint == "list" else GET_TARGET
                result = summarise(target, raw)
                report.runs.append(
                    Run(backend, endpoint, connections, result, server_cpu, wrk_cpu, busy)
                )
                print(
                    f"{backend} {endpoint} c={connections}: {result.requests_per_s:,.0f} req/s, "
                    f"p95 {result.p95_ms:.1f} ms, errors {result.error_kinds}, "
                    f"server CPU {server_cpu}, wrk CPU {wrk_cpu}, machine busy {busy}",
                    flush=True,
                )
    return report


def print_reports(reports: list[Report], args: argparse.Namespace) -> None:
    title = (
        f"HyperSpot notes (wrk -t{args.threads}, {args.duration}s per run, "
        f"{args.tenants} tenants x {args.notes} notes)"
    )

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    rows: list[Row] = [
        (
            (run.database, run.endpoint, str(run.connections)),
            run.result,
            (share(run.server_cpu), share(run.wrk_cpu)),
        )
        for report in reports
        for run in report.runs
    ]
    extra = ("server CPU", "wrk CPU")
    table = results_table(title, ["database", "endpoint", "conns"], rows, extra)
    show(table)
    for report in reports:
        for problem in report.server_log_problems:
            print(f"{report.database} server log: {problem}")


def write_json(path: Path, reports: list[Report], args: argparse.Namespace) -> None:
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "generator": "wrk",
        "settings": {
            "threads": args.threads,
            "duration_s": args.duration,
            "timeout_s": args.timeout,
            "tenants": args.tenants,
            "notes_per_tenant": args.notes,
            "seed_concurrency": args.seed_concurrency,
            "pool_size": args.pool_size or "default",
        },
        "machine": machine(),
        "databases": [
            {
                "database": report.database,
                "seed": (
                    {k: v for k, v in asdict(report.seed).items() if k != "ids"}
                    if report.seed
                    else None
                ),
                "server_log_problems": report.server_log_problems,
                "runs": [
                    {
                        "endpoint": run.endpoint,
                        "connections": run.connections,
                        "server_cpu": run.server_cpu,
                        "wrk_cpu": run.wrk_cpu,
                        "machine_busy": run.machine_busy,
                        **asdict(run.result),
                    }
                    for run in report.runs
                ],
            }
            for report in reports
        ],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--database",
        action="append",
        choices=BACKENDS,
        help="sqlite and/or postgres (repeatable; default both). PostgreSQL is provisioned on "
        "HYPERSPOT_TEST_POSTGRES_URL, else postgresql://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument(
        "--connections",
        action="append",
        type=int,
        help="concurrent connections (repeatable; default 100 and 1000)",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (10)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--timeout",
        type=int,
        default=10,
        help="wrk --timeout in seconds (10); slower responses count as errors, not latency",
    )
    parser.add_argument("--tenants", type=int, default=2, help="tenants to seed (2)")
    parser.add_argument("--notes", type=int, default=1000, help="notes per tenant (1000)")
    parser.add_argument(
        "--seed-concurrency", type=int, default=8, help="concurrent creates while seeding (8)"
    )
    parser.add_argument("--pool-size", type=int, help="database.pool_size (default: the server's)")
    parser.add_argument(
        "--server-log-dir", type=Path, help="keep each server's output here as <database>.log"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    args.database = args.database or list(BACKENDS)
    args.connections = args.connections or [100, 1000]
    if min(args.connections) < args.threads or args.duration <= 0 or args.timeout <= 0:
        parser.error("--connections must be >= --threads, --duration and --timeout > 0")
    if args.tenants < 1 or args.notes < 1 or args.seed_concurrency < 1:
        parser.error("--tenants, --notes and --seed-concurrency must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not on PATH (apt-get install wrk)")
    # Server and wrk each hold one descriptor per connection, plus files, pipes and the database.
    needed = max(args.connections) + 512
    if raise_fd_limit(needed) < needed:
        raise SystemExit(f"the open-files limit is below {needed}: raise `ulimit -n`")
    if args.server_log_dir:
        args.server_log_dir.mkdir(parents=True, exist_ok=True)
    reports: list[Report] = []
    with tempfile.TemporaryDirectory(prefix="hyperspot-notes-bench-") as scratch:
        for backend in args.database:
            log_path = (args.server_log_dir or Path(scratch)) / f"{backend}.log"
            log_path.unlink(missing_ok=True)
            with log_path.open("ab") as log:
                report = bench_database(wrk, backend, args, log)
            report.server_log_problems = problems_in(log_path)
            reports.append(report)
    print_reports(reports, args)
    if args.json:
        write_json(args.json, reports, args)


if __name__ == "__main__":
    main()
