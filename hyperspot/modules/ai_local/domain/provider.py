"""The local embeddings provider: an in-process model, loaded on the first request.

The model costs tens of megabytes once loaded, so a server that never embeds never loads it. It
is loaded in a worker thread, once, however many requests arrive while it loads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from hyperspot.modules.ai.contract import (
    ChatCompletion,
    ChatRequest,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    ProviderModel,
    ProviderRefusedError,
)
from hyperspot.platform.security import SecurityContext

OWNER = "hyperspot-local"


class Encoder(Protocol):
    """A loaded embedding model."""

    def encode(self, texts: list[str], dimensions: int) -> tuple[list[list[float]], list[int]]:
        """L2-normalised vectors of the first ``dimensions`` components, and tokens per text."""
        ...


class LocalEmbeddingProvider:
    """Implements ``AiProvider`` for one embedding model; chat is refused."""

    def __init__(
        self, model: str, load: Callable[[], Encoder], *, dimensions: int, max_inputs: int
    ) -> None:
        self.model = model
        self._load = load
        self._dimensions = dimensions
        self._max_inputs = max_inputs
        self._encoder: Encoder | None = None
        self._loading = asyncio.Lock()

    @property
    def loaded(self) -> bool:
        return self._encoder is not None

    async def models(self, security: SecurityContext) -> list[ProviderModel]:
        return [ProviderModel(id=self.model, kind="embedding", owned_by=OWNER)]

    async def chat(self, security: SecurityContext, request: ChatRequest) -> ChatCompletion:
        raise ProviderRefusedError(
            f"model '{request.model}' is not a chat model: the local provider serves embeddings "
            f"only ({self.model})"
        )

    async def embed(
        self, security: SecurityContext, request: EmbeddingRequest
    ) -> EmbeddingResponse:
        if request.model != self.model:
            raise ProviderRefusedError(
                f"model '{request.model}' is not served by the local provider "
                f"(models: {self.model})"
            )
        texts = request.texts
        if len(texts) > self._max_inputs:
            raise ProviderRefusedError(
                f"{len(texts)} inputs: the local provider embeds at most {self._max_inputs} per "
                "request"
            )
        dimensions = request.dimensions or self._dimensions
        if dimensions > self._dimensions:
            raise ProviderRefusedError(
                f"dimensions {dimensions}: model '{self.model}' has {self._dimensions}"
            )
        encoder = await self._encoder_loaded()
        # The model's work is CPU-bound: off the event loop, like its loading.
        vectors, tokens = await asyncio.to_thread(encoder.encode, texts, dimensions)
        total = sum(tokens)
        return EmbeddingResponse(
            data=[Embedding(index=index, embedding=vector) for index, vector in enumerate(vectors)],
            model=self.model,
            usage=EmbeddingUsage(prompt_tokens=total, total_tokens=total),
        )

    async def _encoder_loaded(self) -> Encoder:
        if self._encoder is None:
            async with self._loading:
                if self._encoder is None:  # another request may have loaded it meanwhile
                    self._encoder = await asyncio.to_thread(self._load)
        return self._encoder
