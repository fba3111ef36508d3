"""Rate limits through running servers: shared by two instances through Redis, and the fallback."""

from __future__ import annotations

import os
import uuid
from typing import Any

from conftest import Launcher, Server, add_tenant, bearer, free_port, secured_config

from hyperspot.sandbox.databases import ProvisionedDatabase

REDIS_URL = os.environ.get("HYPERSPOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BURST = 6


def limited(database: ProvisionedDatabase, redis_url: str) -> dict[str, Any]:
    # Subject buckets only, refilling slowly enough that a quick burst of requests sees none of
    # it but fast enough that the keys are gone from Redis in seconds.
    buckets = {"subject": {"rate_per_s": 0.5, "burst": BURST}}
    return secured_config(
        database.url.url,
        {
            "rate_limits": {
                "backend": "redis",
                "redis_url": redis_url,
                "classes": {"default": buckets},
            }
        },
    )


def hammer(servers: list[Server], headers: dict[str, str], count: int) -> list[Any]:
    return [
        servers[n % len(servers)].client.get("/notes/v1/notes", headers=headers)
        for n in range(count)
    ]


def test_two_instances_share_one_budget_through_redis(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    config = limited(database, REDIS_URL)
    first = launcher.start(config)
    add_tenant(first, "acme")
    second = launcher.start(config)
    # A subject of its own per run: the buckets in Redis outlive a test run by a few seconds.
    headers = bearer("acme", f"user-{uuid.uuid4().hex}", ("member",))
    responses = hammer([first, second], headers, 20)
    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(admitted) + len(refused) == 20
    # Both instances admitted some, and together no more than the budget (plus at most one token
    # refilled while the requests ran).
    assert BURST <= len(admitted) <= BURST + 1
    assert {r.url.port for r in admitted} == {
        first.client.base_url.port,
        second.client.base_url.port,
    }
    assert admitted[0].headers["RateLimit-Limit"] == str(BURST)
    problem = refused[0]
    assert problem.headers["Content-Type"] == "application/problem+json"
    assert int(problem.headers["Retry-After"]) >= 1
    assert problem.headers["RateLimit-Remaining"] == "0"
    assert "rate limit 'default' exceeded" in problem.json()["detail"]
    # Health probes are another class, unlimited here.
    assert all(first.client.get("/healthz").status_code == 200 for _ in range(BURST * 2))


def test_unreachable_redis_falls_back_to_memory_with_a_warning(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    dead = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    server = launcher.start(limited(database, dead))
    add_tenant(server, "acme")
    statuses = [r.status_code for r in hammer([server], bearer("acme", "ann", ("member",)), 10)]
    assert BURST <= statuses.count(200) <= BURST + 1
    assert statuses.count(429) == 10 - statuses.count(200)
    log = server.log()
    assert log.count("fall back to per-process memory buckets") == 1
    assert "hunter2" not in log


def test_failed_authentications_lock_out_the_address_not_the_others(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    server = launcher.start(
        secured_config(
            database.url.url,
            {"rate_limits": {"failed_credentials": {"rate_per_s": 0.2, "burst": 3}}},
        )
    )
    add_tenant(server, "acme")
    good = bearer("acme", "ann", ("member",))
    guess = {"Authorization": "Bearer hsk_acme_" + "0" * 32 + "_guess"}
    # uvicorn takes the client address from X-Forwarded-For sent by loopback (a local proxy).
    attacker, bystander = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"}

    def get(headers: dict[str, str]) -> Any:
        return server.client.get("/notes/v1/notes", headers=headers)

    # The burst of failures is verified and answered 401; the one that empties the bucket too.
    assert [get(guess | attacker).status_code for _ in range(4)] == [401] * 4
    # From then on every credential from that address is refused unverified, a valid one too.
    locked = get(good | attacker)
    assert locked.status_code == 429, locked.text
    assert locked.headers["Content-Type"] == "application/problem+json"
    assert 1 <= int(locked.headers["Retry-After"]) <= 5
    assert "failed authentications" in locked.json()["detail"]
    assert get(guess | attacker).status_code == 429
    # Another address, and anonymous public operations from the locked one, are not affected.
    assert get(good | bystander).status_code == 200
    assert server.client.get("/healthz", headers=attacker).status_code == 200


def test_failed_authentications_are_not_limited_by_default(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    server = launcher.start(secured_config(database.url.url))
    guess = {"Authorization": "Bearer not-a-token"}
    statuses = {server.client.get("/notes/v1/notes", headers=guess).status_code for _ in range(30)}
    assert statuses == {401}
