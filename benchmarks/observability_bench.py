"""What tracing and metrics cost: throughput with observability on (the default) and off.

Two endpoints: a tenant's notes list (authenticated, one database query: a realistic read) and a
public greeting (no I/O: the worst case, where the platform's own work is all there is). For each,
servers with observability on and off are measured in turn with wrk, alternating ``--rounds``
times so that drift of the machine hits both alike; the medians and the overhead are printed.

    python benchmarks/observability_bench.py --connections 32 --duration 8 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import sys
from pathlib import Path

import httpx
from http_bench import run_wrk, server_process, summarise

from hyperspot.platform.auth import issue_token
from hyperspot.platform.config import JwtSettings

OFF = {
    "HYPERSPOT_OBSERVABILITY__TRACING__ENABLED": "false",
    "HYPERSPOT_OBSERVABILITY__METRICS__ENABLED": "false",
}
SECRET = secrets.token_urlsafe(32)
NOTES = "/notes/v1/notes?limit=20"
HELLO = "/hello/v1/greetings/fr?name=Ann"


def token(tenant: str, roles: tuple[str, ...]) -> str:
    settings = JwtSettings(secret=SECRET)
    return issue_token(settings, tenant=tenant, subject=f"bench-{tenant}", roles=roles)


def seed(base_url: str) -> None:
    admin = {"Authorization": f"Bearer {token('root', ('tenant-admin',))}"}
    member = {"Authorization": f"Bearer {token('acme', ('member',))}"}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        client.post("/tenants/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=admin)
        for n in range(20):
            client.post("/notes/v1/notes", json={"title": f"note {n}"}, headers=member)


def measure(wrk: str, target: str, env: dict[str, str], args: argparse.Namespace) -> float:
    headers = [f"Authorization: Bearer {token('acme', ('member',))}"]
    with server_process({"HYPERSPOT_AUTH__JWT__SECRET": SECRET, **env}) as (base_url, _):
        seed(base_url)
        run_wrk(wrk, base_url + target, args.connections, 2, headers=headers)  # warm-up
        raw = run_wrk(wrk, base_url + target, args.connections, args.duration, headers=headers)
    result = summarise(target, raw)
    if result.errors:
        sys.exit(f"{result.errors} errors during the run: {result.error_kinds}")
    return result.requests_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=8, help="Seconds per measurement.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is not on PATH (apt-get install wrk)")
    figures = {}
    for target in (NOTES, HELLO):
        on: list[float] = []
        off: list[float] = []
        for round_number in range(args.rounds):
            on.append(measure(wrk, target, {}, args))
            off.append(measure(wrk, target, OFF, args))
            print(f"{target} round {round_number + 1}: on {on[-1]:,.0f}, off {off[-1]:,.0f} req/s")
        median_on, median_off = statistics.median(on), statistics.median(off)
        overhead = (median_off - median_on) / median_off * 100
        figures[target] = {"on": on, "off": off, "overhead_percent": round(overhead, 1)}
        print(
            f"{target} at {args.connections} connections: observability on {median_on:,.0f} "
            f"req/s, off {median_off:,.0f} req/s: overhead {overhead:.1f}%"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
