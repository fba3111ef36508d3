"""The demo provider: answers derived from the request alone, so tests can assert them exactly.

Tokens are whitespace-separated words. Chat echoes the last user message; embeddings are a
feature-hashed bag of words and character trigrams, so sentences sharing words or word stems
are closer (cosine) than unrelated ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import time
from collections.abc import AsyncIterator, Sequence

from hyperspot.modules.ai.contract import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatDelta,
    ChatRequest,
    ChunkChoice,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    FinishReason,
    ModelKind,
    ProviderModel,
    ProviderRefusedError,
    Usage,
)
from hyperspot.platform.security import SecurityContext

OWNER = "hyperspot-demo"
_WORD = re.compile(r"\w+")
# A word counts fully; its trigrams together about as much, so "sits" and "sitting" are near.
_WORD_WEIGHT = 1.0
_TRIGRAM_WEIGHT = 0.35
_SERVES: dict[ModelKind, str] = {"chat": "chat completions", "embedding": "embeddings"}


def count_tokens(text: str) -> int:
    return len(text.split())


def hashed_embedding(text: str, dimensions: int) -> list[float]:
    """The L2-normalised, signed feature hash of ``text``'s lower-cased words and trigrams."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        padded = f"<{word}>"
        features = [(f"w:{word}", _WORD_WEIGHT)]
        features += [(f"t:{padded[i : i + 3]}", _TRIGRAM_WEIGHT) for i in range(len(padded) - 2)]
        for feature, weight in features:
            # blake2b, not hash(): the same text gets the same vector in every process.
            digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest())
            sign = 1.0 if digest & 1 else -1.0
            vector[(digest >> 1) % dimensions] += sign * weight
    norm = math.sqrt(sum(value * value for value in vector))
    return [value / norm for value in vector] if norm else vector


class DemoProvider:
    """Implements ``AiProvider`` and ``StreamingAiProvider`` for the models it is given."""

    def __init__(
        self, models: Sequence[tuple[str, ModelKind]], *, latency_ms: int = 0, dimensions: int = 256
    ) -> None:
        self._models = dict(models)
        self._latency = latency_ms / 1000
        self._dimensions = dimensions

    async def models(self, security: SecurityContext) -> list[ProviderModel]:
        return [
            ProviderModel(id=model_id, kind=kind, owned_by=OWNER)
            for model_id, kind in self._models.items()
        ]

    async def chat(self, security: SecurityContext, request: ChatRequest) -> ChatCompletion:
        self._check(request.model, "chat")
        words, finish_reason = _reply(request)
        await self._wait()
        return ChatCompletion(
            id=_completion_id(request),
            created=int(time.time()),
            model=request.model,
            choices=[
                ChatChoice(
                    message=AssistantMessage(content=" ".join(words)), finish_reason=finish_reason
                )
            ],
            usage=_usage(request, len(words)),
        )

    async def chat_stream(
        self, security: SecurityContext, request: ChatRequest
    ) -> AsyncIterator[ChatCompletionChunk]:
        self._check(request.model, "chat")
        words, finish_reason = _reply(request)
        chunk_id, created = _completion_id(request), int(time.time())

        def chunk(choice: ChunkChoice, usage: Usage | None = None) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id=chunk_id, created=created, model=request.model, choices=[choice], usage=usage
            )

        for index, word in enumerate(words):
            await self._wait()
            if index == 0:
                yield chunk(ChunkChoice(delta=ChatDelta(role="assistant", content=word)))
            else:
                yield chunk(ChunkChoice(delta=ChatDelta(content=f" {word}")))
        if not words:  # the role still comes first
            yield chunk(ChunkChoice(delta=ChatDelta(role="assistant", content="")))
        options = request.stream_options
        usage = _usage(request, len(words)) if options and options.include_usage else None
        yield chunk(ChunkChoice(delta=ChatDelta(), finish_reason=finish_reason), usage)

    async def embed(
        self, security: SecurityContext, request: EmbeddingRequest
    ) -> EmbeddingResponse:
        self._check(request.model, "embedding")
        dimensions = request.dimensions or self._dimensions
        texts = request.texts
        await self._wait()
        tokens = sum(count_tokens(text) for text in texts)
        return EmbeddingResponse(
            data=[
                Embedding(index=index, embedding=hashed_embedding(text, dimensions))
                for index, text in enumerate(texts)
            ],
            model=request.model,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )

    def _check(self, model: str, kind: ModelKind) -> None:
        served = self._models.get(model)
        if served is None:
            raise ProviderRefusedError(
                f"model '{model}' is not served by the demo provider "
                f"(models: {', '.join(sorted(self._models))})"
            )
        if served != kind:
            raise ProviderRefusedError(
                f"model '{model}' serves {_SERVES[served]}, not {_SERVES[kind]}"
            )

    async def _wait(self) -> None:
        if self._latency:
            await asyncio.sleep(self._latency)


def _reply(request: ChatRequest) -> tuple[list[str], FinishReason]:
    """The reply's words and why they end: the last user message, echoed."""
    said = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    text = f"You said: {said}" if said.strip() else "You said nothing."
    for stop in [request.stop] if isinstance(request.stop, str) else request.stop or []:
        if stop and stop in text:
            text = text[: text.index(stop)]
    words = text.split()
    limit = request.token_limit
    if limit is not None and len(words) > limit:
        return words[:limit], "length"
    return words, "stop"


def _usage(request: ChatRequest, completion_tokens: int) -> Usage:
    prompt_tokens = sum(count_tokens(message.content) for message in request.messages)
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


def _completion_id(request: ChatRequest) -> str:
    # Derived from the request: the same request gets the same answer, id included.
    digest = hashlib.blake2b(request.model_dump_json().encode(), digest_size=12).hexdigest()
    return f"chatcmpl-demo-{digest}"
