"""The AI provider plugins: ``ai_demo`` (deterministic) and ``ai_local`` (wordllama in process).

In process: the implementations called directly, and each module's ``init`` registering its
plugin against an in-memory types registry, found by a ``PluginGateway`` of ``AI_PROVIDERS``.
The local model's own tests run when the ``ai-local`` extra is installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from pydantic import ValidationError

from hyperspot.modules.ai.contract import (
    AI_PROVIDERS,
    ChatCompletionChunk,
    ChatRequest,
    EmbeddingRequest,
    ProviderRefusedError,
    StreamingAiProvider,
)
from hyperspot.modules.ai_demo import module as demo_module
from hyperspot.modules.ai_demo.config import AiDemoConfig, DemoModel
from hyperspot.modules.ai_demo.domain.provider import DemoProvider, hashed_embedding
from hyperspot.modules.ai_local import module as local_module
from hyperspot.modules.ai_local.config import AiLocalConfig
from hyperspot.modules.ai_local.domain.provider import LocalEmbeddingProvider
from hyperspot.modules.ai_local.infra import wordllama_encoder
from hyperspot.modules.types_registry.contract import TypesRegistryApi
from hyperspot.platform.clients import ClientHub
from hyperspot.platform.config import PlatformSettings
from hyperspot.platform.gts import GtsEntity, match_pattern
from hyperspot.platform.module import Module, ModuleContext
from hyperspot.platform.plugins import PluginGateway, clients_of
from hyperspot.platform.security import SecurityContext

T = TypeVar("T")
USER = SecurityContext(subject="u", tenant_id="t1")
CAT = "The cat sits on the mat"
CAT_AGAIN = "A cat is sitting on a rug"
REVENUE = "Quarterly revenue grew by ten percent"
MODEL_INSTALLED = importlib.util.find_spec("wordllama") is not None
needs_model = pytest.mark.skipif(
    not MODEL_INSTALLED, reason="the ai-local extra (wordllama) is not installed"
)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def chat_request(text: str = "Hello there  world", **options: Any) -> ChatRequest:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]
    return ChatRequest.model_validate({"model": "demo-chat", "messages": messages, **options})


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (norm(a) * norm(b))


def norm(vector: Sequence[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def embed_three(provider: Any, model: str) -> list[list[float]]:
    request = EmbeddingRequest(model=model, input=[CAT, CAT_AGAIN, REVENUE])
    response = run(provider.embed(USER, request))
    return [item.embedding for item in response.data]


# --- ai_demo -------------------------------------------------------------------------------------


@pytest.fixture
def demo() -> DemoProvider:
    return demo_module.provider_for(AiDemoConfig())


def test_demo_serves_its_configured_models(demo: DemoProvider) -> None:
    assert [(m.id, m.kind) for m in run(demo.models(USER))] == [
        ("demo-chat", "chat"),
        ("demo-embed", "embedding"),
    ]
    custom = demo_module.provider_for(
        AiDemoConfig(models=(DemoModel(id="echo", kind="chat"),), dimensions=16)
    )
    assert [m.id for m in run(custom.models(USER))] == ["echo"]
    with pytest.raises(ValidationError, match="model ids must be unique"):
        AiDemoConfig(models=(DemoModel(id="a", kind="chat"), DemoModel(id="a", kind="embedding")))
    with pytest.raises(ValidationError, match="Extra inputs"):
        AiDemoConfig.model_validate({"latency": 5})


def test_demo_chat_echoes_the_last_user_message_with_word_tokens(demo: DemoProvider) -> None:
    request = ChatRequest.model_validate(
        {
            "model": "demo-chat",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "first answer"},
                {"role": "user", "content": "Hello there  world"},
            ],
        }
    )
    completion = run(demo.chat(USER, request))
    choice = completion.choices[0]
    assert (choice.message.content, choice.finish_reason) == ("You said: Hello there world", "stop")
    # Prompt: every message's words (2 + 2 + 2 + 3); completion: the reply's 5 words.
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (9, 5, 14)
    assert completion.model == "demo-chat"
    assert completion.id.startswith("chatcmpl-demo-")

    again = run(demo.chat(USER, request))
    assert (again.id, again.choices, again.usage) == (completion.id, completion.choices, usage)
    other = run(demo.chat(USER, chat_request("something else")))
    assert other.id != completion.id
    silent = run(demo.chat(USER, chat_request("   ")))
    assert silent.choices[0].message.content == "You said nothing."


def test_demo_chat_honours_the_token_limit_and_stop_sequences(demo: DemoProvider) -> None:
    cut = run(demo.chat(USER, chat_request(max_tokens=3)))
    assert (cut.choices[0].message.content, cut.choices[0].finish_reason) == (
        "You said: Hello",
        "length",
    )
    assert cut.usage.completion_tokens == 3
    # Under either name, the smaller limit applies.
    both = run(demo.chat(USER, chat_request(max_tokens=4, max_completion_tokens=2)))
    assert both.choices[0].message.content == "You said:"
    roomy = run(demo.chat(USER, chat_request(max_tokens=5)))
    assert roomy.choices[0].finish_reason == "stop"

    stopped = run(demo.chat(USER, chat_request(stop=["world", "zzz"])))
    assert (stopped.choices[0].message.content, stopped.choices[0].finish_reason) == (
        "You said: Hello there",
        "stop",
    )
    assert run(demo.chat(USER, chat_request(stop="there"))).choices[0].message.content == (
        "You said: Hello"
    )


async def collect(stream: AsyncIterator[ChatCompletionChunk]) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in stream]


def test_demo_streams_one_word_per_chunk(demo: DemoProvider) -> None:
    assert isinstance(demo, StreamingAiProvider)
    request = chat_request(stream=True, stream_options={"include_usage": True})
    chunks = run(collect(demo.chat_stream(USER, request)))
    plain = run(demo.chat(USER, request))
    deltas = [chunk.choices[0].delta for chunk in chunks]
    assert [delta.content for delta in deltas] == [
        "You",
        " said:",
        " Hello",
        " there",
        " world",
        None,
    ]
    assert "".join(d.content or "" for d in deltas) == plain.choices[0].message.content
    assert [delta.role for delta in deltas] == ["assistant"] + [None] * 5
    assert [chunk.choices[0].finish_reason for chunk in chunks] == [None] * 5 + ["stop"]
    assert [chunk.usage for chunk in chunks] == [None] * 5 + [plain.usage]
    assert {chunk.id for chunk in chunks} == {plain.id}

    # Without include_usage, no usage; a token limit ends the stream with "length".
    short = run(collect(demo.chat_stream(USER, chat_request(max_tokens=2))))
    assert [chunk.choices[0].delta.content for chunk in short] == ["You", " said:", None]
    assert short[-1].choices[0].finish_reason == "length"
    assert all(chunk.usage is None for chunk in short)

    # A reply stopped before its first word still announces the role, then finishes.
    empty = run(collect(demo.chat_stream(USER, chat_request(stop="You"))))
    assert [(c.choices[0].delta.role, c.choices[0].finish_reason) for c in empty] == [
        ("assistant", None),
        (None, "stop"),
    ]


def test_demo_latency_delays_answers() -> None:
    slow = demo_module.provider_for(AiDemoConfig(latency_ms=40))
    started = time.monotonic()
    run(slow.chat(USER, chat_request()))
    assert time.monotonic() - started >= 0.04


def test_demo_embeddings_are_unit_vectors_closer_for_similar_sentences(
    demo: DemoProvider,
) -> None:
    cat, cat_again, revenue = embed_three(demo, "demo-embed")
    assert len(cat) == 256
    assert all(abs(norm(vector) - 1) < 1e-9 for vector in (cat, cat_again, revenue))
    assert cosine(cat, cat_again) > cosine(cat, revenue) + 0.1
    assert cosine(cat, cat_again) > cosine(cat_again, revenue) + 0.1
    assert embed_three(demo, "demo-embed") == [cat, cat_again, revenue]
    # Case and punctuation do not matter; an empty text is a zero vector.
    assert hashed_embedding("the CAT, sits!", 64) == hashed_embedding("The cat sits", 64)
    assert hashed_embedding("", 8) == [0.0] * 8

    request = EmbeddingRequest(model="demo-embed", input="one two three", dimensions=32)
    response = run(demo.embed(USER, request))
    assert len(response.data[0].embedding) == 32
    assert (response.usage.prompt_tokens, response.usage.total_tokens) == (3, 3)
    assert response.model == "demo-embed"


def test_demo_embeddings_are_the_same_in_every_process() -> None:
    # Python's hash() is salted per process; the feature hash must not be.
    code = (
        "from hyperspot.modules.ai_demo.domain.provider import hashed_embedding; "
        f"print(repr(hashed_embedding({CAT!r}, 16)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    output = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == repr(hashed_embedding(CAT, 16))


def test_demo_refuses_unknown_models_and_the_wrong_kind(demo: DemoProvider) -> None:
    with pytest.raises(ProviderRefusedError, match=r"model 'gpt-9' is not served by the demo"):
        run(
            demo.chat(
                USER, ChatRequest.model_validate({**chat_request().model_dump(), "model": "gpt-9"})
            )
        )
    with pytest.raises(ProviderRefusedError, match="'demo-embed' serves embeddings, not chat"):
        run(demo.chat(USER, chat_request().model_copy(update={"model": "demo-embed"})))
    with pytest.raises(ProviderRefusedError, match="'demo-embed' serves embeddings, not chat"):
        run(
            collect(
                demo.chat_stream(USER, chat_request().model_copy(update={"model": "demo-embed"}))
            )
        )
    with pytest.raises(
        ProviderRefusedError, match="'demo-chat' serves chat completions, not embeddings"
    ):
        run(demo.embed(USER, EmbeddingRequest(model="demo-chat", input="hi")))
    with pytest.raises(ProviderRefusedError, match="not served"):
        run(demo.embed(USER, EmbeddingRequest(model="nope", input="hi")))


# --- ai_local: the provider around any encoder ---------------------------------------------------


class CountingEncoder:
    """Stands in for the model where the provider's own logic is under test: a vector per text."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], int]] = []

    def encode(self, texts: list[str], dimensions: int) -> tuple[list[list[float]], list[int]]:
        self.calls.append((texts, dimensions))
        return [[1.0] + [0.0] * (dimensions - 1) for _ in texts], [len(t) for t in texts]


class SlowLoader:
    def __init__(self, fail_first: bool = False) -> None:
        self.loads = 0
        self.fail_first = fail_first
        self.encoder = CountingEncoder()
        self._lock = threading.Lock()

    def __call__(self) -> CountingEncoder:
        with self._lock:
            self.loads += 1
            loads = self.loads
        time.sleep(0.05)  # long enough for concurrent first requests to overlap
        if self.fail_first and loads == 1:
            raise OSError("weights unreadable")
        return self.encoder


def local_with(loader: SlowLoader, max_inputs: int = 4) -> LocalEmbeddingProvider:
    return LocalEmbeddingProvider("local-embed", loader, dimensions=128, max_inputs=max_inputs)


def test_local_loads_its_model_once_on_the_first_embedding() -> None:
    loader = SlowLoader()
    provider = local_with(loader)
    assert [(m.id, m.kind) for m in run(provider.models(USER))] == [("local-embed", "embedding")]
    assert (provider.loaded, loader.loads) == (False, 0)

    async def concurrently() -> list[Any]:
        requests = [EmbeddingRequest(model="local-embed", input=f"text {i}") for i in range(5)]
        return await asyncio.gather(*(provider.embed(USER, r) for r in requests))

    responses = run(concurrently())
    assert (provider.loaded, loader.loads) == (True, 1)
    assert [r.usage.prompt_tokens for r in responses] == [6] * 5
    assert len(responses[0].data[0].embedding) == 128
    run(provider.embed(USER, EmbeddingRequest(model="local-embed", input="x", dimensions=64)))
    assert loader.loads == 1
    assert loader.encoder.calls[-1] == (["x"], 64)


def test_local_load_failure_is_a_failure_and_is_retried() -> None:
    loader = SlowLoader(fail_first=True)
    provider = local_with(loader)
    request = EmbeddingRequest(model="local-embed", input="x")
    # Not a ProviderRefusedError: the gateway tries the model's next provider.
    with pytest.raises(OSError, match="weights unreadable"):
        run(provider.embed(USER, request))
    assert not provider.loaded
    assert run(provider.embed(USER, request)).data[0].index == 0
    assert loader.loads == 2


def test_local_refusals() -> None:
    provider = local_with(SlowLoader(), max_inputs=2)
    with pytest.raises(ProviderRefusedError, match="serves embeddings only"):
        run(provider.chat(USER, chat_request().model_copy(update={"model": "local-embed"})))
    with pytest.raises(ProviderRefusedError, match="'other' is not served by the local provider"):
        run(provider.embed(USER, EmbeddingRequest(model="other", input="x")))
    with pytest.raises(ProviderRefusedError, match=r"3 inputs: .* at most 2"):
        run(provider.embed(USER, EmbeddingRequest(model="local-embed", input=["a", "b", "c"])))
    with pytest.raises(ProviderRefusedError, match="dimensions 129: model 'local-embed' has 128"):
        run(provider.embed(USER, EmbeddingRequest(model="local-embed", input="x", dimensions=129)))
    assert not provider.loaded  # refusals never load the model
    with pytest.raises(ValidationError):
        AiLocalConfig.model_validate({"dimensions": 100})


def test_importing_ai_local_imports_neither_wordllama_nor_numpy() -> None:
    code = (
        "import sys, hyperspot.modules.ai_local.module as m; "
        "m.provider_for(m.AiLocalConfig()); "
        "print(sorted({'wordllama', 'numpy', 'tokenizers'} & set(sys.modules)))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


# --- ai_local: the real model (wordllama's wheel) ------------------------------------------------


@pytest.fixture(scope="module")
def local() -> LocalEmbeddingProvider:
    return local_module.provider_for(AiLocalConfig())


@needs_model
def test_local_model_embeds_similar_sentences_closer(local: LocalEmbeddingProvider) -> None:
    cat, cat_again, revenue = embed_three(local, "local-embed")
    assert local.loaded
    assert len(cat) == 256
    assert all(abs(norm(vector) - 1) < 1e-5 for vector in (cat, cat_again, revenue))
    assert cosine(cat, cat_again) > 0.5
    assert cosine(cat, revenue) < 0.2
    assert cosine(cat_again, revenue) < 0.2
    assert embed_three(local, "local-embed") == [cat, cat_again, revenue]


@needs_model
def test_local_model_counts_tokenizer_tokens_and_truncates(local: LocalEmbeddingProvider) -> None:
    request = EmbeddingRequest(model="local-embed", input=["hello world", "", CAT], dimensions=64)
    response = run(local.embed(USER, request))
    hello, empty, cat = (item.embedding for item in response.data)
    assert (len(hello), len(cat)) == (64, 64)
    assert abs(norm(cat) - 1) < 1e-5
    assert empty == [0.0] * 64  # nothing to embed: a zero vector, not NaNs
    # The Llama 2 tokenizer: "hello world" is 2 tokens; the sentence more than its 6 words.
    per_text = run(local.embed(USER, EmbeddingRequest(model="local-embed", input=CAT)))
    assert per_text.usage.prompt_tokens > 6
    assert response.usage.prompt_tokens == 2 + 0 + per_text.usage.prompt_tokens
    # The leading 64 components of the full vector, renormalised.
    full = per_text.data[0].embedding
    assert cosine(full[:64], cat) > 0.99999


@needs_model
def test_local_model_loads_offline_and_leaves_logging_alone(tmp_path: Any) -> None:
    # No network (any connection attempt fails), no cache (an empty HOME), a fresh process.
    code = """
import asyncio, logging, socket
def refuse(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
from hyperspot.modules.ai.contract import EmbeddingRequest
from hyperspot.modules.ai_local.config import AiLocalConfig
from hyperspot.modules.ai_local.module import provider_for
from hyperspot.platform.security import SecurityContext
provider = provider_for(AiLocalConfig(dimensions=128))
request = EmbeddingRequest(model="local-embed", input="offline")
response = asyncio.run(provider.embed(SecurityContext.for_system("t"), request))
print(len(response.data[0].embedding), logging.getLogger().handlers, logging.getLogger().level)
"""
    env = {**os.environ, "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["128", "[]", str(logging.WARNING)]
    assert not list(tmp_path.iterdir())  # nothing cached or downloaded


# --- the modules' init: registration with the gateway's slot -----------------------------------


class MemoryRegistry:
    """The types registry's two methods plugins use, over a dict."""

    def __init__(self) -> None:
        self.entities: dict[str, dict[str, Any]] = {}

    async def register(
        self, ctx: SecurityContext, entities: list[dict[str, Any]], validate: bool = True
    ) -> list[str]:
        parsed = [GtsEntity.from_content(content) for content in entities]
        for entity in parsed:
            self.entities[entity.id] = dict(entity.content)
        return [entity.id for entity in parsed]

    async def list(self, ctx: SecurityContext, pattern: str) -> list[dict[str, Any]]:
        return [c for gts_id, c in self.entities.items() if match_pattern(pattern, gts_id)]


def init_module(declared: Module[Any], hub: ClientHub) -> None:
    context = ModuleContext(declared, declared.config_model(), hub, PlatformSettings())
    assert declared.init is not None
    run(cast(Coroutine[Any, Any, None], declared.init(context)))


def providers_world() -> tuple[MemoryRegistry, ClientHub]:
    registry, hub = MemoryRegistry(), ClientHub()
    hub.register(TypesRegistryApi, cast(TypesRegistryApi, registry), owner="types_registry")
    return registry, hub


def test_modules_register_their_plugins_with_the_gateway_slot() -> None:
    registry, hub = providers_world()
    init_module(demo_module.module, hub)
    init_module(local_module.module, hub)
    gateway = PluginGateway(AI_PROVIDERS, "ai")
    found = run(gateway.discover(registry, hub))
    expected = [("demo", "ai_demo")] + ([("local", "ai_local")] if MODEL_INSTALLED else [])
    assert sorted((p.name, p.module) for p in found) == expected
    demo_id = AI_PROVIDERS.type_id + demo_module.PLUGIN_INSTANCE
    assert (
        demo_id
        == "gts.hx.core.plugins.plugin.v1~hx.core.ai.provider.v1.0~hx.core.ai_demo.plugin.v1"
    )
    provider = clients_of(hub).get(AI_PROVIDERS.contract, demo_id)
    assert provider is not None
    answer = run(provider.chat(USER, chat_request("hi")))
    assert answer.choices[0].message.content == "You said: hi"


def test_ai_local_without_its_extra_registers_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_find_spec = importlib.util.find_spec

    def without_wordllama(name: str, package: str | None = None) -> Any:
        return None if name == "wordllama" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", without_wordllama)
    registry, hub = providers_world()
    with caplog.at_level(logging.INFO, logger="hyperspot.modules.ai_local"):
        init_module(local_module.module, hub)
    assert registry.entities == {}
    lines = [r.getMessage() for r in caplog.records if r.name == "hyperspot.modules.ai_local"]
    assert len(lines) == 1
    assert "pip install 'hyperspot[ai-local]'" in lines[0]


@needs_model
def test_local_model_edge_cases(
    local: LocalEmbeddingProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    nothing = run(local.embed(USER, EmbeddingRequest(model="local-embed", input=[])))
    assert (nothing.data, nothing.usage.total_tokens) == ([], 0)
    monkeypatch.setattr(wordllama_encoder, "WEIGHTS_FILE", Path("weights", "gone.safetensors"))
    with pytest.raises(FileNotFoundError, match=r"model files are missing: .*gone\.safetensors"):
        wordllama_encoder.load_wordllama(64, 8)
