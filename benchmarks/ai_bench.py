"""What the AI gateway adds on top of its provider's own latency (run on demand, never in CI).

Starts the fake OpenAI-compatible server (``hyperspot.sandbox.fake_openai``, a separate process,
``--latency-ms`` of simulated model time per request) and ``hyperspot up`` on SQLite with the
``ai_openai`` provider pointed at it, then sends chat completions and embeddings through the
gateway from ``--concurrency`` concurrent clients, and the same requests directly to the fake
server.

The gateway's overhead of one request is its total time at the client minus the provider's time
inside it, which the gateway reports in ``Server-Timing: provider;dur=<ms>``: authentication,
tenant scoping, governance, usage recording, metrics and the HTTP hop, and with ``--quota`` the
budget's reservation and check (a day's budget too large to run out). Prints p50/p95/p99 of
overhead and of the totals; ``--json FILE`` also writes them.

    python benchmarks/ai_bench.py --requests 2000 --concurrency 10 --latency-ms 20
    python benchmarks/ai_bench.py --requests 2000 --concurrency 10 --latency-ms 20 --quota
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from http_bench import free_port, server_process, show, write_report
from rich.table import Table

from hyperspot.platform.auth import issue_token
from hyperspot.platform.config import JwtSettings

CHAT_MODEL = "bench-chat"
EMBED_MODEL = "bench-embed"
TENANT = "root"
API_KEY_ENV = "AI_BENCH_OPENAI_KEY"  # not HYPERSPOT_: that prefix is config
SERVER_TIMING = re.compile(r"provider;dur=([0-9.]+)")


@dataclass(frozen=True)
class Timing:
    operation: str
    measure: str
    samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def timing(operation: str, measure: str, values_ms: list[float]) -> Timing:
    ordered = sorted(values_ms)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return Timing(operation, measure, len(ordered), cuts[49], cuts[94], cuts[98], ordered[-1])


@contextmanager
def fake_provider(latency_ms: float, key: str) -> Iterator[str]:
    """The fake OpenAI-compatible server in its own process; yields its ``/v1`` base URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hyperspot.sandbox.fake_openai",
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
            "--api-key-env",
            API_KEY_ENV,
            "--model",
            CHAT_MODEL,
            "--model",
            EMBED_MODEL,
            # The benchmark reads nothing back: recording would only cost the fake time.
            "--no-record",
        ],
        env={**os.environ, API_KEY_ENV: key},
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base_url}/models", headers={"Authorization": f"Bearer {key}"})
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the fake OpenAI server did not start") from None
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


def chat_body(number: int) -> dict[str, Any]:
    text = f"request {number}: summarise the quarterly figures in one short sentence"
    return {"model": CHAT_MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": 32}


def embed_body(number: int) -> dict[str, Any]:
    return {"model": EMBED_MODEL, "input": [f"document {number} about invoices", "a second text"]}


async def drive(
    url: str,
    headers: dict[str, str],
    bodies: list[dict[str, Any]],
    concurrency: int,
    *,
    through_gateway: bool,
) -> tuple[list[float], list[float]]:
    """Totals and (through the gateway) overheads in ms, ``concurrency`` requests at a time."""
    totals: list[float] = []
    overheads: list[float] = []
    queue = list(reversed(bodies))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as client:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                started = time.perf_counter()
                response = await client.post(url, json=body)
                elapsed_ms = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise SystemExit(f"{url} answered {response.status_code}: {response.text}")
                totals.append(elapsed_ms)
                if through_gateway:
                    found = SERVER_TIMING.search(response.headers.get("server-timing", ""))
                    if found is None:
                        raise SystemExit(f"{url} sent no Server-Timing provider duration")
                    overheads.append(elapsed_ms - float(found.group(1)))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return totals, overheads


def measure(
    gateway_url: str, provider_url: str, key: str, token: str, args: argparse.Namespace
) -> list[Timing]:
    results: list[Timing] = []
    gateway_headers = {"Authorization": f"Bearer {token}"}
    provider_headers = {"Authorization": f"Bearer {key}"}
    for operation, path, make_body in (
        ("chat", "chat/completions", chat_body),
        ("embeddings", "embeddings", embed_body),
    ):
        warm = [make_body(n) for n in range(args.warmup)]
        bodies = [make_body(n) for n in range(args.requests)]
        gateway = f"{gateway_url}/ai/v1/{path}"
        direct = f"{provider_url}/{path}"
        asyncio.run(drive(gateway, gateway_headers, warm, args.concurrency, through_gateway=True))
        totals, overheads = asyncio.run(
            drive(gateway, gateway_headers, bodies, args.concurrency, through_gateway=True)
        )
        direct_totals, _ = asyncio.run(
            drive(direct, provider_headers, bodies, args.concurrency, through_gateway=False)
        )
        results += [
            timing(operation, "gateway overhead", overheads),
            timing(operation, "total via gateway", totals),
            timing(operation, "total direct", direct_totals),
        ]
    return results


def server_config(provider_url: str, folder: Path, *, quota: bool) -> Path:
    config: dict[str, Any] = {
        "modules": {
            "ai_openai": {
                "base_url": provider_url,
                "api_key_env": API_KEY_ENV,
                "models": [
                    {"id": CHAT_MODEL, "kind": "chat"},
                    {"id": EMBED_MODEL, "kind": "embedding"},
                ],
                "retries": 0,
            },
        },
    }
    if quota:
        config["modules"]["ai"] = {"quota": {"tokens": 10**12, "requests": 10**9}}
    path = folder / "ai-bench.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per operation")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests first (200)")
    parser.add_argument("--concurrency", type=int, default=10, help="concurrent clients (10)")
    parser.add_argument(
        "--latency-ms", type=float, default=20, help="the fake provider's model time (20)"
    )
    parser.add_argument(
        "--quota", action="store_true", help="under a (never exhausted) budget per tenant"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    key = secrets.token_urlsafe(24)
    secret = secrets.token_urlsafe(32)
    token = issue_token(
        JwtSettings(secret=secret), tenant=TENANT, subject="bench", roles=("tenant-admin",)
    )
    with (
        tempfile.TemporaryDirectory(prefix="hyperspot-ai-bench-") as folder,
        fake_provider(args.latency_ms, key) as provider_url,
    ):
        env = {
            "HYPERSPOT_CONFIG": str(server_config(provider_url, Path(folder), quota=args.quota)),
            "HYPERSPOT_AUTH__JWT__SECRET": secret,
            API_KEY_ENV: key,
        }
        with server_process(env) as (gateway_url, _):
            results = measure(gateway_url, provider_url, key, token, args)
    table = Table(
        title=f"AI gateway: {args.requests} requests per operation, {args.concurrency} "
        f"concurrent, provider latency {args.latency_ms:g} ms"
        + (", under a quota" if args.quota else "")
    )
    for column in ("operation", "measure", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right" if column.endswith("ms") else "left")
    for r in results:
        table.add_row(
            r.operation,
            r.measure,
            *(f"{v:.2f}" for v in (r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms)),
        )
    show(table)
    if args.json:
        write_report(args.json, args, results)


if __name__ == "__main__":
    main()
