"""The AI gateway's public face: OpenAI-compatible request/response types, the provider plugin
contract that provider modules implement, and the client contract other modules call.

Bodies follow the shape OpenAI's chat completions and embeddings APIs use, so existing clients
and SDKs work unchanged; fields the platform does not support are refused rather than ignored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from hyperspot.platform.plugins import PluginSlot
from hyperspot.platform.rpc import contract, idempotent
from hyperspot.platform.security import SecurityContext

ModelKind = Literal["chat", "embedding"]
Role = Literal["system", "user", "assistant", "tool", "developer"]
FinishReason = Literal["stop", "length", "content_filter"]

# A model id: what clients send as "model" (also the key of per-tenant governance).
MODEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"


class _Body(BaseModel):
    # A misspelt option is refused, not silently ignored (the platform's rule for every body).
    model_config = ConfigDict(extra="forbid")


class ChatMessage(_Body):
    role: Role
    content: str = Field(max_length=1_000_000)
    name: str | None = Field(default=None, max_length=64)


class StreamOptions(_Body):
    include_usage: bool = False


class ChatRequest(_Body):
    """``POST /ai/v1/chat/completions``: OpenAI's body, one choice (``n`` = 1)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"model": "demo-chat", "messages": [{"role": "user", "content": "Hello"}]}]
        },
    )

    model: str = Field(pattern=MODEL_ID_PATTERN)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1024)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    # Newer OpenAI clients send this name instead of max_tokens; the smaller one applies.
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=256)

    @property
    def token_limit(self) -> int | None:
        """The completion token limit the client asked for, under either name."""
        limits = [v for v in (self.max_tokens, self.max_completion_tokens) if v is not None]
        return min(limits) if limits else None


class Usage(BaseModel):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(ge=0)


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason | None = "stop"


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(description="Unix time, seconds.")
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChatDelta
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(BaseModel):
    """One Server-Sent Event of a streamed chat completion (``data: <chunk>``)."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    # Sent on the last chunk only, when the client asked (stream_options.include_usage).
    usage: Usage | None = None


class EmbeddingRequest(_Body):
    """``POST /ai/v1/embeddings``: OpenAI's body; float vectors only."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"model": "demo-embed", "input": ["a cat", "a dog"]}]},
    )

    model: str = Field(pattern=MODEL_ID_PATTERN)
    input: str | list[str] = Field(description="One text or up to 256 texts.")
    encoding_format: Literal["float"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=8192)
    user: str | None = Field(default=None, max_length=256)

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float]


class EmbeddingUsage(BaseModel):
    prompt_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class ProviderModel(BaseModel):
    """A model a provider serves, as the provider declares it."""

    id: str = Field(pattern=MODEL_ID_PATTERN)
    kind: ModelKind
    owned_by: str = ""


class ModelInfo(BaseModel):
    """One entry of ``GET /ai/v1/models`` (OpenAI's shape, plus the kind and the provider)."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str
    kind: ModelKind
    providers: list[str] = Field(description="The provider plugins that serve it, in order.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


# -- the provider plugin contract ------------------------------------------------------------------


class ProviderRefusedError(ValueError):
    """The provider answered that the request itself is wrong (its 4xx other than 408/429): an
    answer, not a failure, so no other provider is tried."""


@contract(errors=(ProviderRefusedError,))
class AiProvider(Protocol):
    """What a provider plugin implements. Any other exception is a failure: the gateway tries the
    model's next provider, else answers 503."""

    @idempotent
    async def models(self, security: SecurityContext) -> list[ProviderModel]: ...

    async def chat(self, security: SecurityContext, request: ChatRequest) -> ChatCompletion: ...

    async def embed(
        self, security: SecurityContext, request: EmbeddingRequest
    ) -> EmbeddingResponse: ...


@runtime_checkable
class StreamingAiProvider(Protocol):
    """Optionally also implemented by a provider: chat as a stream of chunks. The gateway streams
    a provider without it as one chunk. A failure before the first chunk falls back like ``chat``;
    after it, the stream ends with an error (what was sent cannot be taken back)."""

    def chat_stream(
        self, security: SecurityContext, request: ChatRequest
    ) -> AsyncIterator[ChatCompletionChunk]: ...


AI_PROVIDERS = PluginSlot(
    contract=AiProvider,
    type_id="gts.hx.core.plugins.plugin.v1~hx.core.ai.provider.v1.0~",
    description="AI provider plugins: chat completions and embeddings for the ai gateway.",
)


# -- what other modules call ----------------------------------------------------------------------


class ModelNotFoundError(LookupError):
    """No running provider serves the model."""


class ModelNotAllowedError(PermissionError):
    """The tenant's policy does not allow the model (the message names the rule)."""


class PolicyViolationError(ValueError):
    """The request breaks a rule of the tenant's policy (the message names the rule)."""


class AiQuotaExceededError(RuntimeError):
    """The tenant's token or request budget for the period is spent (the message says when it
    resets)."""


@contract(
    errors=(
        ModelNotFoundError,
        ModelNotAllowedError,
        PolicyViolationError,
        AiQuotaExceededError,
        ProviderRefusedError,
    )
)
class AiApi(Protocol):
    """The AI gateway for other modules: the same governance, quotas and metering as REST, for
    the caller's tenant and subject."""

    async def chat(self, security: SecurityContext, request: ChatRequest) -> ChatCompletion: ...

    async def embed(
        self, security: SecurityContext, request: EmbeddingRequest
    ) -> EmbeddingResponse: ...

    @idempotent
    async def models(self, security: SecurityContext) -> ModelList: ...
