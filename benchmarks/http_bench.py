"""HTTP throughput and latency benchmark for a HyperSpot server (run on demand, never in CI).

Starts ``hyperspot up`` in a subprocess (or uses ``--base-url``), then drives each target from a
separate process: ``wrk`` when it is on PATH, otherwise this script's own ``--worker`` mode
(asyncio + httpx). Prints a table of requests/s, p50/p95/p99 latency and errors.

    python benchmarks/http_bench.py --connections 64 --duration 10 --json result.json

The helpers (``running_server``, ``run_wrk``, ``summarise``, ``results_table`` ...) are also
imported by the other benchmarks in this folder, e.g. ``notes_bench.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
from rich.console import Console
from rich.table import Table

DEFAULT_TARGETS = ("/healthz", "/hello/v1/greetings/fr?name=Ann")

# wrk prints only p50/75/90/99 by itself; its done() hook exposes any percentile, so emit JSON.
# wrk leaves a response slower than --timeout (default 2 s) out of the latency figures and counts
# it as a "timeout" error instead, so a high percentile can only be trusted without timeouts.
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"errors":%d,"elapsed_s":%f,"p50_ms":%f,"p95_ms":%f,"p99_ms":%f,' ..
    '"error_kinds":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\\n',
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class Result:
    target: str
    requests: int
    errors: int
    elapsed_s: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    # wrk's breakdown of ``errors`` (connect, read, write, status, timeout); empty for the worker.
    error_kinds: dict[str, int] = field(default_factory=dict)


def free_port() -> int:
    # Racy in theory (the port is released before the server binds it) but fine on a dev machine.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(base_url: str, server: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited with code {server.returncode} before becoming healthy")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"server not healthy after {timeout_s:.0f}s")


@contextmanager
def running_server() -> Iterator[str]:
    """Yield the base URL of a fresh server with its own data dir; SIGTERM it on exit."""
    with server_process() as (base_url, _):
        yield base_url


@contextmanager
def server_process(
    extra_env: Mapping[str, str] | None = None, output: IO[bytes] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Like ``running_server``, also yielding the process (e.g. to read its CPU time).

    ``extra_env`` adds or overrides ``HYPERSPOT_*`` settings (database URL, JWT secret ...);
    ``output`` receives the server's stdout and stderr (default: this process's).
    """
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="hyperspot-bench-") as data_dir:
        env = {
            **os.environ,
            "HYPERSPOT_LOGGING__LEVEL": "WARNING",  # one access line per request would dominate
            "HYPERSPOT_DATA_DIR": data_dir,
            **(extra_env or {}),
        }
        command = [sys.executable, "-c", "from hyperspot.cli.main import main; main()"]
        server = subprocess.Popen(
            [*command, "up", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=output,
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_healthy(base_url, server)
            yield base_url, server
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def summarise(target: str, raw: dict[str, Any]) -> Result:
    requests, elapsed = int(raw["requests"]), float(raw["elapsed_s"])
    p50, p95, p99 = (round(float(raw[f"p{q}_ms"]), 2) for q in (50, 95, 99))
    rate = round(requests / elapsed, 1) if elapsed else 0.0
    kinds = {kind: int(count) for kind, count in raw.get("error_kinds", {}).items()}
    return Result(
        target, requests, int(raw["errors"]), round(elapsed, 3), rate, p50, p95, p99, kinds
    )


def json_output(command: list[str]) -> dict[str, Any]:
    """Run a load generator and parse the last JSON line it prints; its stderr passes through."""
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    line = next(ln for ln in reversed(completed.stdout.splitlines()) if ln.startswith("{"))
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def run_wrk(
    wrk: str,
    url: str,
    connections: int,
    duration: int,
    *,
    threads: int | None = None,
    headers: Sequence[str] = (),
    timeout_s: int | None = None,
    lua: str = "",
) -> dict[str, Any]:
    """Run wrk against ``url`` and return its JSON report (see ``WRK_REPORT``).

    ``headers`` are ``"Name: value"`` strings (wrk ``-H``); ``timeout_s`` is wrk ``--timeout``
    (its default is 2 s); ``lua`` is prepended to the report script (e.g. a ``request`` function).
    """
    if threads is None:
        # One wrk thread per spare core: the server is a single uvicorn process using one core.
        threads = max(1, min(connections, (os.cpu_count() or 2) - 1))
    options = [f"-t{threads}", f"-c{connections}", f"-d{duration}s"]
    for header in headers:
        options += ["-H", header]
    if timeout_s is not None:
        options += ["--timeout", f"{timeout_s}s"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua + WRK_REPORT)
    try:
        return json_output([wrk, *options, "-s", script.name, url])
    finally:
        Path(script.name).unlink()


def raise_fd_limit(needed: int) -> int:
    """Raise this process's soft open-files limit (inherited by the server and wrk) to ``needed``
    or the hard limit, whichever is lower; return the resulting soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def write_report(path: Path, args: argparse.Namespace, results: Sequence[Any]) -> None:
    """``results`` (dataclasses) as JSON at ``path``, with the time, machine and settings."""
    report = {
        "at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "settings": vars(args) | {"json": str(path)},
        "results": [asdict(r) for r in results],
    }
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")


def machine() -> dict[str, Any]:
    """What to record with any figures: the load generator shares the machine with the server."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def run_python_worker(url: str, connections: int, duration: int) -> dict[str, Any]:
    # Out of process, like wrk, so the load loop never shares an interpreter with the orchestrator.
    worker = [sys.executable, __file__, "--worker", url, "--connections", str(connections)]
    return json_output([*worker, "--duration", str(duration)])


async def drive(url: str, connections: int, duration: int) -> dict[str, Any]:
    """Closed loop: each of ``connections`` tasks sends its next request once the last returns."""
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    deadline = start + duration

    async def loop() -> None:
        nonlocal errors
        # One single-connection client per loop, like wrk's connections: a shared httpx pool
        # spends its CPU on pool bookkeeping under high concurrency (encode/httpx#3215).
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    response = await client.get(url)
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - sent) * 1000)
                errors += response.status_code >= 400  # the same rule as wrk's "Non-2xx or 3xx"

    await asyncio.gather(*(loop() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    # quantiles() needs two samples; pad so a near-empty run still reports (meaningless) figures.
    cuts = statistics.quantiles(latencies + [0.0, 0.0][len(latencies) :], n=100, method="inclusive")
    return {"requests": len(latencies), "errors": errors, "elapsed_s": elapsed} | {
        f"p{q}_ms": cuts[q - 1] for q in (50, 95, 99)
    }


Row = tuple[Sequence[str], Result, Sequence[str]]


def results_table(
    title: str, labels: Sequence[str], rows: Sequence[Row], extra: Sequence[str] = ()
) -> Table:
    """A table of results: each row is its ``labels`` values (target, database ...), the result,
    then its values for the ``extra`` columns."""
    table = Table(title=title)
    for label in labels:
        table.add_column(label, no_wrap=True)
    for column in ("req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "requests", *extra):
        table.add_column(column, justify="right")
    for values, r, extra_values in rows:
        table.add_row(
            *values,
            f"{r.requests_per_s:,.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p95_ms:.2f}",
            f"{r.p99_ms:.2f}",
            str(r.errors),
            f"{r.requests:,}",
            *extra_values,
        )
    return table


def show(table: Table) -> None:
    # Rich assumes 80 columns when piped (e.g. into a log or the docs), which truncates the paths.
    Console(width=None if sys.stdout.isatty() else 120).print(table)


def print_table(results: list[Result], generator: str, connections: int, duration: int) -> None:
    title = f"HyperSpot HTTP ({generator}, {connections} connections, {duration}s)"
    show(results_table(title, ["target"], [((r.target,), r, ()) for r in results]))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--target", action="append", help="path to GET (repeatable; replaces the defaults)"
    )
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections (64)")
    # Whole seconds because wrk accepts nothing finer.
    parser.add_argument("--duration", type=int, default=10, help="seconds per target (10)")
    parser.add_argument("--base-url", help="benchmark this running server instead of starting one")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)  # internal: load process
    args = parser.parse_args(argv)
    if args.connections < 1 or args.duration <= 0:
        parser.error("--connections must be >= 1 and --duration > 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(asyncio.run(drive(args.worker, args.connections, args.duration))))
        return
    wrk = shutil.which("wrk") if args.generator in ("auto", "wrk") else None
    if args.generator == "wrk" and wrk is None:
        raise SystemExit("wrk is not on PATH")
    generator = "wrk" if wrk else "python (asyncio + httpx)"
    targets: list[str] = args.target or list(DEFAULT_TARGETS)

    def bench(base_url: str) -> list[Result]:
        results = []
        for target in targets:
            url = base_url.rstrip("/") + target
            if wrk:
                raw = run_wrk(wrk, url, args.connections, args.duration)
            else:
                raw = run_python_worker(url, args.connections, args.duration)
            results.append(summarise(target, raw))
        return results

    if args.base_url:
        results = bench(args.base_url)
    else:
        with running_server() as base_url:
            results = bench(base_url)
    print_table(results, generator, args.connections, args.duration)
    if args.json:
        report = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "generator": generator,
            "connections": args.connections,
            "duration_s": args.duration,
            "machine": machine(),
            "python": platform.python_version(),
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
