"""Memory of a HyperSpot server: idle RSS, and RSS growth under a steady load (soak), on demand.

``idle``: starts ``hyperspot up`` with every core module (a JWT secret set, embedded SQLite or
``--database-url``), waits until it is healthy and has settled, and reports the RSS, PSS and USS
of the server's process tree (the supervisor and its workers with ``--workers``). ``--imports``
also lists the top-level packages the server imported, biggest first, to find what a lazy import
could save.

``soak``: the same server under a steady, moderate open-loop load from a separate process (each
cycle: list a tenant's notes, create a note, delete it, ``/healthz``) for ``--duration`` seconds,
sampling the tree's RSS every ``--interval`` seconds; after ``--warmup`` seconds it fits a line
to RSS over time (least squares) and extrapolates the slope to MB per 24 hours. The request
window behind ``/admin/stats`` is set to one minute (``--window-minutes``): it keeps every request
of its span, so it grows for that long whatever else happens.

    python benchmarks/memory_bench.py idle --imports
    python benchmarks/memory_bench.py --disable ai --disable ai_demo idle  # a module's idle cost
    python benchmarks/memory_bench.py soak --duration 1800 --interval 10 --json soak.json

``window``: in process, the memory (tracemalloc) of the ``/admin/stats`` request window holding
``--requests`` requests spread over ``--tenants`` tenants and 20 routes, the time to record one,
and the time of a report over all of them.

    python benchmarks/memory_bench.py window --requests 500000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from http_bench import free_port, machine, wait_healthy

from hyperspot.platform.auth import issue_token
from hyperspot.platform.config import JwtSettings

NOTES = "/notes/v1/notes"
TENANT = "soak"


@dataclass(frozen=True)
class Memory:
    """Memory of a process tree in MB: RSS counts shared pages in every process, PSS splits
    them between the processes sharing them, USS counts only the pages no other process maps."""

    processes: int
    rss_mb: float
    pss_mb: float
    uss_mb: float


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a supervisor's workers), from /proc."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(child) for child in children)
    return pids


def memory(pid: int) -> Memory:
    rss = pss = uss = 0
    pids = tree(pid)
    for current in pids:
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        fields = {
            line.split(":")[0]: int(line.split()[1]) for line in rollup[1:] if line.endswith("kB")
        }
        rss += fields.get("Rss", 0)
        pss += fields.get("Pss", 0)
        uss += fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    # Kept to the kB (a page is 4 kB): a soak's fit needs more than 0.1 MB steps to see a slope
    # of 1 MB / 24 h within hours.
    return Memory(len(pids), round(rss / 1024, 3), round(pss / 1024, 3), round(uss / 1024, 3))


@dataclass(frozen=True)
class Running:
    base_url: str
    process: subprocess.Popen[bytes]
    secret: str
    stderr_path: Path


@contextmanager
def server(args: argparse.Namespace, *, import_times: bool = False) -> Iterator[Running]:
    """``hyperspot up`` on a free port with a temporary data dir; SIGTERM on exit."""
    secret = secrets.token_urlsafe(32)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="hyperspot-memory-") as data_dir:
        env = {
            **os.environ,
            "HYPERSPOT_LOGGING__LEVEL": "WARNING",
            "HYPERSPOT_DATA_DIR": data_dir,
            "HYPERSPOT_AUTH__JWT__SECRET": secret,
            "HYPERSPOT_SERVER__WORKERS": str(args.workers),
        }
        if args.database_url:
            env["HYPERSPOT_DATABASE__URL"] = args.database_url
        for name in args.disable:
            env[f"HYPERSPOT_MODULES__{name.upper()}__ENABLED"] = "false"
        if getattr(args, "window_minutes", None):
            env["HYPERSPOT_OBSERVABILITY__METRICS__WINDOW_MINUTES"] = str(args.window_minutes)
        if import_times:
            env["PYTHONPROFILEIMPORTTIME"] = "1"
        stderr_path = Path(data_dir) / "server.err"
        command = [sys.executable, "-c", "from hyperspot.cli.main import main; main()"]
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [*command, "up", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=stderr,
                stderr=stderr,
            )
        base_url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_healthy(base_url, process)
            except SystemExit:
                print(stderr_path.read_text(errors="replace")[-3000:], file=sys.stderr)
                raise
            if args.workers > 1:
                wait_for_workers(process.pid, args.workers)
            yield Running(base_url, process, secret, stderr_path)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for_workers(pid: int, workers: int, timeout_s: float = 30) -> None:
    """/healthz answers once one worker is up; memory is measured with all of them ready."""
    deadline = time.monotonic() + timeout_s
    while len(tree(pid)) < workers + 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # each worker's start-up is a second or so after it forked


def imported_packages(stderr: Path) -> list[tuple[str, int]]:
    """(top-level package, modules of it imported), most first, from ``-X importtime``."""
    modules: Counter[str] = Counter()
    for line in stderr.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("import time:") and line.split("|")[1].strip().isdigit():
            modules[line.split("|")[2].strip().split(".")[0]] += 1
    return modules.most_common()


def run_idle(args: argparse.Namespace) -> dict[str, Any]:
    with server(args, import_times=args.imports) as running:
        time.sleep(args.settle)
        idle = memory(running.process.pid)
        with httpx.Client(base_url=running.base_url, timeout=10) as client:
            for _ in range(200):
                client.get("/healthz").raise_for_status()
        after_requests = memory(running.process.pid)
        packages = imported_packages(running.stderr_path) if args.imports else []
    print(f"idle (after {args.settle:.0f}s): {idle}")
    print(f"after 200 requests: {after_requests}")
    for package, count in packages[: args.top]:
        print(f"  {package:<28} {count:>4} modules")
    return {
        "idle": asdict(idle),
        "after_200_requests": asdict(after_requests),
        "imported_packages": packages,
    }


# --- soak ---------------------------------------------------------------------------------------


async def drive(base_url: str, token: str, rate: float, duration: float) -> dict[str, Any]:
    """Open loop: one cycle (list, create, delete, healthz) every 1/``rate`` s, on schedule."""
    headers = {"Authorization": f"Bearer {token}"}
    outcomes: Counter[str] = Counter()
    pending: set[asyncio.Task[None]] = set()
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)

    async def cycle(client: httpx.AsyncClient, number: int) -> None:
        try:
            listed = await client.get(f"{NOTES}?limit=20", headers=headers)
            created = await client.post(
                NOTES, json={"title": f"soak {number}", "body": "x" * 200}, headers=headers
            )
            outcomes[f"list {listed.status_code}"] += 1
            outcomes[f"create {created.status_code}"] += 1
            if created.status_code == 201:
                deleted = await client.delete(f"{NOTES}/{created.json()['id']}", headers=headers)
                outcomes[f"delete {deleted.status_code}"] += 1
            health = await client.get("/healthz")
            outcomes[f"healthz {health.status_code}"] += 1
        except httpx.HTTPError as error:
            outcomes[type(error).__name__] += 1

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        start = time.monotonic()
        number = 0
        while (due := start + number / rate) < start + duration:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            task = asyncio.create_task(cycle(client, number))
            pending.add(task)
            task.add_done_callback(pending.discard)
            number += 1
        await asyncio.gather(*pending)
    return {"cycles": number, "outcomes": dict(outcomes)}


def fit(samples: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope (MB/s) and intercept of RSS over time."""
    times = [t for t, _ in samples]
    values = [v for _, v in samples]
    slope, intercept = statistics.linear_regression(times, values)
    return slope, intercept


def sample_until_done(
    load: subprocess.Popen[str],
    running: Running,
    samples: list[dict[str, Any]],
    start: float,
    interval: float,
) -> None:
    """Sample the server's memory every ``interval`` seconds until the load process ends."""
    while load.poll() is None:
        elapsed = time.monotonic() - start
        current = memory(running.process.pid)
        samples.append({"t_s": round(elapsed, 1), **asdict(current)})
        print(
            f"{elapsed:7.0f}s  RSS {current.rss_mb:7.1f} MB  PSS {current.pss_mb:7.1f} MB  "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        next_sample = start + len(samples) * interval
        while load.poll() is None and time.monotonic() < next_sample:
            time.sleep(0.5)


def run_soak(args: argparse.Namespace) -> dict[str, Any]:
    samples: list[dict[str, Any]] = []
    with server(args) as running:
        with httpx.Client(base_url=running.base_url, timeout=30) as client:
            settings = JwtSettings(secret=running.secret)
            admin = issue_token(
                settings, tenant="root", subject="soak-admin", roles=["tenant-admin"]
            )
            client.post(
                "/tenants/v1/tenants",
                json={"id": TENANT, "name": TENANT},
                headers={"Authorization": f"Bearer {admin}"},
            ).raise_for_status()
            # Valid for the whole run: a token expiring mid-soak turns the load into cheap 401s.
            lifetime_s = int(args.duration) + 600
            token = issue_token(
                settings, tenant=TENANT, subject="soaker", roles=["member"], ttl_s=lifetime_s
            )
            for number in range(50):  # a full first page to list
                client.post(
                    NOTES,
                    json={"title": f"kept {number}"},
                    headers={"Authorization": f"Bearer {token}"},
                ).raise_for_status()
        load = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--load-worker",
                json.dumps([running.base_url, token, args.rate, args.duration]),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        start = time.monotonic()
        try:
            sample_until_done(load, running, samples, start, args.interval)
        finally:
            if load.poll() is None:
                load.terminate()
        stdout, _ = load.communicate()
        load_report = json.loads(stdout.strip().splitlines()[-1])
        final = memory(running.process.pid)
        samples.append({"t_s": round(time.monotonic() - start, 1), **asdict(final)})
    steady = [(s["t_s"], s["rss_mb"]) for s in samples if s["t_s"] >= args.warmup]
    result: dict[str, Any] = {
        "load": load_report,
        "offered_cycles_per_s": args.rate,
        "samples": samples,
    }
    if len(steady) >= 3:
        slope, _ = fit(steady)
        per_day = slope * 86_400
        spread = max(v for _, v in steady) - min(v for _, v in steady)
        result |= {
            "fit_from_s": args.warmup,
            "fit_samples": len(steady),
            "rss_slope_mb_per_24h": round(per_day, 2),
            "rss_after_warmup_mb": steady[0][1],
            "rss_end_mb": steady[-1][1],
            "rss_spread_after_warmup_mb": round(spread, 1),
        }
        print(
            f"RSS after warm-up {steady[0][1]:.1f} MB -> {steady[-1][1]:.1f} MB over "
            f"{steady[-1][0] - steady[0][0]:.0f}s ({len(steady)} samples, spread {spread:.1f} MB); "
            f"fitted growth {per_day:+.2f} MB per 24 h"
        )
    else:
        print("not enough samples after the warm-up for a fit: run longer or lower --warmup")
    print(f"load: {load_report}")
    failed = {
        outcome: count
        for outcome, count in load_report.get("outcomes", {}).items()
        if not outcome.split()[-1].startswith("2")
    }
    if failed:
        # A soak whose requests failed measured another load than the one it claims.
        print(f"WARNING: some requests failed; the fit does not describe the load: {failed}")
    return result


def run_window(args: argparse.Namespace) -> dict[str, Any]:
    import gc
    import random
    import tracemalloc

    from hyperspot.platform.observability.metrics import RequestWindow, Sample, ThresholdLookup

    rng = random.Random(7)
    start = time.time() - 60
    # Names are shared as in the server (route templates, cached identities); each request's
    # Sample is made inside the measured part, as the server makes one per request.
    routes = [(f"module{n % 5}", f"/module{n % 5}/v1/things/{n}") for n in range(20)]
    tenants = [f"tenant-{n:05d}" for n in range(args.tenants)]
    durations = [rng.lognormvariate(1.5, 0.8) for _ in range(args.requests)]
    picks = [(rng.randrange(len(routes)), rng.randrange(len(tenants))) for _ in durations]
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    window = RequestWindow(3600)
    began = time.perf_counter()
    for n, (route, tenant) in enumerate(picks):
        window.add(
            Sample(
                at=start + n * 60 / args.requests,
                module=routes[route][0],
                method="GET",
                route=routes[route][1],
                status=500 if n % 97 == 0 else 200,
                tenant=tenants[tenant],
                duration_ms=durations[n],
            )
        )
    add_s = time.perf_counter() - began
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    began = time.perf_counter()
    report = window.report(window_minutes=5, thresholds=ThresholdLookup({}), modules=[])
    report_s = time.perf_counter() - began
    result = {
        "requests": len(window),
        "tenants": args.tenants,
        "held_mb": round((held - before) / 1e6, 2),
        "bytes_per_request": round((held - before) / len(window), 1),
        "add_us": round(add_s / args.requests * 1e6, 2),
        "report_ms": round(report_s * 1000, 1),
        "routes_reported": len(report.routes),
    }
    for key, value in result.items():
        print(f"{key:>18}  {value}")
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--load-worker", help=argparse.SUPPRESS)  # internal: the soak's load
    parser.add_argument("--workers", type=int, default=1, help="server.workers (1)")
    parser.add_argument("--database-url", help="database.url (default: SQLite in a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--disable",
        action="append",
        default=[],
        metavar="MODULE",
        help="run without this module (repeatable), e.g. to measure what a module costs idle",
    )
    commands = parser.add_subparsers(dest="command")
    idle = commands.add_parser("idle", help="RSS of an idle server")
    idle.add_argument("--settle", type=float, default=5, help="seconds to wait after healthy (5)")
    idle.add_argument("--imports", action="store_true", help="list the imported packages")
    idle.add_argument("--top", type=int, default=25, help="packages to list (25)")
    soak = commands.add_parser("soak", help="RSS growth under a steady load")
    soak.add_argument("--duration", type=float, default=1800, help="seconds of load (1800)")
    soak.add_argument("--interval", type=float, default=10, help="seconds between samples (10)")
    soak.add_argument(
        "--warmup", type=float, help="seconds left out of the fit (default: a fifth of the run)"
    )
    soak.add_argument(
        "--window-minutes",
        type=int,
        default=1,
        help="observability.metrics.window_minutes (1): the /admin/stats window keeps every "
        "request of its last N minutes, so RSS grows for N minutes at any rate; the server's "
        "default, 60, needs a warm-up over an hour before a fit means anything",
    )
    soak.add_argument(
        "--rate", type=float, default=20, help="load cycles per second, 4 requests each (20)"
    )
    window = commands.add_parser("window", help="memory of the /admin/stats request window")
    window.add_argument("--requests", type=int, default=500_000, help="requests held (500000)")
    window.add_argument("--tenants", type=int, default=1000, help="distinct tenants (1000)")
    args = parser.parse_args(argv)
    if args.load_worker is None and args.command is None:
        parser.error("choose a command: idle, soak or window")
    if args.command == "soak" and args.warmup is None:
        args.warmup = args.duration / 5
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the servers and load processes started here stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.load_worker:
        base_url, token, rate, duration = json.loads(args.load_worker)
        print(json.dumps(asyncio.run(drive(base_url, token, rate, duration))))
        return
    started = datetime.now(UTC).isoformat(timespec="seconds")
    before = machine()
    runs = {"idle": run_idle, "soak": run_soak, "window": run_window}
    result = runs[args.command](args)
    if args.json:
        document = {
            "date": started,
            "command": args.command,
            "workers": args.workers,
            "database": args.database_url or "sqlite",
            "machine_before": before,
            "machine_after": machine(),
            **result,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
