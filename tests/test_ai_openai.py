"""The OpenAI-compatible provider (module ai_openai) against the fake OpenAI server, in-process.

The fake (hyperspot/sandbox/fake_openai.py) runs in a thread, one per test module; each test
scripts its failures and reads what it received.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from email.utils import formatdate
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from hyperspot.modules.ai.contract import (
    AI_PROVIDERS,
    AiProvider,
    ChatCompletionChunk,
    ChatMessage,
    ChatRequest,
    EmbeddingRequest,
    ProviderRefusedError,
    StreamingAiProvider,
)
from hyperspot.modules.ai_openai import module as ai_openai
from hyperspot.modules.ai_openai.config import OpenAiConfig
from hyperspot.modules.ai_openai.infra.client import (
    MissingApiKeyError,
    OpenAiProvider,
    UpstreamError,
    _error_message,
    _lenient_chunk,
    _lenient_completion,
    _parse,
    guess_kind,
    read_api_key,
    retry_after_s,
)
from hyperspot.modules.types_registry.contract import TypesRegistryApi
from hyperspot.platform.clients import ClientHub
from hyperspot.platform.config import PlatformSettings
from hyperspot.platform.gts import match_pattern
from hyperspot.platform.module import ModuleContext
from hyperspot.platform.plugins import clients_of
from hyperspot.platform.security import SecurityContext
from hyperspot.sandbox.fake_openai import (
    CHAT_PATH,
    Fault,
    RunningFake,
    embedding_of,
    main,
    running_fake_openai,
)

KEY = "sk-test-0123456789-secret-key"
USER = SecurityContext(subject="u1", tenant_id="t1")
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@pytest.fixture(scope="module")
def fake_server() -> Iterator[RunningFake]:
    with running_fake_openai(api_key=KEY, models=("fake-chat", "fake-embed", "bad id!")) as fake:
        yield fake


@pytest.fixture
def fake(fake_server: RunningFake) -> RunningFake:
    control = fake_server.control
    control.reset()
    control.set_latency(0, 0)
    control.api_key = KEY
    return fake_server


def config(fake: RunningFake, **overrides: Any) -> OpenAiConfig:
    values: dict[str, Any] = {"base_url": fake.base_url, "backoff_s": 0.01, **overrides}
    return OpenAiConfig.model_validate(values)


def provider(fake: RunningFake, **overrides: Any) -> OpenAiProvider:
    return OpenAiProvider(config(fake, **overrides), SecretStr(KEY))


def chat_request(text: str = "hello big world", **fields: Any) -> ChatRequest:
    messages = [
        ChatMessage(role="system", content="be brief"),
        ChatMessage(role="user", content=text),
    ]
    return ChatRequest(model="fake-chat", messages=messages, **fields)


async def collect(chunks: AsyncIterator[ChatCompletionChunk]) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in chunks]


# --- answers ----------------------------------------------------------------------------------


def test_chat_answers_with_usage_and_sends_the_key_upstream(fake: RunningFake) -> None:
    async def scenario() -> None:
        client = provider(fake)
        try:
            answer = await client.chat(USER, chat_request(max_tokens=50, temperature=0.5))
            short = await client.chat(USER, chat_request(max_tokens=2))
        finally:
            await client.close()
        assert answer.choices[0].message.content == "Echo: hello big world"
        assert answer.choices[0].finish_reason == "stop"
        # Prompt: every message's words (2 + 3); completion: the reply's words.
        assert answer.usage.model_dump() == {
            "prompt_tokens": 5,
            "completion_tokens": 4,
            "total_tokens": 9,
        }
        assert (short.choices[0].message.content, short.choices[0].finish_reason) == (
            "Echo: hello",
            "length",
        )

    run(scenario())
    sent = fake.control.requests
    assert [r.path for r in sent] == [CHAT_PATH, CHAT_PATH]
    assert all(r.authorization == f"Bearer {KEY}" for r in sent)
    # Only what the client set travels; the platform's stream flag is off for chat.
    assert sent[0].body == {
        "model": "fake-chat",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello big world"},
        ],
        "max_tokens": 50,
        "temperature": 0.5,
        "stream": False,
    }


def test_model_map_publishes_an_upstream_model_under_another_name(fake: RunningFake) -> None:
    async def scenario() -> None:
        client = provider(fake, model_map={"house-chat": "fake-chat", "house-embed": "fake-embed"})
        try:
            request = chat_request()
            answer = await client.chat(USER, request.model_copy(update={"model": "house-chat"}))
            chunks = await collect(
                client.chat_stream(USER, request.model_copy(update={"model": "house-chat"}))
            )
            vectors = await client.embed(USER, EmbeddingRequest(model="house-embed", input="a"))
            listed = await client.models(USER)
        finally:
            await client.close()
        assert answer.model == "house-chat"
        assert {chunk.model for chunk in chunks} == {"house-chat"}
        assert vectors.model == "house-embed"
        assert [(m.id, m.kind) for m in listed] == [
            ("house-chat", "chat"),
            ("house-embed", "embedding"),
        ]

    run(scenario())
    assert {r.body["model"] for r in fake.control.requests if r.body} == {
        "fake-chat",
        "fake-embed",
    }


def test_streaming_one_chunk_per_token_with_usage(fake: RunningFake) -> None:
    client = provider(fake)
    assert isinstance(client, StreamingAiProvider)

    async def scenario() -> list[ChatCompletionChunk]:
        try:
            return await collect(client.chat_stream(USER, chat_request("one two")))
        finally:
            await client.close()

    chunks = run(scenario())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: one two"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    # The usage chunk comes last, with no choices: asked for upstream whatever the client asked.
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == {
        "prompt_tokens": 4,
        "completion_tokens": 3,
        "total_tokens": 7,
    }
    (sent,) = fake.control.requests
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}


def test_embeddings_are_the_upstreams_vectors(fake: RunningFake) -> None:
    async def scenario() -> None:
        client = provider(fake)
        try:
            answer = await client.embed(
                USER, EmbeddingRequest(model="fake-embed", input=["a cat", "a dog"], dimensions=4)
            )
        finally:
            await client.close()
        assert [e.embedding for e in answer.data] == [
            embedding_of("a cat", 4),
            embedding_of("a dog", 4),
        ]
        assert answer.usage.prompt_tokens == 4

    run(scenario())


def test_models_from_config_ask_nothing_upstream(fake: RunningFake) -> None:
    client = provider(
        fake, models=[{"id": "gpt-x", "kind": "chat"}, {"id": "emb", "kind": "embedding"}]
    )

    async def scenario() -> None:
        try:
            await client.start()
            listed = await client.models(USER)
        finally:
            await client.close()
        assert [(m.id, m.kind) for m in listed] == [("gpt-x", "chat"), ("emb", "embedding")]

    run(scenario())
    assert fake.control.count() == 0


def test_models_from_upstream_are_listed_once_and_refreshed(fake: RunningFake) -> None:
    async def scenario(refresh_s: float) -> list[tuple[str, str]]:
        client = provider(fake, models_refresh_s=refresh_s)
        try:
            await client.start()  # lists the models at start
            first = await client.models(USER)
            await asyncio.sleep(0.06)
            second = await client.models(USER)
        finally:
            await client.close()
        assert first == second
        return [(m.id, m.kind) for m in first]

    # An id the gateway could not route ("bad id!") is left out.
    assert run(scenario(300)) == [("fake-chat", "chat"), ("fake-embed", "embedding")]
    assert fake.control.count("/v1/models") == 1
    fake.control.reset()
    run(scenario(0.05))
    assert fake.control.count("/v1/models") == 2


def test_a_failed_model_listing_at_start_does_not_stop_the_server(
    fake: RunningFake, caplog: pytest.LogCaptureFixture
) -> None:
    fake.control.fail_next(3, 503)

    async def scenario() -> None:
        client = provider(fake, retries=1, models_refresh_s=0.01)
        try:
            await client.start()  # 2 attempts fail: a warning, no exception
            listed = await client.models(USER)  # the next call asks again
            fake.control.fail_next(2, 503)
            await asyncio.sleep(0.02)
            # Stale beats nothing when the upstream fails later.
            assert await client.models(USER) == listed
        finally:
            await client.close()
        assert [m.id for m in listed] == ["fake-chat", "fake-embed"]

    with caplog.at_level(logging.WARNING):
        run(scenario())
    assert "cannot list the upstream's models yet" in caplog.text
    assert "keeping the last model list" in caplog.text


def test_models_fail_without_any_list(fake: RunningFake) -> None:
    fake.control.fail_next(1, 503)

    async def scenario() -> None:
        client = provider(fake, retries=0)
        try:
            with pytest.raises(UpstreamError, match="answered 503"):
                await client.models(USER)
        finally:
            await client.close()

    run(scenario())


# --- retries and failures ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429, 408])
def test_retried_statuses_then_success(fake: RunningFake, status: int) -> None:
    fake.control.fail_next(2, status)

    async def scenario() -> None:
        client = provider(fake, retries=2)
        try:
            answer = await client.chat(USER, chat_request())
        finally:
            await client.close()
        assert answer.choices[0].message.content == "Echo: hello big world"

    run(scenario())
    assert fake.control.count(CHAT_PATH) == 3


def test_retry_after_is_honoured(fake: RunningFake) -> None:
    fake.control.fail_next(1, 429, retry_after=0.3)

    async def scenario() -> float:
        client = provider(fake, backoff_s=0)
        try:
            started = time.monotonic()
            await client.chat(USER, chat_request())
            return time.monotonic() - started
        finally:
            await client.close()

    assert run(scenario()) >= 0.3
    first, second = fake.control.requests
    assert second.at - first.at >= 0.28


def test_retry_after_beyond_the_cap_fails_at_once(fake: RunningFake) -> None:
    fake.control.fail_next(1, 429, retry_after=60)

    async def scenario() -> None:
        client = provider(fake, retry_after_max_s=1)
        try:
            with pytest.raises(UpstreamError, match=r"asks to retry after 60 s"):
                await client.chat(USER, chat_request())
        finally:
            await client.close()

    run(scenario())
    assert fake.control.count() == 1


def test_retries_exhausted_is_a_failure(fake: RunningFake) -> None:
    fake.control.fail_next(5, 502)

    async def scenario() -> None:
        client = provider(fake, retries=2)
        try:
            with pytest.raises(UpstreamError, match=r"answered 502 \(3 attempts\)") as raised:
                await client.embed(USER, EmbeddingRequest(model="fake-embed", input="x"))
        finally:
            await client.close()
        assert not isinstance(raised.value, ProviderRefusedError)

    run(scenario())
    assert fake.control.count() == 3


def test_connection_refused_is_retried_then_fails() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    # Nothing listens on the port any more: connections are refused.
    gone = OpenAiConfig(base_url=f"http://127.0.0.1:{port}/v1", retries=1, backoff_s=0.01)

    async def scenario() -> None:
        client = OpenAiProvider(gone, SecretStr(KEY))
        try:
            with pytest.raises(UpstreamError, match=r"ConnectError.*\(2 attempts\)"):
                await client.chat(USER, chat_request())
        finally:
            await client.close()

    run(scenario())


@pytest.mark.parametrize(
    ("status", "message"), [(400, "Invalid 'temperature'"), (404, None), (422, "Unprocessable")]
)
def test_request_errors_are_refusals_without_retry(
    fake: RunningFake, status: int, message: str | None
) -> None:
    if message is not None:
        fake.control.fail_next(1, status, message=message)

    async def scenario() -> None:
        client = provider(fake)
        request = chat_request() if message else chat_request().model_copy(update={"model": "nope"})
        try:
            with pytest.raises(ProviderRefusedError) as raised:
                await client.chat(USER, request)
        finally:
            await client.close()
        expected = message or "The model `nope` does not exist"
        assert f"({status}): {expected}" in str(raised.value)

    run(scenario())
    assert fake.control.count() == 1


def test_a_refusal_of_the_credentials_is_a_failure_naming_the_variable(
    fake: RunningFake,
) -> None:
    fake.control.api_key = "sk-another-key"

    async def scenario() -> None:
        client = provider(fake, api_key_env="MY_LLM_KEY")
        try:
            with pytest.raises(UpstreamError) as raised:
                await client.chat(USER, chat_request())
        finally:
            await client.close()
        assert "refused the credentials (401" in str(raised.value)
        assert "$MY_LLM_KEY" in str(raised.value)
        assert KEY not in str(raised.value)

    run(scenario())
    assert fake.control.count() == 1  # not retried


def test_a_hung_upstream_fails_within_the_timeout(fake: RunningFake) -> None:
    fake.control.hang_next(2, seconds=5)

    async def scenario() -> float:
        client = provider(fake, timeout_s=0.3, retries=1)
        started = time.monotonic()
        try:
            with pytest.raises(UpstreamError, match=r"ReadTimeout.*\(2 attempts\)"):
                await client.chat(USER, chat_request())
        finally:
            await client.close()
        return time.monotonic() - started

    elapsed = run(scenario())
    assert 0.6 <= elapsed < 1.5  # two attempts of 0.3 s and a short backoff


def test_a_stream_is_retried_before_its_first_chunk(fake: RunningFake) -> None:
    fake.control.fail_next(1, 500)

    async def scenario() -> list[ChatCompletionChunk]:
        client = provider(fake)
        try:
            return await collect(client.chat_stream(USER, chat_request("x")))
        finally:
            await client.close()

    chunks = run(scenario())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: x"
    assert fake.control.count(CHAT_PATH) == 2


def test_a_stream_refused_before_its_first_chunk(fake: RunningFake) -> None:
    fake.control.fail_next(1, 400, message="bad stop sequence")

    async def scenario() -> None:
        client = provider(fake)
        try:
            with pytest.raises(ProviderRefusedError, match="bad stop sequence"):
                await collect(client.chat_stream(USER, chat_request()))
        finally:
            await client.close()

    run(scenario())


@pytest.mark.parametrize(("drop", "failure"), [(False, "ended with an error"), (True, "broke off")])
def test_a_stream_broken_mid_way_fails_after_its_chunks(
    fake: RunningFake, drop: bool, failure: str
) -> None:
    fake.control.break_stream_next(after_chunks=2, drop=drop)
    received: list[ChatCompletionChunk] = []

    async def consume(client: OpenAiProvider) -> None:
        async for chunk in client.chat_stream(USER, chat_request("a b c d")):
            received.append(chunk)

    async def scenario() -> None:
        client = provider(fake)
        try:
            with pytest.raises(UpstreamError, match=failure):
                await consume(client)
        finally:
            await client.close()

    run(scenario())
    assert len(received) == 2
    assert fake.control.count(CHAT_PATH) == 1  # not retried: chunks were already passed on


def test_a_wrong_base_url_is_a_failure_not_a_refusal(fake: RunningFake) -> None:
    fake.control.fail_next(1, 302)
    root = fake.base_url.removesuffix("/v1")

    async def scenario() -> None:
        client = provider(fake)
        unversioned = OpenAiProvider(OpenAiConfig(base_url=root), SecretStr(KEY))
        try:
            with pytest.raises(UpstreamError, match=r"answered 302 \(a redirect, not followed\)"):
                await client.chat(USER, chat_request())
            # The web server's 404 page, not an API's error: the URL lacks /v1.
            with pytest.raises(UpstreamError, match=r"answered 404 .*with its version path"):
                await unversioned.chat(USER, chat_request())
        finally:
            await client.close()
            await unversioned.close()

    run(scenario())
    assert fake.control.count(CHAT_PATH) == 1  # not retried (the fake records routed paths only)


def test_a_refused_model_listing_is_a_failure(fake: RunningFake) -> None:
    fake.control.fail_next(1, 404, message="listing is not supported", path="/v1/models")

    async def scenario() -> None:
        client = provider(fake)
        try:
            with pytest.raises(UpstreamError, match=r"GET /models: .*\(404\): listing is not"):
                await client.models(USER)
        finally:
            await client.close()

    run(scenario())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"message": "bad", "type": "invalid_request_error"}}', "bad"),
        (b'{"error": "model not found"}', "model not found"),  # Ollama
        (b'{"object": "error", "message": "too long", "code": 400}', "too long"),  # vLLM
        (b'{"detail": [{"loc": ["body"], "msg": "x"}]}', '[{"loc": ["body"], "msg": "x"}]'),
        (b'{"title": "404 Not Found"}', None),
        (b"<html>Not Found</html>", None),
        (b"[1]", None),
    ],
)
def test_error_messages_of_compatible_servers(body: bytes, message: str | None) -> None:
    assert _error_message(body) == message


# --- the key stays secret ----------------------------------------------------------------------


def test_the_key_is_in_no_log_line_and_no_error(
    fake: RunningFake, caplog: pytest.LogCaptureFixture
) -> None:
    # An upstream echoing the key in its error text (OpenAI echoes part of a wrong one).
    fake.control.fail_next(1, 400, message=f"Incorrect API key provided: {KEY}.")
    fake.control.fail_next(1, 500, message=f"internal error for {KEY}")
    errors: list[str] = []

    async def scenario() -> None:
        client = provider(fake, retries=0)
        try:
            for _ in range(2):
                try:
                    await client.chat(USER, chat_request())
                except (ProviderRefusedError, UpstreamError) as error:
                    errors.append(str(error))
            await client.chat(USER, chat_request())
            await collect(client.chat_stream(USER, chat_request()))
            await client.embed(USER, EmbeddingRequest(model="fake-embed", input="x"))
            await client.models(USER)
        finally:
            await client.close()

    with caplog.at_level(logging.DEBUG):
        for name in ("httpx", "httpcore", "hyperspot"):
            logging.getLogger(name).setLevel(logging.DEBUG)
        try:
            run(scenario())
        finally:
            for name in ("httpx", "httpcore", "hyperspot"):
                logging.getLogger(name).setLevel(logging.NOTSET)
    # httpx's own loggers were active and did log the calls...
    assert any(record.name.startswith("httpcore") for record in caplog.records)
    assert any(record.name == "httpx" for record in caplog.records)
    # ...but no line holds the key, nor any error.
    assert all(KEY not in record.getMessage() for record in caplog.records)
    assert KEY not in caplog.text
    assert errors[0].endswith("Incorrect API key provided: ***.")
    assert KEY not in errors[1]
    # It did reach the upstream, as a Bearer token.
    assert {r.authorization for r in fake.control.requests} == {f"Bearer {KEY}"}
    assert repr(provider(fake)._key) == "SecretStr('**********')"


def test_a_missing_key_variable_is_named_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingApiKeyError, match=r"environment variable MY_KEY \(modules"):
        read_api_key({"OTHER": "x"}, "MY_KEY")
    with pytest.raises(MissingApiKeyError, match="MY_KEY"):
        read_api_key({"MY_KEY": "  "}, "MY_KEY")
    assert read_api_key({"MY_KEY": " k "}, "MY_KEY").get_secret_value() == "k"


# --- the module --------------------------------------------------------------------------------


class MemoryRegistry:
    def __init__(self) -> None:
        self.entities: dict[str, dict[str, Any]] = {}

    async def register(
        self, ctx: SecurityContext, entities: list[dict[str, Any]], validate: bool = True
    ) -> list[str]:
        for entity in entities:
            self.entities[str(entity.get("$id") or entity["id"])] = entity
        return list(self.entities)

    async def list(self, ctx: SecurityContext, pattern: str) -> list[dict[str, Any]]:
        return [e for gts_id, e in self.entities.items() if match_pattern(pattern, gts_id)]


def module_context(section: dict[str, Any]) -> tuple[ModuleContext[OpenAiConfig], MemoryRegistry]:
    hub, registry = ClientHub(), MemoryRegistry()
    hub.register(TypesRegistryApi, registry, owner="types_registry")
    settings = PlatformSettings()
    context = ModuleContext(ai_openai.module, OpenAiConfig.model_validate(section), hub, settings)
    return context, registry


def registered(context: ModuleContext[OpenAiConfig]) -> AiProvider | None:
    gts_id = AI_PROVIDERS.type_id + ai_openai.INSTANCE
    return clients_of(context.clients).get(AiProvider, gts_id)


def test_without_base_url_the_module_registers_nothing(caplog: pytest.LogCaptureFixture) -> None:
    context, registry = module_context({})

    async def lifecycle() -> None:
        await ai_openai.init(context)
        await ai_openai.start(context)
        await ai_openai.stop(context)

    with caplog.at_level(logging.INFO, logger="hyperspot.modules.ai_openai"):
        run(lifecycle())
    assert registered(context) is None
    assert registry.entities == {}
    (line,) = [r.getMessage() for r in caplog.records if r.name == "hyperspot.modules.ai_openai"]
    assert "modules.ai_openai.base_url" in line
    assert "$OPENAI_API_KEY" in line


def test_with_base_url_the_module_registers_the_openai_plugin(
    fake: RunningFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LLM_KEY", KEY)
    context, registry = module_context(
        {"base_url": fake.base_url, "api_key_env": "FAKE_LLM_KEY", "priority": 7}
    )

    async def lifecycle() -> None:
        await ai_openai.init(context)
        plugin = registered(context)
        assert isinstance(plugin, OpenAiProvider)
        await ai_openai.start(context)
        assert plugin._http is not None
        assert [m.id for m in await plugin.models(USER)] == ["fake-chat", "fake-embed"]
        await ai_openai.stop(context)
        assert plugin._http is None

    run(lifecycle())
    gts_id = AI_PROVIDERS.type_id + ai_openai.INSTANCE
    assert registry.entities[gts_id]["name"] == "openai"
    assert registry.entities[gts_id]["priority"] == 7
    assert KEY not in str(registry.entities)


def test_with_base_url_and_no_key_the_module_does_not_start(
    fake: RunningFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    context, _ = module_context({"base_url": fake.base_url})
    with pytest.raises(MissingApiKeyError, match="environment variable OPENAI_API_KEY"):
        run(ai_openai.init(context))
    assert registered(context) is None


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ({"base_url": "ftp://x"}, "http:// or https://"),
        ({"base_url": "https://user:pw@api.example.com/v1"}, "must not hold credentials"),
        ({"base_url": "https://api.example.com/v1?key=1"}, "must not hold credentials"),
        ({"api_key": "sk-in-a-file"}, "Extra inputs are not permitted"),
        ({"api_key_env": "not a name"}, "api_key_env"),
        ({"retries": -1}, "retries"),
    ],
)
def test_config_is_checked(section: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        OpenAiConfig.model_validate(section)


def test_config_normalises_the_base_url() -> None:
    assert OpenAiConfig(base_url=" https://api.example.com/v1/ ").base_url == (
        "https://api.example.com/v1"
    )
    assert OpenAiConfig(base_url="").base_url is None


# --- small pieces ------------------------------------------------------------------------------


def test_retry_after_values() -> None:
    assert retry_after_s("2.5") == 2.5
    assert retry_after_s(None) is None
    assert retry_after_s("soon") is None
    in_a_minute = retry_after_s(formatdate(time.time() + 60, usegmt=True))
    assert in_a_minute is not None
    assert 55 < in_a_minute <= 60
    assert retry_after_s(formatdate(time.time() - 60, usegmt=True)) == 0


def test_kinds_of_upstream_models() -> None:
    assert guess_kind("text-embedding-3-small") == "embedding"
    assert guess_kind("gpt-4o") == "chat"


def test_what_compatible_servers_vary_in_is_accepted() -> None:
    from hyperspot.modules.ai.contract import ChatCompletion

    completion = _parse(
        ChatCompletion,
        b'{"id": "c", "created": 1, "model": "m", "choices": [{"index": 0, "message": '
        b'{"role": "assistant", "content": null}, "finish_reason": "tool_calls"}], '
        b'"usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}}',
        _lenient_completion,
        "http://up",
    )
    assert (completion.choices[0].message.content, completion.choices[0].finish_reason) == (
        "",
        "stop",
    )
    chunk = _parse(
        ChatCompletionChunk,
        '{"id": "c", "created": 1, "model": "m", "choices": [{"index": 0, '
        '"delta": {"role": "tool"}, "finish_reason": "eos"}]}',
        _lenient_chunk,
        "http://up",
    )
    assert (chunk.choices[0].delta.role, chunk.choices[0].finish_reason) == (None, "stop")
    with pytest.raises(UpstreamError, match=r"not a valid ChatCompletion \(id: Field required\)"):
        _parse(ChatCompletion, b'{"choices": []}', _lenient_completion, "http://up")
    with pytest.raises(UpstreamError, match="not JSON"):
        _parse(ChatCompletion, b"<html>", _lenient_completion, "http://up")


# --- the fake itself ---------------------------------------------------------------------------


def test_fake_control_endpoint_scripts_faults_and_reports_requests(fake: RunningFake) -> None:
    root = fake.base_url.removesuffix("/v1")
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=root, timeout=5) as http:
        state = http.post(
            "/_fake/control",
            json={
                "latency_ms": 1,
                "faults": [{"kind": "status", "status": 503, "count": 1, "retry_after": 2}],
            },
        ).json()
        assert state["faults"][0]["status"] == 503
        assert state["latency_ms"] == 1
        failed = http.get("/v1/models", headers=headers)
        assert (failed.status_code, failed.headers["Retry-After"]) == (503, "2")
        assert failed.json()["error"]["type"] == "server_error"
        assert http.get("/v1/models").status_code == 401
        assert http.post("/v1/chat/completions", headers=headers, content=b"{").status_code == 400
        bad = http.post("/v1/embeddings", headers=headers, json={"model": "fake-embed", "input": 3})
        assert bad.json()["error"]["param"] == "input"
        received = http.get("/_fake/requests").json()
        assert received["total"] == 4
        assert [r["authorized"] for r in received["requests"]] == [True, False, True, True]
        assert http.get("/_fake/control").json()["faults"] == []
        assert http.post("/_fake/control", json={"faults": [{"kind": "x"}]}).status_code == 400
        assert http.post("/_fake/control", json={"reset": True}).json()["total"] == 0
    with pytest.raises(ValueError, match="unknown fault fields: colour"):
        Fault.from_json({"kind": "hang", "colour": "red"})


def test_fake_latency_delays_answers(fake: RunningFake) -> None:
    base_url, control = fake
    control.set_latency(100)
    control.api_key = None  # any caller
    started = time.monotonic()
    assert httpx.get(f"{base_url}/models").status_code == 200
    assert time.monotonic() - started >= 0.1


def test_fake_command_line_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--port", "not-a-port"])
    assert "--port" in capsys.readouterr().err


def test_fake_as_a_process() -> None:
    command = [sys.executable, "-m", "hyperspot.sandbox.fake_openai", "--port", "0"]
    command += ["--api-key-env", "FAKE_KEY", "--model", "m1", "--latency-ms", "1", "--no-record"]
    with subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env={**os.environ, "FAKE_KEY": KEY}
    ) as process:
        try:
            assert process.stderr is not None
            line = process.stderr.readline()
            base_url = line.rsplit(" ", 1)[-1].strip()
            assert line.startswith("fake OpenAI API on http://127.0.0.1:")
            headers = {"Authorization": f"Bearer {KEY}"}
            listed = httpx.get(f"{base_url}/models", headers=headers, timeout=10).json()
            assert [m["id"] for m in listed["data"]] == ["m1"]
            received = httpx.get(base_url.removesuffix("/v1") + "/_fake/requests").json()
            assert (received["total"], received["requests"]) == (1, [])
        finally:
            process.terminate()
    failed = subprocess.run(
        [*command[:3], "--api-key-env", "FAKE_UNSET_KEY"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "FAKE_UNSET_KEY"},
        check=False,
    )
    assert failed.returncode == 2
    assert "FAKE_UNSET_KEY is empty or unset" in failed.stderr


def test_sandbox_command_serves_the_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from hyperspot.cli.main import app
    from hyperspot.sandbox import fake_openai

    served: list[dict[str, Any]] = []
    monkeypatch.setattr(fake_openai, "serve", lambda **options: served.append(options))
    monkeypatch.delenv("FAKE_UNSET_KEY", raising=False)
    monkeypatch.setenv("FAKE_KEY", KEY)
    runner = CliRunner()
    refused = runner.invoke(app, ["sandbox", "fake-openai", "--api-key-env", "FAKE_UNSET_KEY"])
    assert refused.exit_code == 1
    assert "FAKE_UNSET_KEY is empty or unset" in refused.output
    arguments = ["sandbox", "fake-openai", "--port", "0", "--api-key-env", "FAKE_KEY"]
    done = runner.invoke(app, [*arguments, "--latency-ms", "20", "--model", "m1"])
    assert done.exit_code == 0, done.output
    assert served == [
        {
            "host": "127.0.0.1",
            "port": 0,
            "api_key": KEY,
            "latency_ms": 20.0,
            "chunk_delay_ms": 0.0,
            "models": ["m1"],
        }
    ]
