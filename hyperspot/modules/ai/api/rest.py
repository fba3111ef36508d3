"""The AI gateway's REST operations: OpenAI's paths and bodies under ``/ai/v1``, plus usage and
quota. Refusals are problem documents naming the rule (``rule`` member)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hyperspot.modules.ai.config import AiConfig
from hyperspot.modules.ai.contract import (
    ChatCompletion,
    ChatRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelList,
    ModelNotAllowedError,
    ModelNotFoundError,
    PolicyViolationError,
    ProviderRefusedError,
)
from hyperspot.modules.ai.domain.governance import ALLOWED_MODELS
from hyperspot.modules.ai.domain.models import QuotaStatus, UsageReport
from hyperspot.modules.ai.domain.quota import QuotaSpentError
from hyperspot.modules.ai.domain.service import AiService, Served
from hyperspot.platform import Call, ModuleContext, Problem, Reply, RestApi

USE = "ai:use"
USAGE = "ai:usage"
ALL_USAGE = "platform:ai-usage"
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
DEFAULT_DAYS = 30
DAYS_BEFORE = timedelta(days=DEFAULT_DAYS - 1)


class UsageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: date | None = Field(
        default=None, alias="from", description="First day (UTC, YYYY-MM-DD); default 29 days ago."
    )
    end: date | None = Field(
        default=None, alias="to", description="Last day (UTC, YYYY-MM-DD); default today."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError("'from' must not be after 'to'")
        return self

    def span(self, longest_days: int) -> tuple[date, date]:
        last = self.end or datetime.now(UTC).date()
        first = self.start or max(last, date.min + DAYS_BEFORE) - DAYS_BEFORE
        if (last - first).days + 1 > longest_days:
            raise Problem(
                400,
                f"a usage query covers at most {longest_days} days (modules.ai.usage_days)",
                kind="validation-error",
            )
        return first, last


class AllUsageQuery(UsageQuery):
    tenant: str | None = Field(
        default=None, pattern=TENANT_PATTERN, description="Only this tenant's usage."
    )


def _problem(error: Exception) -> Problem:
    """The problem document of a refusal, naming its rule."""
    if isinstance(error, QuotaSpentError):
        return Problem(
            429,
            str(error),
            kind="ai-quota-exceeded",
            headers={"Retry-After": str(error.retry_after_s)},
            extensions={
                "rule": error.rule,
                "limit": error.limit,
                "used": error.used,
                "resets_at": error.resets_at.isoformat() + "Z",
            },
        )
    if isinstance(error, ModelNotAllowedError):
        return Problem(
            403, str(error), kind="model-not-allowed", extensions={"rule": ALLOWED_MODELS}
        )
    if isinstance(error, PolicyViolationError):
        rule = getattr(error, "rule", None)
        extensions = {"rule": rule} if rule else None
        return Problem(422, str(error), kind="policy-violation", extensions=extensions)
    if isinstance(error, ModelNotFoundError):
        return Problem(404, str(error), kind="model-not-found")
    if isinstance(error, ProviderRefusedError):
        return Problem(422, str(error), kind="provider-refused")
    raise error


REFUSALS = (
    QuotaSpentError,
    ModelNotAllowedError,
    PolicyViolationError,
    ModelNotFoundError,
    ProviderRefusedError,
)


def _timing(served: Served[Any]) -> dict[str, str]:
    # How long the providers took: the rest of the answer's time is the gateway's own.
    return {"Server-Timing": f"provider;dur={served.provider_ms:.1f}"}


def register_rest(ctx: ModuleContext[AiConfig], api: RestApi) -> None:
    service = ctx.clients.get(AiService)
    for refusal in REFUSALS:
        api.problems(refusal, _problem)

    async def list_models(call: Call) -> ModelList:
        return await service.models(call.security)

    async def chat(call: Call) -> Reply:
        request = call.body(ChatRequest)
        if request.stream:
            stream = await service.open_chat_stream(call.security, request)
            return Reply(200, stream=stream.value, headers=_timing(stream))
        served = await service.serve_chat(call.security, request)
        return Reply(200, served.value, headers=_timing(served))

    async def embed(call: Call) -> Reply:
        served = await service.serve_embed(call.security, call.body(EmbeddingRequest))
        return Reply(200, served.value, headers=_timing(served))

    async def usage(call: Call) -> UsageReport:
        first, last = call.query(UsageQuery).span(service.config.usage_days)
        return await service.usage(call.security, first, last)

    async def all_usage(call: Call) -> UsageReport:
        query = call.query(AllUsageQuery)
        first, last = query.span(service.config.usage_days)
        return await service.usage_of_all(call.security, first, last, query.tenant)

    async def quota(call: Call) -> QuotaStatus:
        return await service.quota(call.security)

    refusals = {
        403: "Missing permission, or the tenant's policy does not allow the model (rule "
        "allowed_models)",
        404: "No provider serves the model (or it is of the other kind)",
        422: "The tenant's policy refuses the request (rule max_tokens or "
        "forbidden_patterns.<name>), or the provider refused it",
        429: "The tenant's token or request budget for the period is spent (Retry-After, "
        "resets_at), or a rate limit",
        503: "Every provider serving the model failed",
    }
    chat_op = (
        api.operation("POST", "/ai/v1/chat/completions", "ai.create_chat_completion")
        .summary("Chat completion (OpenAI-compatible); stream=true answers Server-Sent Events")
        .description(
            "With `stream: true` the answer is `text/event-stream`: one `data: <chunk>` event per "
            "ChatCompletionChunk, then `data: [DONE]`. A stream that reaches the tenant's token "
            "budget ends with finish_reason `length`; a provider failing mid-stream ends it with "
            '`data: {"error": ...}`. `Server-Timing: provider;dur=<ms>` gives the providers\' '
            "share of the time."
        )
        .body(ChatRequest)
        .response(200, ChatCompletion)
        .streams("text/event-stream")
        .require(USE)
    )
    embed_op = (
        api.operation("POST", "/ai/v1/embeddings", "ai.create_embeddings")
        .summary("Embeddings (OpenAI-compatible)")
        .body(EmbeddingRequest)
        .response(200, EmbeddingResponse)
        .require(USE)
    )
    for builder in (chat_op, embed_op):
        for status, text in refusals.items():
            builder.error(status, text)
    chat_op.handler(chat)
    embed_op.handler(embed)
    (
        api.operation("GET", "/ai/v1/models", "ai.list_models")
        .summary("The models the caller's tenant may use, with their kind and providers")
        .response(200, ModelList)
        .require(USE)
        .handler(list_models)
    )
    (
        api.operation("GET", "/ai/v1/quota", "ai.get_quota")
        .summary("The caller's tenant's budget in the current period: used, limit, reset")
        .response(200, QuotaStatus)
        .require(USE)
        .handler(quota)
    )
    (
        api.operation("GET", "/ai/v1/usage", "ai.get_usage")
        .summary("The caller's tenant's usage per day and model, with totals")
        .query(UsageQuery)
        .response(200, UsageReport)
        .require(USAGE)
        .handler(usage)
    )
    (
        api.operation("GET", "/ai/v1/admin/usage", "ai.get_all_usage")
        .summary("Every tenant's usage per day, tenant and model (platform administrators)")
        .query(AllUsageQuery)
        .response(200, UsageReport)
        .require(ALL_USAGE)
        .handler(all_usage)
    )
