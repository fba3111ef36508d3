"""The AI gateway's domain: route a call to a provider, govern it, meter it, bound it.

Every call, answered or refused, leaves one usage row in the caller's tenant (through the scoped
session) and counts in the module's metrics. Budgets are read from the tenant's running totals
for the current hour, day and month in the same database (``ai_budget``, one row per tenant),
kept with every call's row, so every worker and instance agrees on what a tenant has spent
without summing its rows. Under a budget a call first adds what it may use to the totals (a
reservation, under the row's lock: calls admitted at once are admitted one after the other) and
settles to what it used when it ends: calls running at once cannot together spend more than the
budget.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Generic, TypeVar

from pony.orm import count, select

from hyperspot.modules.ai.config import AiConfig, Period, Quota
from hyperspot.modules.ai.contract import (
    AiProvider,
    ChatCompletion,
    ChatCompletionChunk,
    ChatDelta,
    ChatRequest,
    ChunkChoice,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
    ModelKind,
    ModelList,
    ModelNotAllowedError,
    ModelNotFoundError,
    PolicyViolationError,
    ProviderRefusedError,
    StreamingAiProvider,
    StreamOptions,
    Usage,
)
from hyperspot.modules.ai.domain.governance import Governance, TenantPolicy
from hyperspot.modules.ai.domain.models import QuotaStatus, UsageReport
from hyperspot.modules.ai.domain.ports import MODEL_LENGTH, SUBJECT_LENGTH, AiEntities
from hyperspot.modules.ai.domain.quota import (
    BILLED_OUTCOMES,
    PERIODS,
    QuotaSpentError,
    Spent,
    check_budget,
    period_bounds,
)
from hyperspot.modules.ai.domain.routing import Route, build_routes, provider_models
from hyperspot.platform.db import PlatformDatabase, ScopedSession
from hyperspot.platform.observability.metrics import ModuleMetrics
from hyperspot.platform.plugins import PluginGateway, PluginUnavailableError
from hyperspot.platform.security import SecurityContext

T = TypeVar("T")

logger = logging.getLogger("hyperspot.modules.ai")

DONE = b"data: [DONE]\n\n"


def _now() -> datetime:
    # Stored naive, in UTC, by platform convention (SQLite and MariaDB keep no zone).
    return datetime.now(UTC).replace(tzinfo=None)


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` when a provider did not say: about four characters each."""
    return math.ceil(len(text) / 4)


def sse(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


@dataclass(frozen=True)
class Served(Generic[T]):
    """A provider's answer, which provider gave it, and how long the providers took."""

    value: T
    provider: str
    provider_ms: float


@dataclass
class _Call:
    """One call in progress: what its usage row will say."""

    security: SecurityContext
    model: str
    kind: ModelKind
    started: float
    provider: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    outcome: str = "ok"
    # When it was admitted: its usage row's time, and the periods it counts in.
    admitted_at: datetime = dataclasses.field(default_factory=_now)
    # What it added to its tenant's budget when admitted under one.
    reservation: _Reservation | None = None


@dataclass(frozen=True)
class _Reservation:
    """Tokens and one request a call added to its tenant's totals of one period before it ran."""

    period: Period
    starts_at: datetime
    # The totals row's epoch then: a row deleted and created again does not hold it.
    epoch: str
    tokens: int


def _period_totals(totals: Any, period: Period) -> tuple[datetime, Spent]:
    """One period's start and totals from a tenant's totals row."""
    # The row has one column triple per period (see infra/storage.py).
    return getattr(totals, f"{period}_start"), Spent(
        tokens=int(getattr(totals, f"{period}_tokens")),
        requests=int(getattr(totals, f"{period}_requests")),
    )


def _period_values(period: Period, start: datetime, spent: Spent) -> dict[str, Any]:
    return {
        f"{period}_start": start,
        f"{period}_tokens": spent.tokens,
        f"{period}_requests": spent.requests,
    }


@dataclass(frozen=True)
class _Admitted:
    """A chat let through governance and budget."""

    call: _Call
    route: Route
    upstream: ChatRequest
    # Completion tokens the tenant's budget allows the call (None: no token budget).
    allowance: int | None
    prompt_estimate: int
    # The budget, not the caller or the policy, sets the completion limit.
    budget_bound: bool


class _MeteredEvents:
    """A stream's events; closed before its first event was asked for (an async generator would
    then run no ``finally``), it still calls ``left_unread`` so that the call is metered."""

    def __init__(
        self, events: AsyncGenerator[bytes, None], left_unread: Callable[[], Awaitable[None]]
    ) -> None:
        self._events = events
        self._left_unread = left_unread
        self._started = False

    def __aiter__(self) -> _MeteredEvents:
        return self

    async def __anext__(self) -> bytes:
        self._started = True
        return await anext(self._events)

    async def aclose(self) -> None:
        if not self._started:
            self._started = True
            await self._left_unread()
        await self._events.aclose()


@dataclass
class _ChatStream:
    """A chat stream being passed on: the chunks still to send and what was sent."""

    head: list[ChatCompletionChunk]
    rest: AsyncIterator[ChatCompletionChunk] | None
    # Completion tokens the tenant's budget leaves (None: no limit).
    allowance: int | None
    prompt_estimate: int
    wants_usage: bool
    streamed: int = 0
    reported: Usage | None = None

    async def next(self) -> ChatCompletionChunk | None:
        if self.head:
            return self.head.pop(0)
        if self.rest is None:
            return None
        return await anext(self.rest, None)

    def passed_on(self, chunk: ChatCompletionChunk) -> ChatCompletionChunk:
        """The chunk as the client gets it: the usage only if it asked."""
        if chunk.usage is None:
            return chunk
        self.reported = chunk.usage
        return chunk if self.wants_usage else chunk.model_copy(update={"usage": None})

    def budget_end(self, chunk: ChatCompletionChunk) -> ChatCompletionChunk:
        """The last chunk of a stream the budget stops, with what the call is metered for."""
        prompt, completion = self.tokens(whole=False)
        usage = Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )
        return chunk.model_copy(
            update={
                "choices": [ChunkChoice(delta=ChatDelta(), finish_reason="length")],
                "usage": usage if self.wants_usage else None,
            }
        )

    def tokens(self, *, whole: bool) -> tuple[int, int]:
        """(in, out): the provider's count of a whole stream, else what was sent (the prompt as
        the provider reported it, or estimated)."""
        if whole and self.reported is not None:
            return self.reported.prompt_tokens, self.reported.completion_tokens
        prompt = self.reported.prompt_tokens if self.reported else self.prompt_estimate
        return prompt, self.streamed


class AiService:
    """Implements ``AiApi`` for other modules; the REST layer uses the streaming and usage parts
    too."""

    def __init__(
        self,
        database: PlatformDatabase,
        entities: AiEntities,
        config: AiConfig,
        gateway: PluginGateway[AiProvider],
        metrics: ModuleMetrics,
    ) -> None:
        self.database = database
        self.entities = entities
        self.gateway = gateway
        self.config = config
        self.governance = Governance(config)
        self.routes: dict[str, Route] = {}
        self._metrics = metrics
        self._tokens = metrics.counter(
            "tokens", "Tokens through the AI gateway", ("tenant", "model", "direction")
        )
        self._requests = metrics.counter(
            "requests", "AI gateway calls", ("tenant", "model", "provider", "outcome")
        )
        self._latency = metrics.histogram(
            "provider_duration_seconds",
            "Time the providers took to answer (a stream: to its first chunk)",
            ("provider", "model"),
        )

    # -- configuration -------------------------------------------------------------------------

    async def configure(self, config: AiConfig) -> None:
        """Ask the providers for their models and apply ``config``; raises ``RoutesError``
        (the previous configuration stays)."""
        models = await provider_models(self.gateway)
        routes = build_routes(self.gateway.plugins, models, config.routes)
        self.routes, self.config, self.governance = routes, config, Governance(config)
        await self._drop_untracked_totals(config)
        logger.info(
            "ai models: %s",
            ", ".join(
                f"{r.model} ({'/'.join(p.name for p in r.providers)})" for r in routes.values()
            )
            or "none (no provider serves a model)",
        )

    # -- AiApi ---------------------------------------------------------------------------------

    async def models(self, security: SecurityContext) -> ModelList:
        policy = self.governance.policy(security.tenant_id)
        return ModelList(
            data=[
                ModelInfo(
                    id=route.model,
                    owned_by=route.owned_by,
                    kind=route.kind,
                    providers=[plugin.name for plugin in route.providers],
                )
                for route in sorted(self.routes.values(), key=lambda r: r.model)
                if policy.allows(route.model)
            ]
        )

    async def chat(self, security: SecurityContext, request: ChatRequest) -> ChatCompletion:
        return (await self.serve_chat(security, request)).value

    async def embed(
        self, security: SecurityContext, request: EmbeddingRequest
    ) -> EmbeddingResponse:
        return (await self.serve_embed(security, request)).value

    # -- calls ---------------------------------------------------------------------------------

    async def serve_chat(
        self, security: SecurityContext, request: ChatRequest
    ) -> Served[ChatCompletion]:
        admitted = await self._admit_chat(security, request)
        call, upstream = admitted.call, admitted.upstream
        served = await self._provider_call(
            call, admitted.route, lambda provider: provider.chat(security, upstream)
        )
        completion = served.value
        call.tokens_in = completion.usage.prompt_tokens
        call.tokens_out = completion.usage.completion_tokens
        finish = completion.choices[0].finish_reason if completion.choices else None
        if admitted.budget_bound and finish == "length":
            call.outcome = "quota_stopped"
        await self._finish(call)
        return served

    async def serve_embed(
        self, security: SecurityContext, request: EmbeddingRequest
    ) -> Served[EmbeddingResponse]:
        route = self._route(request.model, "embedding")
        call = _Call(security, route.model, "embedding", time.perf_counter())
        policy = self.governance.policy(security.tenant_id)
        await self._govern(call, policy, lambda: policy.check_texts(request.texts))
        await self._reserve(call, sum(estimate_tokens(text) for text in request.texts), 0)
        served = await self._provider_call(
            call, route, lambda provider: provider.embed(security, request)
        )
        call.tokens_in = served.value.usage.prompt_tokens
        await self._finish(call)
        return served

    async def open_chat_stream(
        self, security: SecurityContext, request: ChatRequest
    ) -> Served[AsyncIterator[bytes]]:
        """Everything up to the first chunk (refusals and fallback happen here, before anything
        was sent); then the Server-Sent Events of the rest, metered when they end."""
        admitted = await self._admit_chat(security, request, streaming=True)
        call = admitted.call
        # The provider always reports usage at the end; the client sees it only if it asked.
        upstream = admitted.upstream.model_copy(
            update={"stream": True, "stream_options": StreamOptions(include_usage=True)}
        )

        async def first_chunk(provider: AiProvider) -> tuple[list[ChatCompletionChunk], Any]:
            if isinstance(provider, StreamingAiProvider):
                chunks = aiter(provider.chat_stream(security, upstream))
                try:
                    first = await anext(chunks)
                except StopAsyncIteration:
                    return [], None
                except BaseException:
                    await _close(chunks)
                    raise
                return [first], chunks
            return _as_chunks(await provider.chat(security, upstream)), None

        served = await self._provider_call(call, admitted.route, first_chunk)
        head, rest = served.value
        stream = _ChatStream(
            head=head,
            rest=rest,
            allowance=admitted.allowance,
            prompt_estimate=admitted.prompt_estimate,
            wants_usage=bool(request.stream_options and request.stream_options.include_usage),
        )
        return Served(
            _MeteredEvents(self._events(call, stream), lambda: self._left_unread(call, stream)),
            served.provider,
            served.provider_ms,
        )

    async def _left_unread(self, call: _Call, stream: _ChatStream) -> None:
        """A stream closed before its first event was asked for: the client left right after
        the headers. The provider's stream is closed, and the call is metered all the same."""
        if stream.rest is not None:
            await _close(stream.rest)
        call.outcome = "disconnected"
        call.tokens_in, call.tokens_out = stream.tokens(whole=False)
        await self._finish(call)

    async def _events(self, call: _Call, stream: _ChatStream) -> AsyncGenerator[bytes, None]:
        ended = False
        try:
            while (chunk := await stream.next()) is not None:
                content = chunk.choices[0].delta.content if chunk.choices else None
                if content:
                    if stream.allowance is not None and stream.streamed >= stream.allowance:
                        # The budget ends here: a clean end, as if the limit were max_tokens.
                        call.outcome = "quota_stopped"
                        yield sse(stream.budget_end(chunk).model_dump_json())
                        break
                    stream.streamed += 1
                yield sse(stream.passed_on(chunk).model_dump_json())
            yield DONE
            ended = True
        except Exception as error:
            # What was sent cannot be taken back: the stream ends with an error event.
            call.outcome = "failed"
            logger.warning(
                "ai stream from provider '%s' failed: %s", call.provider, error, exc_info=error
            )
            message = f"the provider '{call.provider}' failed during the stream"
            yield sse(json.dumps({"error": {"message": message, "type": "provider_failed"}}))
            yield DONE
            ended = True
        finally:
            # Also on a disconnect (the kernel closes this generator): the call is still metered.
            if stream.rest is not None:
                await _close(stream.rest)
            if not ended and call.outcome == "ok":
                call.outcome = "disconnected"
            call.tokens_in, call.tokens_out = stream.tokens(whole=call.outcome == "ok")
            await self._finish(call)

    # -- the steps of a call -------------------------------------------------------------------

    def _route(self, model: str, kind: ModelKind) -> Route:
        route = self.routes.get(model)
        if route is None:
            raise ModelNotFoundError(f"no provider serves the model '{model}'")
        if route.kind != kind:
            action = "chat completions" if kind == "chat" else "embeddings"
            raise ModelNotFoundError(
                f"the model '{model}' is a {route.kind} model: it does not serve {action}"
            )
        return route

    async def _admit_chat(
        self, security: SecurityContext, request: ChatRequest, *, streaming: bool = False
    ) -> _Admitted:
        """Route, govern and budget a chat: the request to send upstream and the completion
        tokens the tenant's budget allows it."""
        route = self._route(request.model, "chat")
        call = _Call(security, route.model, "chat", time.perf_counter())
        policy = self.governance.policy(security.tenant_id)
        limits: list[int | None] = []

        def govern() -> None:
            policy.check_texts(m.content for m in request.messages)
            limits.append(policy.token_limit(request.token_limit))

        await self._govern(call, policy, govern)
        prompt_estimate = sum(estimate_tokens(m.content) for m in request.messages)
        limit = limits[0]
        allowance = await self._reserve(call, prompt_estimate, limit)
        budget_bound = allowance is not None and (limit is None or allowance < limit)
        if budget_bound and not streaming:
            # A whole answer cannot be cut afterwards: the budget's allowance bounds it instead.
            limit = allowance
        upstream = request
        if limit != request.token_limit:
            upstream = request.model_copy(
                update={"max_tokens": limit, "max_completion_tokens": None}
            )
        return _Admitted(call, route, upstream, allowance, prompt_estimate, budget_bound)

    async def _govern(self, call: _Call, policy: TenantPolicy, rules: Callable[[], None]) -> None:
        try:
            policy.check_model(call.model)
            rules()
        except (ModelNotAllowedError, PolicyViolationError):
            call.outcome = "policy"
            await self._finish(call)
            raise

    async def _reserve(
        self, call: _Call, tokens_in: int, completion_limit: int | None
    ) -> int | None:
        """Under a budget, add the call's share to the tenant's totals or refuse it (429).

        The share is one request, the estimated input, and the completion tokens the call may
        use: ``completion_limit``, else the quota's ``reserve_tokens``, at most what the budget
        leaves. Returns those completion tokens (None: no token budget). The totals' row is
        locked for the check and the addition, so concurrent calls on every worker and instance
        are admitted one after another against what the earlier ones reserved.
        """
        quota = self.config.quota_for(call.security.tenant_id)
        if not quota.limited:
            return None
        now = call.admitted_at
        _, resets_at = period_bounds(quota.period, now)
        wanted = quota.reserve_tokens if completion_limit is None else completion_limit
        # A chat needs room for one completion token at least; an embedding for none.
        least = min(wanted, 1)

        def reserve(session: ScopedSession) -> tuple[_Reservation, int | None]:
            totals = self._totals(session, now)
            # The row's period (a later one, were another instance's clock ahead).
            starts_at, spent = _period_totals(totals, quota.period)
            left = check_budget(quota, spent, resets_at, now)
            allowance = None
            if left is not None:
                allowance = min(wanted, left - tokens_in)
                if allowance < least:
                    raise QuotaSpentError(
                        "quota.tokens",
                        quota.tokens or 0,
                        spent.tokens,
                        resets_at,
                        now,
                        needed=tokens_in + least,
                    )
            reserved = tokens_in + (allowance or 0)
            totals.set(
                **_period_values(
                    quota.period,
                    starts_at,
                    Spent(tokens=spent.tokens + reserved, requests=spent.requests + 1),
                )
            )
            return _Reservation(quota.period, starts_at, totals.epoch, reserved), allowance

        try:
            call.reservation, allowance = await self.database.run(
                call.security, reserve, retry_conflicts=True
            )
        except QuotaSpentError:
            call.outcome = "quota"
            await self._finish(call)
            raise
        return allowance

    async def _provider_call(
        self,
        call: _Call,
        route: Route,
        invoke: Callable[[AiProvider], Awaitable[T]],
    ) -> Served[T]:
        started = time.perf_counter()
        attempts = 0

        async def counted(provider: AiProvider) -> T:
            nonlocal attempts
            attempts += 1
            return await invoke(provider)

        try:
            result = await self.gateway.call(
                call.security,
                counted,
                order=route.providers,
                timeout_s=self.config.provider_timeout_s,
            )
        except (ProviderRefusedError, PluginUnavailableError) as error:
            # The gateway tries the route's providers in order: the last one tried answered.
            refused = isinstance(error, ProviderRefusedError)
            call.outcome = "refused" if refused else "failed"
            call.provider = route.providers[max(attempts, 1) - 1].name
            await self._finish(call)
            raise
        except BaseException:
            # Anything else (a cancelled request, a defect): metered as failed, and a
            # reservation is released rather than held until the period ends.
            call.outcome = "failed"
            await self._finish(call)
            raise
        elapsed = time.perf_counter() - started
        call.provider = result.plugin.name
        self._latency.labels(call.provider, call.model).observe(elapsed)
        return Served(result.value, call.provider, elapsed * 1000)

    async def _finish(self, call: _Call) -> None:
        """The call's usage row, its settlement in the tenant's budget totals, and metrics."""
        tenant = self._metrics.tenant(call.security.tenant_id)
        self._requests.labels(tenant, call.model, call.provider or "-", call.outcome).inc()
        if call.tokens_in:
            self._tokens.labels(tenant, call.model, "in").inc(call.tokens_in)
        if call.tokens_out:
            self._tokens.labels(tenant, call.model, "out").inc(call.tokens_out)
        counts = (
            call.tokens_in + call.tokens_out > 0
            or call.outcome in BILLED_OUTCOMES
            or call.reservation is not None
        )
        # Totals are kept for tenants under a budget only (see _drop_untracked_totals).
        tracked = counts and self.config.quota_for(call.security.tenant_id).limited
        latency_ms = round((time.perf_counter() - call.started) * 1000)
        usage = self.entities.Usage

        def work(session: ScopedSession) -> None:
            if tracked:
                self._settle(self._totals(session, _now()), call)
            # After the totals: totals made above counted the usage rows before this one.
            session.create(
                usage,
                id=str(uuid.uuid4()),
                subject=call.security.subject[:SUBJECT_LENGTH],
                model=call.model[:MODEL_LENGTH],
                provider=call.provider,
                kind=call.kind,
                tokens_in=call.tokens_in,
                tokens_out=call.tokens_out,
                latency_ms=latency_ms,
                outcome=call.outcome,
                day=call.admitted_at.date().isoformat(),
                created_at=call.admitted_at,
            )

        await self.database.run(call.security, work, retry_conflicts=True)

    async def _drop_untracked_totals(self, config: AiConfig) -> None:
        """Delete the budget totals of tenants without a budget under ``config``.

        Totals are kept only for tenants under a budget (keeping them for every call would cost
        every call a locked row). A tenant's totals that nothing keeps up to date would be wrong
        if a budget came back, so they go: they are rebuilt from the usage rows when it does.
        """
        budget = self.entities.Budget
        named = config.tenant_quotas
        unlimited = [tenant for tenant in named if not config.quota_for(tenant).limited]
        limited = [tenant for tenant in named if config.quota_for(tenant).limited]
        if config.quota.limited and not unlimited:
            return

        def work(session: ScopedSession) -> int:
            # A totals row's id is its tenant's id.
            rows = session.query(budget)
            if config.quota.limited:
                rows = rows.filter(lambda b: b.id in unlimited)
            elif limited:
                rows = rows.filter(lambda b: b.id not in limited)
            return int(rows.delete(bulk=True))

        await self.database.run_system("ai: budget totals of tenants without a budget", work)

    @staticmethod
    def _settle(totals: Any, call: _Call) -> None:
        """Count the call in each period's totals it was admitted in, in place of what it
        reserved there."""
        tokens = call.tokens_in + call.tokens_out
        billed = call.outcome in BILLED_OUTCOMES
        held = call.reservation
        values: dict[str, Any] = {}
        for period in PERIODS:
            starts_at, spent = _period_totals(totals, period)
            counted = Spent(tokens=tokens, requests=1 if billed else 0)
            if held is not None and (held.period, held.starts_at, held.epoch) == (
                period,
                starts_at,
                totals.epoch,
            ):
                counted = Spent(tokens=tokens - held.tokens, requests=counted.requests - 1)
            elif starts_at != period_bounds(period, call.admitted_at)[0]:
                continue  # admitted in a period that is over: nothing reads it any more
            values |= _period_values(
                period,
                starts_at,
                Spent(spent.tokens + counted.tokens, spent.requests + counted.requests),
            )
        totals.set(**values)

    def _totals(self, session: ScopedSession, now: datetime) -> Any:
        """The session's tenant's totals row, locked until the unit ends, its periods moved on
        to those of ``now``; made from the usage rows of each period when first needed."""
        budget = self.entities.Budget
        tenant = session.security.tenant_id
        totals = session.query(budget).filter(lambda b: b.id == tenant).for_update().first()
        values: dict[str, Any] = {}
        for period in PERIODS:
            start, end = period_bounds(period, now)
            if totals is None:
                values |= _period_values(period, start, self._spent_in(session, start, end))
            elif start > _period_totals(totals, period)[0]:
                # A new period: nothing counted in it yet (every call's row counts here).
                values |= _period_values(period, start, Spent(tokens=0, requests=0))
        if totals is None:
            return session.create(budget, id=tenant, epoch=str(uuid.uuid4()), **values)
        if values:
            totals.set(**values)
        return totals

    # -- usage and budgets ---------------------------------------------------------------------

    def _spent_in(self, session: ScopedSession, start: datetime, end: datetime) -> Spent:
        """What the session's tenant's finished calls admitted in [start, end) used."""
        usage = self.entities.Usage
        recent = session.query(usage).filter(lambda u: u.created_at >= start and u.created_at < end)
        # Aggregated over the session's scoped query: still only the caller's tenant.
        rows = select(  # hyperspot: ignore[HS004] a select over the scoped query
            (
                u.outcome,
                count(u),  # hyperspot: ignore[HS004] an aggregate of the scoped select
                sum(u.tokens_in),
                sum(u.tokens_out),
            )
            for u in recent
        )[:]
        tokens = sum(int(tokens_in) + int(tokens_out) for _, _, tokens_in, tokens_out in rows)
        requests = sum(int(n) for outcome, n, _, _ in rows if outcome in BILLED_OUTCOMES)
        return Spent(tokens=tokens, requests=requests)

    def _spent(self, session: ScopedSession, quota: Quota, now: datetime) -> Spent:
        """What the tenant used in its quota's period, shares of calls in progress included;
        read only (no totals yet: from the usage rows)."""
        start, end = period_bounds(quota.period, now)
        tenant = session.security.tenant_id
        totals = session.query(self.entities.Budget).filter(lambda b: b.id == tenant).first()
        if totals is None:
            return self._spent_in(session, start, end)
        counted_from, spent = _period_totals(totals, quota.period)
        # Totals of an earlier period: no call counted in this one yet.
        return spent if counted_from >= start else Spent(tokens=0, requests=0)

    async def quota(self, security: SecurityContext) -> QuotaStatus:
        quota = self.config.quota_for(security.tenant_id)
        now = _now()
        start, resets_at = period_bounds(quota.period, now)
        spent = await self.database.run(security, lambda session: self._spent(session, quota, now))
        return QuotaStatus(
            period=quota.period,
            period_start=start,
            resets_at=resets_at,
            tokens_used=spent.tokens,
            tokens_limit=quota.tokens,
            requests_used=spent.requests,
            requests_limit=quota.requests,
        )

    async def usage(self, security: SecurityContext, first: date, last: date) -> UsageReport:
        """The caller's tenant's usage per day and model, from ``first`` to ``last`` (UTC days)."""
        return await self.database.run(security, self._report_work(first, last, False))

    async def usage_of_all(
        self, security: SecurityContext, first: date, last: date, tenant: str | None
    ) -> UsageReport:
        """Every tenant's usage (or one tenant's), for a platform administrator."""
        if tenant is not None:
            # One tenant: as that tenant's own scope, no cross-tenant access needed.
            scoped = dataclasses.replace(
                security, tenant_id=tenant, visible_tenants=frozenset({tenant})
            )
            return await self.database.run(scoped, self._report_work(first, last, True))
        return await self.database.run_system(
            f"ai usage of every tenant for platform administrator '{security.subject}'",
            self._report_work(first, last, True),
        )

    def _report_work(
        self, first: date, last: date, per_tenant: bool
    ) -> Callable[[ScopedSession], UsageReport]:
        usage = self.entities.Usage
        since, until = first.isoformat(), last.isoformat()

        def work(session: ScopedSession) -> UsageReport:
            days = session.query(usage).filter(lambda u: u.day >= since and u.day <= until)
            rows = select(  # hyperspot: ignore[HS004] a select over the scoped query
                (
                    u.tenant_id,
                    u.day,
                    u.model,
                    u.provider,
                    u.outcome,
                    count(u),  # hyperspot: ignore[HS004] an aggregate of the scoped select
                    sum(u.tokens_in),
                    sum(u.tokens_out),
                )
                for u in days
            )[:]
            return UsageReport.of(first, last, rows, per_tenant=per_tenant)

        return work


def _as_chunks(completion: ChatCompletion) -> list[ChatCompletionChunk]:
    """A whole answer as a stream of two chunks: the message, then its end and usage."""
    choice = completion.choices[0] if completion.choices else None
    content = choice.message.content if choice else ""

    def chunk(choice: ChunkChoice, usage: Usage | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=completion.id,
            created=completion.created,
            model=completion.model,
            choices=[choice],
            usage=usage,
        )

    return [
        chunk(ChunkChoice(delta=ChatDelta(role="assistant", content=content))),
        chunk(
            ChunkChoice(
                delta=ChatDelta(), finish_reason=choice.finish_reason if choice else "stop"
            ),
            completion.usage,
        ),
    ]


async def _close(chunks: AsyncIterator[Any]) -> None:
    close = getattr(chunks, "aclose", None)
    if close is not None:
        await close()
