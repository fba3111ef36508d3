"""Latency of the GTS types registry with 10,000 registered entities (run on demand, never in CI).

Starts ``hyperspot up`` in development mode on SQLite (a temporary data dir), registers
``--entities`` entities through ``POST /gts/entities/bulk`` (a base type, ``--types`` derived types,
instances of those for the rest), then measures, one request at a time over one keep-alive
connection:

- get: ``GET /gts/entities/{id}`` of random entities;
- validate: ``POST /gts/validate-instance`` of random instances (JSON Schema validation against
  the derived type, ``$ref`` to the base type resolved).

The same two operations are then timed in-process on a ``GtsStore`` holding the same entities
(``store.get`` and ``validate_instance``), which shows what the HTTP stack adds. Prints p50, p99
and max per operation; ``--json FILE`` also writes them with the machine and settings.

    python benchmarks/gts_bench.py --entities 10000 --samples 3000
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from http_bench import server_process, show, write_report
from rich.table import Table

from hyperspot.platform.gts import GtsEntity, GtsStore
from hyperspot.platform.gts.validation import validate_instance

SCHEMA = "http://json-schema.org/draft-07/schema#"
BASE = "gts.x.bench.events.event.v1~"
BULK = 1000


@dataclass(frozen=True)
class Timing:
    operation: str
    where: str
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def entities(count: int, types: int) -> list[dict[str, Any]]:
    """A base type, ``types`` types derived from it, and instances of those up to ``count``."""
    docs: list[dict[str, Any]] = [
        {
            "$schema": SCHEMA,
            "$id": f"gts://{BASE}",
            "type": "object",
            "required": ["id", "occurredAt", "payload"],
            "properties": {
                "id": {"type": "string"},
                "occurredAt": {"type": "string", "format": "date-time"},
                "payload": {"type": "object"},
            },
        }
    ]
    derived = [f"{BASE}x.bench._.kind{n}.v1.0~" for n in range(types)]
    for type_id in derived:
        docs.append(
            {
                "$schema": SCHEMA,
                "$id": f"gts://{type_id}",
                "type": "object",
                "allOf": [
                    {"$ref": f"gts://{BASE}"},
                    {
                        "properties": {
                            "payload": {
                                "type": "object",
                                "required": ["amount", "currency"],
                                "properties": {
                                    "amount": {"type": "number", "minimum": 0},
                                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                                    "note": {"type": "string", "maxLength": 200},
                                },
                            }
                        }
                    },
                ],
            }
        )
    for n in range(count - len(docs)):
        docs.append(
            {
                "id": f"{derived[n % types]}x.bench._.e{n}.v1",
                "occurredAt": "2026-01-01T00:00:00Z",
                "payload": {"amount": n % 997, "currency": "EUR", "note": f"event {n}"},
            }
        )
    return docs


def timing(operation: str, where: str, durations_s: list[float]) -> Timing:
    ordered = sorted(durations_s)
    return Timing(
        operation=operation,
        where=where,
        samples=len(ordered),
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        max_ms=ordered[-1] * 1000,
    )


def timed(calls: list[Callable[[], None]]) -> list[float]:
    durations = []
    for call in calls:
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    return durations


def over_http(base_url: str, docs: list[dict[str, Any]], samples: int) -> list[Timing]:
    instance_ids = [d["id"] for d in docs if "id" in d and "$schema" not in d]
    all_ids = [d["id"] if "id" in d else d["$id"].removeprefix("gts://") for d in docs]
    with httpx.Client(base_url=f"{base_url}/gts", timeout=120) as client:
        started = time.perf_counter()
        for first in range(0, len(docs), BULK):
            response = client.post("/entities/bulk", json=docs[first : first + BULK])
            response.raise_for_status()
        registered_s = time.perf_counter() - started
        total = client.get("/entities", params={"limit": 1}).json()["total"]
        if total != len(docs):
            raise SystemExit(f"registered {total} entities, expected {len(docs)}")
        print(f"registered {total} entities in {registered_s:.1f} s ({BULK} per request)")

        def get(gts_id: str) -> Callable[[], None]:
            def call() -> None:
                if client.get(f"/entities/{gts_id}").status_code != 200:
                    raise SystemExit(f"GET {gts_id} failed")

            return call

        def validate(gts_id: str) -> Callable[[], None]:
            def call() -> None:
                body = client.post("/validate-instance", json={"instance_id": gts_id}).json()
                if not body.get("ok"):
                    raise SystemExit(f"validation of {gts_id} failed: {body}")

            return call

        # Warm-up: first requests pay for imports, caches and connection set-up.
        timed([get(i) for i in random.sample(all_ids, 200)])
        timed([validate(i) for i in random.sample(instance_ids, 200)])
        gets = timed([get(random.choice(all_ids)) for _ in range(samples)])
        validations = timed([validate(random.choice(instance_ids)) for _ in range(samples)])
    return [timing("get", "HTTP", gets), timing("validate", "HTTP", validations)]


def in_process(docs: list[dict[str, Any]], samples: int) -> list[Timing]:
    store = GtsStore()
    for doc in docs:
        store.put(GtsEntity.from_content(doc))
    instance_ids = [d["id"] for d in docs if "id" in d and "$schema" not in d]
    all_ids = store.ids()

    def validate(gts_id: str) -> Callable[[], None]:
        def call() -> None:
            if not validate_instance(store, gts_id, "any-valid").get("ok"):
                raise SystemExit(f"in-process validation of {gts_id} failed")

        return call

    def get(gts_id: str) -> Callable[[], None]:
        def call() -> None:
            if store.get(gts_id) is None:
                raise SystemExit(f"{gts_id} is missing")

        return call

    timed([validate(i) for i in random.sample(instance_ids, 200)])
    gets = timed([get(random.choice(all_ids)) for _ in range(samples)])
    validations = timed([validate(random.choice(instance_ids)) for _ in range(samples)])
    return [timing("get", "in-process", gets), timing("validate", "in-process", validations)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--types", type=int, default=10, help="Derived types (instances' types).")
    parser.add_argument("--samples", type=int, default=3000, help="Timed calls per operation.")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument(
        "--sync-interval",
        type=float,
        default=0.0,
        help="modules.types_registry.sync_interval_s (0: look for other workers' changes "
        "before every read).",
    )
    parser.add_argument("--json", type=Path, help="Also write the results to this file.")
    args = parser.parse_args(argv)
    random.seed(args.seed)
    docs = entities(args.entities, args.types)
    env = {
        "HYPERSPOT_AUTH__MODE": "dev",
        "HYPERSPOT_SERVER__MAX_BODY_BYTES": str(16 * 2**20),
        "HYPERSPOT_MODULES__TYPES_REGISTRY__SYNC_INTERVAL_S": str(args.sync_interval),
    }
    with server_process(env) as (base_url, _):
        results = over_http(base_url, docs, args.samples)
    results += in_process(docs, args.samples)
    table = Table(
        title=f"GTS registry, {args.entities} entities ({args.samples} samples each, "
        f"sync_interval_s={args.sync_interval:g})"
    )
    for column in ("operation", "where", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right" if column.endswith("ms") else "left")
    for r in results:
        table.add_row(r.operation, r.where, f"{r.p50_ms:.3f}", f"{r.p99_ms:.3f}", f"{r.max_ms:.3f}")
    show(table)
    if args.json:
        write_report(args.json, args, results)


if __name__ == "__main__":
    main()
