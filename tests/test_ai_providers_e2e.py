"""The AI gateway end to end with its real provider plugins, on the database engine under test.

One server for the module, with three providers:

* ``ai_openai`` pointed at the fake OpenAI-compatible API (hyperspot/sandbox/fake_openai.py) in a
  thread of this process; the key reaches the server through an environment variable only.
  It serves ``fake-chat``, ``fake-embed``, ``shared-chat`` (also demo's: openai first, by
  priority) and ``ghost-chat`` (routed openai then demo; the fake does not know it);
* ``ai_local`` (wordllama, in the server's process) serving ``local-embed``;
* ``ai_demo``, the deterministic fallback.

The fake answers ``Echo: <text>`` and demo ``You said: <text>``, so every answer names the provider
that gave it. Each test works in tenants of its own (tests may run on different xdist workers,
each with its own server), so the usage it asserts is its own.
"""

from __future__ import annotations

import importlib.util
import json
import math
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from conftest import ROOT, Launcher, Server, add_tenant, bearer, secured_config
from sse import stream_events, streamed_text

from hyperspot.sandbox.databases import ProvisionedDatabase
from hyperspot.sandbox.fake_openai import RunningFake, embedding_of, running_fake_openai

CHAT = "/ai/v1/chat/completions"
EMBED = "/ai/v1/embeddings"
UPSTREAM_CHAT = "/v1/chat/completions"
KEY_VARIABLE = "HX_E2E_UPSTREAM_KEY"
# Unguessable, so finding it anywhere means it leaked rather than that it happens to be common.
API_KEY = f"sk-e2e-{secrets.token_hex(16)}"
LOCAL_DIMENSIONS = 128
CAT = "The cat sits on the mat"
CAT_AGAIN = "A cat is sitting on a rug"
REVENUE = "Quarterly revenue grew by ten percent"
LOCAL_MODEL_INSTALLED = importlib.util.find_spec("wordllama") is not None
needs_local_model = pytest.mark.skipif(
    not LOCAL_MODEL_INSTALLED,
    reason="the ai-local extra (wordllama) is not installed: the server has no local model",
)

TENANTS = ("plain", "streams", "vectors", "local", "rescue", "refusal", "gov", "ledger", "lister")
POLICIES: dict[str, Any] = {
    "gov": {"max_tokens": 3, "forbidden_patterns": {"secrets": "(?i)pass(word|wd)"}},
}
QUOTAS: dict[str, Any] = {"gov": {"requests": 2}}

# Every answer the server gave in this module, to look for the key in.
ANSWERS: list[str] = []


@pytest.fixture(scope="module")
def upstream() -> Iterator[RunningFake]:
    with running_fake_openai(
        api_key=API_KEY, models=("fake-chat", "fake-embed", "shared-chat")
    ) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(
    module_launcher: Launcher, module_database: ProvisionedDatabase, upstream: RunningFake
) -> Server:
    modules: dict[str, Any] = {
        "ai": {
            "routes": {"ghost-chat": ["openai", "demo"]},
            "tenant_policies": POLICIES,
            "tenant_quotas": QUOTAS,
        },
        "ai_openai": {
            "base_url": upstream.base_url,
            "api_key_env": KEY_VARIABLE,
            "models": [
                {"id": "fake-chat", "kind": "chat"},
                {"id": "fake-embed", "kind": "embedding"},
                {"id": "shared-chat", "kind": "chat"},
                {"id": "ghost-chat", "kind": "chat"},
            ],
            # One retry, at once: a failing upstream costs two requests and no waiting.
            "retries": 1,
            "backoff_s": 0.01,
            "timeout_s": 10,
        },
        "ai_local": {"dimensions": LOCAL_DIMENSIONS},
        "ai_demo": {
            "models": [
                {"id": "demo-chat", "kind": "chat"},
                {"id": "shared-chat", "kind": "chat"},
                {"id": "ghost-chat", "kind": "chat"},
            ]
        },
    }
    config = secured_config(module_database.url.url, {"modules": modules})
    server = module_launcher.start(config, env={KEY_VARIABLE: API_KEY})
    for tenant in TENANTS:
        add_tenant(server, tenant)
    return server


@pytest.fixture
def fake(upstream: RunningFake) -> RunningFake:
    """The fake, healthy and with nothing recorded, for each test."""
    upstream.control.reset()
    return upstream


def member(tenant: str) -> dict[str, str]:
    return bearer(tenant, "ann", roles=("member",))


def kept(response: httpx.Response) -> httpx.Response:
    ANSWERS.append(response.text)
    ANSWERS.extend(f"{name}: {value}" for name, value in response.headers.items())
    return response


def chat(server: Server, tenant: str, text: str, model: str, **options: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **options}
    return kept(server.client.post(CHAT, json=body, headers=member(tenant)))


def embed(server: Server, tenant: str, texts: list[str], model: str, **options: Any) -> Any:
    body = {"model": model, "input": texts, **options}
    return kept(server.client.post(EMBED, json=body, headers=member(tenant)))


def streamed(response: httpx.Response) -> list[Any]:
    assert response.status_code == 200, response.text
    return stream_events(response)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    document: dict[str, Any] = response.json()
    return document


def usage_totals(server: Server, tenant: str) -> dict[str, Any]:
    answer = kept(server.client.get("/ai/v1/usage", headers=bearer(tenant)))
    assert answer.status_code == 200, answer.text
    totals: dict[str, Any] = answer.json()["totals"]
    return totals


def requests_metric(server: Server, tenant: str, model: str, provider: str) -> float:
    """``hyperspot_ai_requests_total`` of the tenant's ``ok`` calls of ``model`` by ``provider``."""
    metrics = server.client.get("/metrics", headers=bearer(ROOT)).text
    labels = f'model="{model}",outcome="ok",provider="{provider}",tenant="{tenant}"'
    for line in metrics.splitlines():
        if line.startswith(f"hyperspot_ai_requests_total{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


# --- through the OpenAI-compatible upstream -----------------------------------------------------


def test_chat_through_the_upstream_with_its_usage_and_key(
    server: Server, fake: RunningFake
) -> None:
    answer = chat(server, "plain", "hello there  world", "fake-chat")
    assert answer.status_code == 200, answer.text
    completion = answer.json()
    assert completion["object"] == "chat.completion"
    assert completion["model"] == "fake-chat"
    assert completion["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Echo: hello there world",
    }
    assert completion["choices"][0]["finish_reason"] == "stop"
    # The fake counts words: 3 in, "Echo:" and the 3 words out.
    assert completion["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert answer.headers["server-timing"].startswith("provider;dur=")

    (received,) = fake.control.requests
    assert received.path == UPSTREAM_CHAT
    assert received.authorization == f"Bearer {API_KEY}"
    assert received.body["model"] == "fake-chat"
    assert received.body["messages"] == [{"role": "user", "content": "hello there  world"}]
    assert not received.body.get("stream")
    assert usage_totals(server, "plain") == {
        "requests": 1,
        "tokens_in": 3,
        "tokens_out": 4,
        "failures": 0,
        "refused": 0,
    }


def test_streamed_chat_through_the_upstream(server: Server, fake: RunningFake) -> None:
    options = {"stream": True, "stream_options": {"include_usage": True}}
    events = streamed(chat(server, "streams", "one two three four", "fake-chat", **options))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert streamed_text(events) == "Echo: one two three four"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}
    (received,) = fake.control.requests
    assert received.authorization == f"Bearer {API_KEY}"
    assert received.body["stream"] is True

    # Without include_usage, no chunk carries usage, though the upstream was asked for it.
    quiet = streamed(chat(server, "streams", "just this", "fake-chat", stream=True))
    assert streamed_text(quiet) == "Echo: just this"
    assert all(event.get("usage") is None for event in quiet[:-1])
    assert fake.control.requests[-1].body["stream_options"] == {"include_usage": True}
    totals = usage_totals(server, "streams")
    assert (totals["requests"], totals["tokens_in"], totals["tokens_out"]) == (2, 4 + 2, 5 + 3)


def test_a_stream_broken_by_the_upstream_after_its_first_chunks(
    server: Server, fake: RunningFake
) -> None:
    fake.control.break_stream_next(after_chunks=3)
    events = streamed(chat(server, "streams", "alpha beta gamma delta", "fake-chat", stream=True))
    # The role chunk, "Echo:", " alpha", then the upstream's error: no fallback once sent.
    assert streamed_text(events) == "Echo: alpha"
    assert events[-2] == {
        "error": {
            "message": "the provider 'openai' failed during the stream",
            "type": "provider_failed",
        }
    }
    assert events[-1] == "[DONE]"


def test_embeddings_through_the_upstream(server: Server, fake: RunningFake) -> None:
    answer = embed(server, "vectors", ["a cat sits", "revenue grew"], "fake-embed", dimensions=8)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "fake-embed"
    assert [item["embedding"] for item in body["data"]] == [
        embedding_of("a cat sits", 8),
        embedding_of("revenue grew", 8),
    ]
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    (received,) = fake.control.requests
    assert received.path == "/v1/embeddings"
    assert received.authorization == f"Bearer {API_KEY}"
    assert received.body == {
        "model": "fake-embed",
        "input": ["a cat sits", "revenue grew"],
        "dimensions": 8,
        "encoding_format": "float",
    }


# --- the local model ----------------------------------------------------------------------------


@needs_local_model
def test_local_embeddings_are_closer_for_similar_sentences(
    server: Server, fake: RunningFake
) -> None:
    answer = embed(server, "local", [CAT, CAT_AGAIN, REVENUE], "local-embed")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    cat, cat_again, revenue = (item["embedding"] for item in body["data"])
    assert all(len(vector) == LOCAL_DIMENSIONS for vector in (cat, cat_again, revenue))
    assert math.isclose(sum(x * x for x in cat), 1.0, rel_tol=1e-5)
    similar, unrelated = cosine(cat, cat_again), cosine(cat, revenue)
    assert similar > unrelated + 0.1, (similar, unrelated)
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] >= 3 * 5

    shorter = embed(server, "local", [CAT], "local-embed", dimensions=64)
    assert shorter.status_code == 200, shorter.text
    assert len(shorter.json()["data"][0]["embedding"]) == 64
    too_long = embed(server, "local", [CAT], "local-embed", dimensions=LOCAL_DIMENSIONS * 2)
    assert problem(too_long, 422)["type"].endswith("/provider-refused")
    # The upstream had nothing to do with it.
    assert fake.control.total == 0


# --- fallback -----------------------------------------------------------------------------------


def test_fallback_to_demo_while_the_upstream_fails(server: Server, fake: RunningFake) -> None:
    served = chat(server, "rescue", "first call", "shared-chat")
    assert served.json()["choices"][0]["message"]["content"] == "Echo: first call"

    # More failures than the retries: openai gives up, demo (next by priority) answers.
    fake.control.fail_next(2, status=500)
    rescued = chat(server, "rescue", "please answer", "shared-chat")
    assert rescued.status_code == 200, rescued.text
    assert rescued.json()["choices"][0]["message"]["content"] == "You said: please answer"
    assert fake.control.count(UPSTREAM_CHAT) == 1 + 2

    # A stream failing before its first chunk falls back too: by status...
    fake.control.fail_next(2, status=503, path=UPSTREAM_CHAT)
    options = {"stream": True, "stream_options": {"include_usage": True}}
    events = streamed(chat(server, "rescue", "stream me", "shared-chat", **options))
    assert streamed_text(events) == "You said: stream me"
    assert events[-1] == "[DONE]"
    # ... or by an error event in place of its first chunk.
    fake.control.break_stream_next(after_chunks=0)
    events = streamed(chat(server, "rescue", "stream again", "shared-chat", stream=True))
    assert streamed_text(events) == "You said: stream again"
    assert fake.control.count(UPSTREAM_CHAT) == 3 + 2 + 1

    # Healthy again: openai answers again.
    back = chat(server, "rescue", "you are back", "shared-chat")
    assert back.json()["choices"][0]["message"]["content"] == "Echo: you are back"
    back_streamed = streamed(chat(server, "rescue", "streaming too", "shared-chat", stream=True))
    assert streamed_text(back_streamed) == "Echo: streaming too"

    # Each call is metered as answered by the provider that answered it.
    assert requests_metric(server, "rescue", "shared-chat", "openai") == 3
    assert requests_metric(server, "rescue", "shared-chat", "demo") == 3
    totals = usage_totals(server, "rescue")
    assert (totals["requests"], totals["failures"], totals["refused"]) == (6, 0, 0)
    # ... and so is its usage: a tenant sees which provider served it.
    rows = kept(server.client.get("/ai/v1/usage", headers=bearer("rescue"))).json()["rows"]
    assert {row["provider"]: row["requests"] for row in rows} == {"openai": 3, "demo": 3}


def test_an_upstream_refusal_is_an_answer_without_fallback(
    server: Server, fake: RunningFake
) -> None:
    # The fake does not know ghost-chat (404 with OpenAI's error): demo, next, is not asked.
    unknown = problem(chat(server, "refusal", "hello", "ghost-chat"), 422)
    assert unknown["type"].endswith("/provider-refused")
    assert "(404)" in unknown["detail"]
    assert "ghost-chat` does not exist" in unknown["detail"]

    fake.control.fail_next(1, status=400, message="'messages' is too long")
    refused = problem(chat(server, "refusal", "hello", "shared-chat"), 422)
    assert refused["type"].endswith("/provider-refused")
    assert refused["detail"] == ("the provider refused the request (400): 'messages' is too long")
    fake.control.fail_next(1, status=400, path=UPSTREAM_CHAT)
    refused_stream = chat(server, "refusal", "hello", "shared-chat", stream=True)
    assert problem(refused_stream, 422)["type"].endswith("/provider-refused")
    # One request each, no retry; and demo never answered.
    assert fake.control.count(UPSTREAM_CHAT) == 3
    assert requests_metric(server, "refusal", "shared-chat", "demo") == 0
    totals = usage_totals(server, "refusal")
    assert totals == {"requests": 3, "tokens_in": 0, "tokens_out": 0, "failures": 0, "refused": 3}
    rows = kept(server.client.get("/ai/v1/usage", headers=bearer("refusal"))).json()["rows"]
    assert {row["provider"] for row in rows} == {"openai"}


def test_no_provider_left_is_503(server: Server, fake: RunningFake) -> None:
    fake.control.fail_next(2, status=502)
    down = problem(chat(server, "refusal", "anyone?", "fake-chat"), 503)
    assert "openai" in down["detail"]
    assert API_KEY not in json.dumps(down)


# --- governance and quotas before the upstream --------------------------------------------------


def test_governance_and_quota_hold_before_the_upstream(server: Server, fake: RunningFake) -> None:
    forbidden = problem(chat(server, "gov", "my password is hunter2", "fake-chat"), 422)
    assert forbidden["rule"] == "forbidden_patterns.secrets"
    too_many = problem(chat(server, "gov", "hi", "fake-chat", max_tokens=4), 422)
    assert too_many["rule"] == "max_tokens"
    assert fake.control.total == 0

    # No limit of its own: the policy's is sent upstream, which cuts the reply there.
    cut = chat(server, "gov", "one two three four five", "fake-chat")
    assert cut.status_code == 200, cut.text
    assert fake.control.requests[-1].body["max_tokens"] == 3
    assert cut.json()["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": "Echo: one two"},
        "finish_reason": "length",
    }
    assert chat(server, "gov", "two", "fake-chat").status_code == 200
    spent = problem(chat(server, "gov", "three", "fake-chat"), 429)
    assert spent["rule"] == "quota.requests"
    assert fake.control.count(UPSTREAM_CHAT) == 2


# --- usage, models, the key ---------------------------------------------------------------------


def test_usage_totals_equal_what_the_answers_reported(server: Server, fake: RunningFake) -> None:
    tokens_in = tokens_out = 0
    for text, model in (("alpha", "fake-chat"), ("beta gamma", "shared-chat"), ("x", "demo-chat")):
        usage = chat(server, "ledger", text, model).json()["usage"]
        tokens_in += usage["prompt_tokens"]
        tokens_out += usage["completion_tokens"]
    options = {"stream": True, "stream_options": {"include_usage": True}}
    events = streamed(chat(server, "ledger", "streamed words here", "fake-chat", **options))
    usage = events[-2]["usage"]
    tokens_in += usage["prompt_tokens"]
    tokens_out += usage["completion_tokens"]
    fake.control.fail_next(2, status=500)
    rescued = chat(server, "ledger", "rescued by demo", "shared-chat").json()["usage"]
    tokens_in += rescued["prompt_tokens"]
    tokens_out += rescued["completion_tokens"]
    embedded = embed(server, "ledger", ["embed these words"], "fake-embed").json()
    tokens_in += embedded["usage"]["prompt_tokens"]
    calls = 6
    if LOCAL_MODEL_INSTALLED:
        local = embed(server, "ledger", [CAT, REVENUE], "local-embed")
        tokens_in += local.json()["usage"]["prompt_tokens"]
        calls += 1
    assert tokens_out > 0
    assert tokens_in > 0

    assert usage_totals(server, "ledger") == {
        "requests": calls,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "failures": 0,
        "refused": 0,
    }


def test_models_list_every_providers_models(server: Server) -> None:
    listed = kept(server.client.get("/ai/v1/models", headers=member("lister")))
    assert listed.status_code == 200, listed.text
    models = {model["id"]: (model["kind"], model["providers"]) for model in listed.json()["data"]}
    expected = {
        "fake-chat": ("chat", ["openai"]),
        "fake-embed": ("embedding", ["openai"]),
        "shared-chat": ("chat", ["openai", "demo"]),  # by priority: openai 50, demo 0
        "ghost-chat": ("chat", ["openai", "demo"]),  # by its route (priority agrees)
        "demo-chat": ("chat", ["demo"]),
    }
    if LOCAL_MODEL_INSTALLED:
        expected["local-embed"] = ("embedding", ["local"])
    assert models == expected


def test_the_key_is_in_no_log_and_no_answer(server: Server, fake: RunningFake) -> None:
    # Failures are what gets logged: make some here, whatever ran before on this worker.
    fake.control.fail_next(2, status=500)
    assert chat(server, "lister", "fail over", "shared-chat").status_code == 200
    # The upstream refusing the key: a failure of this server (503), not the caller's fault.
    fake.control.fail_next(1, status=401)
    problem(chat(server, "lister", "who am I", "fake-chat"), 503)
    log = server.log()
    assert "retry 1 of 1" in log  # the failures were logged...
    assert API_KEY not in log  # ... without the key
    assert all(API_KEY not in answer for answer in ANSWERS)
    assert fake.control.requests[0].authorization == f"Bearer {API_KEY}"
