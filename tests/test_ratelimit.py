"""Rate limiting: token bucket math, both backends, the shared Redis budget and the fallback.

Redis tests use the server at ``HYPERSPOT_TEST_REDIS_URL`` (default ``127.0.0.1:6379``); every test
limits a class of its own and deletes only that class's keys afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Literal, TypeVar
from urllib.parse import urlsplit

import pytest
import redis

from hyperspot.platform.config import BucketSettings, RateLimitClass, RateLimitSettings
from hyperspot.platform.ratelimit import (
    REDIS_RETRY_INTERVAL_S,
    Bucket,
    MemoryBuckets,
    RateDecision,
    RateLimiter,
    RedisBuckets,
    RedisOutage,
    build_rate_limiter,
)

REDIS_URL = os.environ.get("HYPERSPOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LOGGER = "hyperspot.ratelimit"

Backend = Literal["memory", "redis"]
T = TypeVar("T")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def limits(
    tenant: tuple[int, float] | None = None, subject: tuple[int, float] | None = None
) -> RateLimitClass:
    """A class from (burst, rate per second) pairs."""
    return RateLimitClass(
        tenant=BucketSettings(burst=tenant[0], rate_per_s=tenant[1]) if tenant else None,
        subject=BucketSettings(burst=subject[0], rate_per_s=subject[1]) if subject else None,
    )


@pytest.fixture
def limit_class() -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex}"
    yield name
    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(match=f"hyperspot:rl:{name}*"))
        if keys:
            client.delete(*keys)


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Backend:
    name: Backend = request.param
    return name


def run(
    backend: Backend,
    classes: dict[str, RateLimitClass],
    scenario: Callable[[RateLimiter], Awaitable[T]],
) -> T:
    """Run ``scenario`` with a fresh limiter built from settings, closing it afterwards."""
    settings = RateLimitSettings(backend=backend, redis_url=REDIS_URL, classes=classes)

    async def main() -> T:
        limiter = build_rate_limiter(settings)
        try:
            return await scenario(limiter)
        finally:
            await limiter.close()

    return asyncio.run(main())


def admit_each(
    backend: Backend,
    classes: dict[str, RateLimitClass],
    requests: list[tuple[str, str | None, str]],
) -> list[RateDecision | None]:
    async def scenario(limiter: RateLimiter) -> list[RateDecision | None]:
        return [await limiter.admit(*request) for request in requests]

    return run(backend, classes, scenario)


def test_burst_is_admitted_then_refused_then_refilled_over_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter({"api": limits(subject=(2, 0.5))}, MemoryBuckets(clock=clock))

    async def scenario() -> list[RateDecision | None]:
        decisions = [await limiter.admit("api", None, "ann") for _ in range(3)]
        clock.now += 2  # one token back
        decisions += [await limiter.admit("api", None, "ann") for _ in range(2)]
        clock.now += 60  # long idle: full, never beyond the burst
        decisions.append(await limiter.admit("api", None, "ann"))
        return decisions

    assert asyncio.run(scenario()) == [
        RateDecision(allowed=True, limit=2, remaining=1, reset_s=2, retry_after_s=0),
        RateDecision(allowed=True, limit=2, remaining=0, reset_s=4, retry_after_s=0),
        RateDecision(allowed=False, limit=2, remaining=0, reset_s=4, retry_after_s=2),
        RateDecision(allowed=True, limit=2, remaining=0, reset_s=4, retry_after_s=0),
        RateDecision(allowed=False, limit=2, remaining=0, reset_s=4, retry_after_s=2),
        RateDecision(allowed=True, limit=2, remaining=1, reset_s=2, retry_after_s=0),
    ]


def test_partial_refill_is_not_a_token() -> None:
    clock = FakeClock()
    limiter = RateLimiter({"api": limits(subject=(1, 1.0))}, MemoryBuckets(clock=clock))

    async def scenario() -> list[RateDecision | None]:
        decisions = [await limiter.admit("api", None, "ann")]
        clock.now += 0.75
        return [*decisions, await limiter.admit("api", None, "ann")]

    first, second = asyncio.run(scenario())
    assert first is not None and first.allowed
    # A quarter of a token missing: one (whole, rounded up) second to wait.
    assert second == RateDecision(allowed=False, limit=1, remaining=0, reset_s=1, retry_after_s=1)


def test_bucket_refills_in_real_time(backend: Backend, limit_class: str) -> None:
    async def scenario(limiter: RateLimiter) -> list[bool]:
        decisions = [await limiter.admit(limit_class, "acme", "acme/ann") for _ in range(2)]
        await asyncio.sleep(0.06)  # 20 tokens per second: at least one is back
        decisions.append(await limiter.admit(limit_class, "acme", "acme/ann"))
        return [decision is not None and decision.allowed for decision in decisions]

    assert run(backend, {limit_class: limits(subject=(1, 20.0))}, scenario) == [True, False, True]


def test_subject_refusal_takes_nothing_from_the_tenant_bucket(
    backend: Backend, limit_class: str
) -> None:
    decisions = admit_each(
        backend,
        {limit_class: limits(tenant=(3, 0.001), subject=(1, 0.001))},
        [
            (limit_class, "acme", "acme/ann"),
            (limit_class, "acme", "acme/ann"),  # refused by ann's own bucket
            (limit_class, "acme", "acme/ann"),
            (limit_class, "acme", "acme/bob"),
            (limit_class, "acme", "acme/cid"),
            (limit_class, "acme", "acme/dan"),  # the tenant's three tokens are spent
        ],
    )
    assert [d is not None and d.allowed for d in decisions] == [
        True, False, False, True, True, False,
    ]  # fmt: skip


def test_tenant_refusal_takes_nothing_from_the_subject_bucket(
    backend: Backend, limit_class: str
) -> None:
    decisions = admit_each(
        backend,
        {limit_class: limits(tenant=(1, 0.001), subject=(3, 0.001))},
        [
            (limit_class, "acme", "ann"),
            (limit_class, "acme", "ann"),  # refused by the tenant bucket
            (limit_class, "acme", "ann"),
            (limit_class, None, "ann"),  # the subject bucket alone: two tokens were left
        ],
    )
    assert [d is not None and d.allowed for d in decisions] == [True, False, False, True]
    assert decisions[-1] is not None and decisions[-1].remaining == 1


def test_decision_describes_the_tightest_bucket(backend: Backend, limit_class: str) -> None:
    decisions = admit_each(
        backend,
        {limit_class: limits(tenant=(5, 0.001), subject=(2, 1.0))},
        [(limit_class, "acme", "acme/ann")] * 3,
    )
    assert [(d.allowed, d.limit, d.remaining) for d in decisions if d is not None] == [
        (True, 2, 1),  # the subject bucket: 1 left, against the tenant's 4
        (True, 2, 0),
        (False, 2, 0),
    ]
    refused = decisions[-1]
    assert refused is not None and refused.retry_after_s == 1


def test_refused_decision_headers(backend: Backend, limit_class: str) -> None:
    decisions = admit_each(
        backend, {limit_class: limits(subject=(2, 0.5))}, [(limit_class, None, "ip:127.0.0.1")] * 3
    )
    admitted, _, refused = decisions
    assert admitted is not None and admitted.headers() == {
        "RateLimit-Limit": "2",
        "RateLimit-Remaining": "1",
        "RateLimit-Reset": "2",
    }
    # Half a token per second: one token in 2 s, both back in 4 s.
    assert refused is not None and refused.headers() == {
        "RateLimit-Limit": "2",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "4",
        "Retry-After": "2",
    }


def test_unlimited_class_and_no_applicable_bucket_give_none(
    backend: Backend, limit_class: str
) -> None:
    decisions = admit_each(
        backend,
        {limit_class: limits(tenant=(1, 0.001))},
        [
            ("not-configured", "acme", "acme/ann"),
            (limit_class, None, "ip:127.0.0.1"),  # anonymous: no tenant bucket to check
        ],
    )
    assert decisions == [None, None]


def test_no_tenant_skips_the_tenant_bucket(backend: Backend, limit_class: str) -> None:
    decisions = admit_each(
        backend,
        {limit_class: limits(tenant=(1, 0.001), subject=(3, 0.001))},
        [(limit_class, None, "ip:127.0.0.1")] * 3,
    )
    assert [d is not None and d.allowed for d in decisions] == [True, True, True]


def test_classes_and_tenants_have_separate_buckets(backend: Backend, limit_class: str) -> None:
    other_class = f"{limit_class}:other"  # ':' must not let two classes share keys
    decisions = admit_each(
        backend,
        {limit_class: limits(tenant=(1, 0.001)), other_class: limits(tenant=(1, 0.001))},
        [
            (limit_class, "acme", "acme/ann"),
            (other_class, "acme", "acme/ann"),
            (limit_class, "globex", "globex/ann"),
            (limit_class, "acme", "acme/bob"),
        ],
    )
    assert [d is not None and d.allowed for d in decisions] == [True, True, True, False]


def test_two_limiters_on_one_redis_share_the_budget(limit_class: str) -> None:
    settings = RateLimitSettings(
        backend="redis",
        redis_url=REDIS_URL,
        classes={limit_class: limits(tenant=(3, 0.001), subject=(100, 0.001))},
    )

    async def scenario() -> list[bool]:
        first, second = build_rate_limiter(settings), build_rate_limiter(settings)
        try:
            decisions = await asyncio.gather(
                *(
                    limiter.admit(limit_class, "acme", f"acme/user{n}")
                    for n in range(5)
                    for limiter in (first, second)
                )
            )
        finally:
            await first.close()
            await second.close()
        return [decision is not None and decision.allowed for decision in decisions]

    assert sum(asyncio.run(scenario())) == 3


def test_redis_keys_are_prefixed_and_expire_once_full(limit_class: str) -> None:
    admit_each(
        "redis",
        {limit_class: limits(tenant=(5, 1.0), subject=(2, 1.0))},
        [(limit_class, "acme", "acme/ann")],
    )
    with redis.Redis.from_url(REDIS_URL) as client:
        tenant_ttl = client.ttl(f"hyperspot:rl:{limit_class}:tenant:acme")
        subject_ttl = client.ttl(f"hyperspot:rl:{limit_class}:subject:acme/ann")
    # One token short of full at one token per second, plus a second of margin.
    assert 0 < tenant_ttl <= 2
    assert 0 < subject_ttl <= 2


def test_memory_buckets_stay_bounded() -> None:
    clock = FakeClock()
    buckets = MemoryBuckets(max_buckets=2, clock=clock)
    settings = BucketSettings(burst=1, rate_per_s=1.0)

    async def take(key: str) -> bool:
        admitted, _ = await buckets.take([Bucket(key, settings)])
        return admitted

    async def scenario() -> list[bool]:
        taken = [await take(key) for key in ("a", "b", "c")]  # "a" is dropped for "c"
        taken.append(await take("a"))
        sizes_before_idle = len(buckets)
        clock.now += 10  # every bucket is full again, so the next take forgets them
        taken.append(await take("d"))
        assert (sizes_before_idle, len(buckets)) == (2, 1)
        return taken

    assert asyncio.run(scenario()) == [True, True, True, True, True]


def test_outage_retries_redis_at_most_once_per_interval() -> None:
    outage = RedisOutage(retry_interval_s=5.0)
    assert outage.may_try(0.0)
    assert outage.failed(0.0)  # starts the outage
    assert not outage.failed(0.1)  # the same outage
    assert not outage.may_try(3.0)
    assert outage.may_try(5.2)  # one probe...
    assert not outage.may_try(5.3)  # ...while the others wait for the next interval
    assert outage.may_try(10.3)
    assert outage.succeeded()  # ends the outage
    assert not outage.succeeded()
    assert outage.may_try(10.4)


async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def test_unreachable_redis_falls_back_to_memory_and_recovers(
    caplog: pytest.LogCaptureFixture, limit_class: str
) -> None:
    """While nothing listens on the port the limiter uses memory; then a relay to Redis opens."""
    port = free_port()
    redis_address = urlsplit(REDIS_URL)
    clock = FakeClock()
    store = RedisBuckets(f"redis://:hunter2@127.0.0.1:{port}/0", clock=clock)
    limiter = RateLimiter({limit_class: limits(subject=(2, 0.001))}, store)

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            redis_address.hostname, redis_address.port
        )
        await asyncio.gather(_forward(reader, upstream_writer), _forward(upstream_reader, writer))

    async def allowed() -> bool:
        decision = await limiter.admit(limit_class, None, "ann")
        return decision is not None and decision.allowed

    async def scenario() -> list[bool]:
        during_outage = [await allowed() for _ in range(3)]
        server = await asyncio.start_server(relay, "127.0.0.1", port)
        try:
            clock.now += REDIS_RETRY_INTERVAL_S / 2
            during_outage.append(await allowed())  # not retried yet: still memory, still refused
            clock.now += REDIS_RETRY_INTERVAL_S
            recovered = [await allowed() for _ in range(3)]  # a fresh Redis bucket
        finally:
            await limiter.close()
            server.close()
            await server.wait_closed()
        return during_outage + recovered

    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert asyncio.run(scenario()) == [True, True, False, False, True, True, False]
    records = [r for r in caplog.records if r.name == LOGGER]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"redis://:********@127.0.0.1:{port}/0" in warnings[0]
    assert "hunter2" not in warnings[0]
    assert "per-process memory buckets" in warnings[0]
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert infos == [
        f"Redis at redis://:********@127.0.0.1:{port}/0 is back: rate limits are shared again"
    ]


def test_build_logs_the_backend_in_use(caplog: pytest.LogCaptureFixture) -> None:
    async def build_and_close(settings: RateLimitSettings) -> None:
        await build_rate_limiter(settings).close()

    with caplog.at_level(logging.INFO, logger=LOGGER):
        asyncio.run(build_and_close(RateLimitSettings()))
        asyncio.run(
            build_and_close(RateLimitSettings(backend="redis", redis_url="redis://:pw@db:6379/1"))
        )
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        "rate limits: per-process memory buckets",
        "rate limits: buckets shared in Redis at redis://:********@db:6379/1",
    ]


def test_failed_credentials_refuse_an_address_until_a_token_refills() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        {}, MemoryBuckets(clock=clock), BucketSettings(rate_per_s=0.5, burst=2), clock=clock
    )

    async def fail(times: int) -> None:
        for _ in range(times):
            await limiter.credential_failed("198.51.100.1")

    asyncio.run(fail(2))
    assert limiter.refusing_credentials("198.51.100.1") == 0  # the burst is allowed
    asyncio.run(fail(1))
    assert limiter.refusing_credentials("198.51.100.1") == 2  # one token takes 2 s at 0.5/s
    assert limiter.refusing_credentials("198.51.100.2") == 0
    clock.now += 2
    assert limiter.refusing_credentials("198.51.100.1") == 0


def test_failed_credentials_are_not_counted_when_unconfigured() -> None:
    limiter = RateLimiter({}, MemoryBuckets())
    for _ in range(100):
        asyncio.run(limiter.credential_failed("198.51.100.1"))
    assert limiter.refusing_credentials("198.51.100.1") == 0
