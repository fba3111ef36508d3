"""Rate limiting: token buckets per tenant and per subject, in process memory or shared in Redis.

An operation belongs to a rate-limit class; each configured class has up to two buckets, one per
tenant and one per subject. A request is admitted only when every applicable bucket holds a token,
and then takes one from each; a refused request takes nothing. With the Redis backend one Lua script
does that atomically on Redis's clock, so every server instance shares one budget. While Redis is
unreachable each process answers from its own memory buckets instead of failing requests.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol
from urllib.parse import quote

from hyperspot.platform.config import (
    BucketSettings,
    RateLimitClass,
    RateLimitSettings,
    mask_url,
)

logger = logging.getLogger("hyperspot.ratelimit")

KEY_PREFIX = "hyperspot:rl:"
MAX_MEMORY_BUCKETS = 100_000
# A dead or unreachable Redis must cost a request at most this long, once per retry interval.
REDIS_TIMEOUT_S = 0.5
REDIS_RETRY_INTERVAL_S = 5.0

Clock = Callable[[], float]


@dataclass(frozen=True)
class RateDecision:
    """The outcome for one request, described by the bucket that decided it."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        """Response headers: the IETF draft RateLimit-* fields, plus Retry-After when refused."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


@dataclass(frozen=True)
class Bucket:
    key: str
    settings: BucketSettings


class BucketStore(Protocol):
    async def take(self, buckets: Sequence[Bucket]) -> tuple[bool, list[float]]:
        """Refill the buckets, take a token from each if all have one.

        Returns whether the tokens were taken and each bucket's token level afterwards.
        """
        ...

    async def close(self) -> None: ...


class _Level(NamedTuple):
    tokens: float
    at: float
    full_at: float


class MemoryBuckets:
    """Buckets in this process's memory, least recently used first."""

    def __init__(self, max_buckets: int = MAX_MEMORY_BUCKETS, clock: Clock = time.monotonic):
        self._levels: OrderedDict[str, _Level] = OrderedDict()
        self._max_buckets = max_buckets
        self._clock = clock

    def __len__(self) -> int:
        return len(self._levels)

    async def take(self, buckets: Sequence[Bucket]) -> tuple[bool, list[float]]:
        # Nothing here awaits, so the check and the take are atomic within the event loop.
        now = self._clock()
        levels = [self._refilled(bucket, now) for bucket in buckets]
        admitted = all(level >= 1 for level in levels)
        if admitted:
            levels = [level - 1 for level in levels]
        for bucket, level in zip(buckets, levels, strict=True):
            full_at = now + (bucket.settings.burst - level) / bucket.settings.rate_per_s
            self._levels[bucket.key] = _Level(level, now, full_at)
            self._levels.move_to_end(bucket.key)
        self._forget_idle(now)
        return admitted, levels

    async def close(self) -> None:
        self._levels.clear()

    def _refilled(self, bucket: Bucket, now: float) -> float:
        level = self._levels.get(bucket.key)
        if level is None:
            return float(bucket.settings.burst)
        refill = (now - level.at) * bucket.settings.rate_per_s
        return min(float(bucket.settings.burst), level.tokens + refill)

    def _forget_idle(self, now: float) -> None:
        # A full bucket is the same as a missing one; the cap bounds memory even when none is full.
        while self._levels:
            oldest = next(iter(self._levels.values()))
            if len(self._levels) <= self._max_buckets and oldest.full_at > now:
                return
            self._levels.popitem(last=False)


# KEYS are the buckets; ARGV holds each one's rate per second and burst, in KEYS order. Levels
# travel as strings because Redis truncates Lua numbers in replies to integers.
_TAKE_SCRIPT = """
local clock = redis.call('TIME')
local now_us = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local levels = {}
local admitted = 1
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', key, 'tokens', 'at_us')
  local level = burst
  if state[1] then
    -- Clamped: after a failover the new primary's clock may be behind.
    local elapsed_s = math.max(0, now_us - tonumber(state[2])) / 1000000
    level = math.min(burst, tonumber(state[1]) + elapsed_s * rate)
  end
  if level < 1 then
    admitted = 0
  end
  levels[i] = level
end
local reply = {admitted}
for i, key in ipairs(KEYS) do
  -- A refused request writes nothing: refilling later from the old state gives the same level.
  if admitted == 1 then
    local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
    levels[i] = levels[i] - 1
    redis.call('HSET', key, 'tokens', string.format('%.17g', levels[i]),
               'at_us', string.format('%.17g', now_us))
    -- Once full again the bucket is the same as a missing key; a second of margin.
    redis.call('EXPIRE', key, math.ceil((burst - levels[i]) / rate) + 1)
  end
  reply[i + 1] = string.format('%.17g', levels[i])
end
return reply
"""


class RedisOutage:
    """Whether Redis is considered down, and when to try it again."""

    def __init__(self, retry_interval_s: float = REDIS_RETRY_INTERVAL_S):
        self.down = False
        self._retry_interval_s = retry_interval_s
        self._next_try = 0.0

    def may_try(self, now: float) -> bool:
        if not self.down:
            return True
        if now < self._next_try:
            return False
        # This caller probes Redis; concurrent ones keep using memory until the next interval.
        self._next_try = now + self._retry_interval_s
        return True

    def failed(self, now: float) -> bool:
        """Record a failure; True when it starts an outage."""
        started = not self.down
        self.down = True
        self._next_try = now + self._retry_interval_s
        return started

    def succeeded(self) -> bool:
        """Record a success; True when it ends an outage."""
        ended = self.down
        self.down = False
        return ended


class RedisBuckets:
    """Buckets shared through Redis, with per-process memory buckets while Redis is unavailable."""

    def __init__(
        self,
        url: str,
        clock: Clock = time.monotonic,
        retry_interval_s: float = REDIS_RETRY_INTERVAL_S,
    ):
        # Imported here: the client library costs ~20 MB of memory, for servers that use Redis only.
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        self._errors = RedisError
        self._shown_url = mask_url(url)
        # No retries: a failed call falls back to memory at once instead of stalling the request.
        self._client = redis.asyncio.Redis.from_url(
            url,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        self._take_script = self._client.register_script(_TAKE_SCRIPT)
        self._fallback = MemoryBuckets(clock=clock)
        self._outage = RedisOutage(retry_interval_s)
        self._clock = clock

    async def take(self, buckets: Sequence[Bucket]) -> tuple[bool, list[float]]:
        if not self._outage.may_try(self._clock()):
            return await self._fallback.take(buckets)
        args = [value for b in buckets for value in (b.settings.rate_per_s, b.settings.burst)]
        try:
            reply = await self._take_script(keys=[b.key for b in buckets], args=args)
        except self._errors as error:
            if self._outage.failed(self._clock()):
                logger.warning(
                    "Redis at %s is unavailable (%s): rate limits fall back to per-process "
                    "memory buckets until it is back",
                    self._shown_url,
                    error,
                )
            return await self._fallback.take(buckets)
        if self._outage.succeeded():
            logger.info("Redis at %s is back: rate limits are shared again", self._shown_url)
        admitted, *levels = reply
        return admitted == 1, [float(level) for level in levels]

    async def close(self) -> None:
        await self._client.aclose()


class RateLimiter:
    """Admits or refuses requests by their operation's rate-limit class, tenant and subject."""

    def __init__(
        self,
        classes: Mapping[str, RateLimitClass],
        store: BucketStore,
        failed_credentials: BucketSettings | None = None,
        clock: Clock = time.monotonic,
    ):
        self._classes = classes
        self._store = store
        self._failed_credentials = failed_credentials
        self._clock = clock
        # Addresses whose failure bucket ran dry, with when they may try again. Checked before
        # any verification so that guessing costs the server nothing; bounded like the buckets.
        self._refused_until: OrderedDict[str, float] = OrderedDict()

    def refusing_credentials(self, address: str) -> int:
        """Seconds until ``address`` may present a credential again; 0 when it may now."""
        until = self._refused_until.get(address)
        if until is None:
            return 0
        wait = until - self._clock()
        if wait <= 0:
            del self._refused_until[address]
            return 0
        return max(1, math.ceil(wait))

    async def credential_failed(self, address: str) -> None:
        """Count a failed authentication from ``address``; refuse it for a while once too many."""
        settings = self._failed_credentials
        if settings is None:
            return
        bucket = Bucket(f"{KEY_PREFIX}failed-credentials:{address}", settings)
        admitted, levels = await self._store.take([bucket])
        if admitted:
            return
        self._refused_until[address] = self._clock() + _seconds_to(1, levels[0], settings)
        self._refused_until.move_to_end(address)
        while len(self._refused_until) > MAX_MEMORY_BUCKETS:
            self._refused_until.popitem(last=False)

    async def admit(
        self, limit_class: str, tenant: str | None, subject: str
    ) -> RateDecision | None:
        """Take a token for this request; None when no bucket limits it.

        ``subject`` is already unique across tenants (e.g. ``"acme/ann"`` or ``"ip:127.0.0.1"``).
        """
        limits = self._classes.get(limit_class)
        if limits is None:
            return None
        # Quoted so that a ':' in a class name cannot make two classes share a key.
        prefix = KEY_PREFIX + quote(limit_class, safe="")
        buckets = []
        if limits.tenant is not None and tenant is not None:
            buckets.append(Bucket(f"{prefix}:tenant:{tenant}", limits.tenant))
        if limits.subject is not None:
            buckets.append(Bucket(f"{prefix}:subject:{subject}", limits.subject))
        if not buckets:
            return None
        admitted, levels = await self._store.take(buckets)
        if admitted:
            decisions = [
                _admitted(b.settings, level) for b, level in zip(buckets, levels, strict=True)
            ]
            return min(decisions, key=lambda decision: decision.remaining)
        refusals = [
            _refused(b.settings, level)
            for b, level in zip(buckets, levels, strict=True)
            if level < 1
        ]
        # The client has to wait for every refusing bucket.
        return max(refusals, key=lambda decision: decision.retry_after_s)

    async def close(self) -> None:
        await self._store.close()


def _admitted(bucket: BucketSettings, level: float) -> RateDecision:
    return RateDecision(
        allowed=True,
        limit=bucket.burst,
        remaining=math.floor(level),
        reset_s=_seconds_to(bucket.burst, level, bucket),
        retry_after_s=0,
    )


def _refused(bucket: BucketSettings, level: float) -> RateDecision:
    return RateDecision(
        allowed=False,
        limit=bucket.burst,
        remaining=0,
        reset_s=_seconds_to(bucket.burst, level, bucket),
        retry_after_s=max(1, _seconds_to(1, level, bucket)),
    )


def _seconds_to(target: float, level: float, bucket: BucketSettings) -> int:
    """Whole seconds until the bucket, now at ``level``, holds ``target`` tokens."""
    return max(0, math.ceil((target - level) / bucket.rate_per_s))


def build_rate_limiter(settings: RateLimitSettings) -> RateLimiter:
    store: BucketStore
    if settings.backend == "redis":
        store = RedisBuckets(settings.redis_url)
        logger.info("rate limits: buckets shared in Redis at %s", mask_url(settings.redis_url))
    else:
        store = MemoryBuckets()
        logger.info("rate limits: per-process memory buckets")
    return RateLimiter(settings.classes, store, settings.failed_credentials)
