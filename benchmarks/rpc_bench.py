"""One ClientHub call over each transport: calls/s and latency percentiles.

The caller is a runtime in this process (as a consumer module would be); the callee is the
``echo`` fixture module (``tests/fixtures/rpc``), placed by config: in this process (local), in a
child process over HTTP, or over gRPC. Each call is ``EchoApi.whoami(security)``: the context is
signed, sent, verified and rebuilt on the far side, which answers a small model. Sequential calls
give the latency; ``--concurrency`` tasks calling in a loop give the throughput.

    python benchmarks/rpc_bench.py --calls 2000 --concurrency 16 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "rpc"))

from echo.contract import EchoApi  # noqa: E402 - the fixture folder is on the path from here

from hyperspot.platform.security import SecurityContext  # noqa: E402
from hyperspot.platform.server import prepare  # noqa: E402

PLACEMENTS: dict[str, dict[str, str]] = {
    "local": {"runtime": "local"},
    "http": {"runtime": "oop", "transport": "http"},
    "grpc": {"runtime": "oop", "transport": "grpc"},
}
CALLER = SecurityContext(subject="bench", tenant_id="acme", roles=frozenset({"member"}))


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure(transport: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    config = {
        "data_dir": str(folder / transport),
        "modules_path": [str(ROOT / "tests" / "fixtures" / "rpc")],
        "logging": {"level": "WARNING"},
        # Only the callee and the platform: the bench measures the call, not other modules.
        "modules": {
            "echo": PLACEMENTS[transport],
            **{name: {"enabled": False} for name in ("relay", "hello", "notes", "access")},
        },
    }
    path = folder / f"{transport}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    _, runtime = prepare(path, quiet=True)
    await runtime.boot(link=True)
    await runtime.start()
    try:
        echo = runtime.clients.get(EchoApi)
        for _ in range(200):  # warm-up: connections, JIT-free but caches and pools
            await echo.whoami(CALLER)
        latencies = []
        for _ in range(args.calls):
            started = time.perf_counter()
            await echo.whoami(CALLER)
            latencies.append((time.perf_counter() - started) * 1000)
        done = 0
        deadline = time.perf_counter() + args.duration

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await echo.whoami(CALLER)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await runtime.stop()
    return {
        "transport": transport,
        "sequential_calls": args.calls,
        "p50_ms": round(statistics.median(latencies), 3),
        "p95_ms": round(percentile(latencies, 0.95), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
        "concurrency": args.concurrency,
        "calls_per_s": round(done / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls (latency)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent callers")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of concurrent calls")
    parser.add_argument("--transport", action="append", choices=list(PLACEMENTS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for transport in args.transport or list(PLACEMENTS):
            results.append(asyncio.run(measure(transport, args, Path(folder))))
    print("| transport | p50 ms | p95 ms | p99 ms | calls/s (concurrency) |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['transport']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | "
            f"{r['calls_per_s']:,} ({r['concurrency']}) |"
        )
    if args.json:
        machine = {"cpus": os.cpu_count(), "load": os.getloadavg()}
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    main()
