"""The AI gateway (hyperspot/modules/ai) end to end, on the database engine under test.

One server for the module: the ``ai`` gateway with two providers, ``ai_demo`` (deterministic
echo; here also serving ``shared-chat``) and the fixture ``ai_flaky`` (tests/fixtures/ai_plugins:
priority 10, fails on demand), so ``shared-chat`` is served by flaky and falls back to demo.
Each test works in tenants of its own, so the usage and quotas it asserts are its own. Then unit
tests of the kernel pieces the gateway relies on (streamed replies, problem extension members,
module metrics, plugin discovery without plugins).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
import yaml
from conftest import ROOT, Launcher, Server, add_tenant, bearer, secured_config
from sse import stream_events, streamed_text

from hyperspot.platform.errors import OperationError
from hyperspot.platform.gateway.operations import OperationBuilder
from hyperspot.platform.gateway.problems import Problem, problem_document
from hyperspot.platform.observability.metrics import ModuleMetrics
from hyperspot.platform.plugins import PluginError, PluginGateway
from hyperspot.sandbox.databases import ProvisionedDatabase

AI_PLUGINS = Path(__file__).parent / "fixtures" / "ai_plugins"
CHAT = "/ai/v1/chat/completions"
EMBED = "/ai/v1/embeddings"
TOKENS_QUOTA = 30

POLICIES: dict[str, Any] = {
    "strict": {
        "allowed_models": ["demo-*"],
        "max_tokens": 8,
        "forbidden_patterns": {"secrets": "(?i)pass(word|wd)", "cards": r"\b\d{16}\b"},
    },
    "embedonly": {"allowed_models": ["demo-embed"]},
}
QUOTAS: dict[str, Any] = {
    "limited": {"requests": 2},
    "metered": {"tokens": TOKENS_QUOTA, "period": "hour"},
    "burst": {"requests": 3},
    "bursttokens": {"tokens": 40},
    "rebuilt": {"tokens": 10_000, "requests": 100, "period": "month"},
}


def ai_sections(policies: dict[str, Any]) -> dict[str, Any]:
    sections: dict[str, Any] = {
        "ai": {"tenant_policies": policies, "tenant_quotas": QUOTAS},
        "ai_demo": {
            "models": [
                {"id": "demo-chat", "kind": "chat"},
                {"id": "demo-embed", "kind": "embedding"},
                {"id": "shared-chat", "kind": "chat"},
            ]
        },
        "ai_flaky": {"delay_ms": 100},
    }
    # Other installed providers stay out of the way (their own tests cover them).
    installed = {entry.name for entry in entry_points(group="hyperspot.modules")}
    for other in ("ai_local", "ai_openai"):
        if other in installed:
            sections[other] = {"enabled": False}
    return sections


@pytest.fixture(scope="module")
def server(module_launcher: Launcher, module_database: ProvisionedDatabase) -> Server:
    config = secured_config(
        module_database.url.url,
        {"modules_path": [str(AI_PLUGINS)], "modules": ai_sections(POLICIES)},
    )
    server = module_launcher.start(config)
    for tenant in (
        "acme",
        "globex",
        "strict",
        "embedonly",
        "limited",
        "metered",
        "counted",
        "leaver",
        "fallback",
        "burst",
        "bursttokens",
        "rebuilt",
    ):
        add_tenant(server, tenant)
    return server


def member(tenant: str) -> dict[str, str]:
    return bearer(tenant, "ann", roles=("member",))


def ask(text: str, model: str = "demo-chat", **options: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **options}


def chat(server: Server, tenant: str, text: str, **options: Any) -> httpx.Response:
    return server.client.post(CHAT, json=ask(text, **options), headers=member(tenant))


def usage_of(server: Server, tenant: str, **params: str) -> dict[str, Any]:
    answer = server.client.get("/ai/v1/usage", params=params, headers=bearer(tenant))
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    return report


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    document: dict[str, Any] = response.json()
    return document


# --- chat, streaming, embeddings, models ----------------------------------------------------------


def test_models_are_those_the_tenant_may_use(server: Server) -> None:
    listed = server.client.get("/ai/v1/models", headers=member("acme"))
    assert listed.status_code == 200, listed.text
    models = {model["id"]: model for model in listed.json()["data"]}
    assert set(models) == {"demo-chat", "demo-embed", "shared-chat", "flaky-chat"}
    assert models["demo-embed"]["kind"] == "embedding"
    # By priority: flaky (10) first, demo (0) its fallback.
    assert models["shared-chat"]["providers"] == ["flaky", "demo"]
    assert models["flaky-chat"]["providers"] == ["flaky"]
    strict = server.client.get("/ai/v1/models", headers=member("strict")).json()["data"]
    assert sorted(model["id"] for model in strict) == ["demo-chat", "demo-embed"]


def test_chat_plain_and_streamed(server: Server) -> None:
    plain = chat(server, "acme", "hello there world")
    assert plain.status_code == 200, plain.text
    completion = plain.json()
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"] == {
        "role": "assistant",
        "content": "You said: hello there world",
    }
    assert completion["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    # The providers' share of the time, for the gateway-overhead benchmark.
    assert plain.headers["server-timing"].startswith("provider;dur=")

    streamed = chat(server, "acme", "hello there world", stream=True)
    assert streamed.status_code == 200
    assert streamed.headers["cache-control"] == "no-cache"
    events = stream_events(streamed)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert streamed_text(events) == "You said: hello there world"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # Usage only when asked for (stream_options.include_usage), as OpenAI does.
    assert all(chunk["usage"] is None for chunk in chunks)
    with_usage = stream_events(
        chat(server, "acme", "hi", stream=True, stream_options={"include_usage": True})
    )
    assert with_usage[-2]["usage"] == {
        "prompt_tokens": 1,
        "completion_tokens": 3,
        "total_tokens": 4,
    }


def test_embeddings(server: Server) -> None:
    answer = server.client.post(
        EMBED,
        json={"model": "demo-embed", "input": ["a cat sits", "a dog runs"], "dimensions": 16},
        headers=member("acme"),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert all(len(item["embedding"]) == 16 for item in body["data"])
    assert body["usage"] == {"prompt_tokens": 6, "total_tokens": 6}
    assert answer.headers["server-timing"].startswith("provider;dur=")


def test_unknown_model_wrong_kind_and_provider_refusal(server: Server) -> None:
    missing = problem(chat(server, "acme", "hi", model="gpt-nope"), 404)
    assert missing["type"].endswith("/model-not-found")
    wrong = problem(chat(server, "acme", "hi", model="demo-embed"), 404)
    assert "embedding model" in wrong["detail"]
    refused = problem(chat(server, "acme", "refuse-me", model="shared-chat"), 422)
    assert refused["type"].endswith("/provider-refused")
    assert refused["detail"] == "the flaky provider refuses this request"


def test_openapi_documents_both_answers_of_chat(server: Server) -> None:
    document = server.client.get("/openapi.json").json()
    operation = document["paths"]["/ai/v1/chat/completions"]["post"]
    assert set(operation["responses"]["200"]["content"]) == {
        "application/json",
        "text/event-stream",
    }
    assert operation["x-hyperspot-permission"] == "ai:use"
    assert {"403", "404", "422", "429", "503"} <= set(operation["responses"])
    for path in ("/ai/v1/embeddings", "/ai/v1/models", "/ai/v1/usage", "/ai/v1/admin/usage"):
        assert path in document["paths"]


# --- governance ---------------------------------------------------------------------------------


def test_governance_refusals_name_their_rule(server: Server) -> None:
    not_allowed = problem(chat(server, "strict", "hi", model="shared-chat"), 403)
    assert not_allowed["type"].endswith("/model-not-allowed")
    assert not_allowed["rule"] == "allowed_models"

    too_many = problem(chat(server, "strict", "hi", max_tokens=9), 422)
    assert too_many["rule"] == "max_tokens"
    assert "at most 8" in too_many["detail"]
    # Either name of the limit counts.
    assert problem(chat(server, "strict", "hi", max_completion_tokens=50), 422)["rule"] == (
        "max_tokens"
    )

    secret = problem(chat(server, "strict", "my PassWord is hunter2"), 422)
    assert secret["type"].endswith("/policy-violation")
    assert secret["rule"] == "forbidden_patterns.secrets"
    card = server.client.post(
        EMBED,
        json={"model": "demo-embed", "input": ["fine", "card 4111111111111111"]},
        headers=member("strict"),
    )
    assert problem(card, 422)["rule"] == "forbidden_patterns.cards"
    streamed = chat(server, "strict", "passwd please", stream=True)
    assert problem(streamed, 422)["rule"] == "forbidden_patterns.secrets"

    # Without a limit of its own, a request gets the policy's maximum.
    long = chat(server, "strict", "one two three four five six seven eight nine ten")
    assert long.status_code == 200, long.text
    assert long.json()["usage"]["completion_tokens"] == 8
    assert long.json()["choices"][0]["finish_reason"] == "length"

    embed_only = problem(chat(server, "embedonly", "hi"), 403)
    assert embed_only["rule"] == "allowed_models"

    # Refusals are recorded too, without tokens.
    report = usage_of(server, "strict")
    assert report["totals"]["refused"] == 6
    assert report["totals"]["requests"] == 7


# --- quotas -------------------------------------------------------------------------------------


def test_request_budget(server: Server) -> None:
    for _ in range(2):
        assert chat(server, "limited", "hi").status_code == 200
    status = server.client.get("/ai/v1/quota", headers=member("limited")).json()
    assert status["requests_used"] == 2
    assert status["requests_limit"] == 2
    assert status["period"] == "day"
    spent = chat(server, "limited", "hi")
    document = problem(spent, 429)
    assert document["type"].endswith("/ai-quota-exceeded")
    assert document["rule"] == "quota.requests"
    assert (document["limit"], document["used"]) == (2, 2)
    assert document["resets_at"] == status["resets_at"]
    assert 0 < int(spent.headers["retry-after"]) <= 86_400
    # A refusal costs nothing: the budget stays spent, not overspent.
    again = server.client.get("/ai/v1/quota", headers=member("limited")).json()
    assert again["requests_used"] == 2


def test_a_stream_stops_at_the_token_budget_and_is_metered(server: Server) -> None:
    text = " ".join(["w"] * 20)  # 39 characters: about 10 prompt tokens
    events = stream_events(
        chat(server, "metered", text, stream=True, stream_options={"include_usage": True})
    )
    assert events[-1] == "[DONE]"
    last = events[-2]
    assert last["choices"][0]["finish_reason"] == "length"
    usage = last["usage"]
    assert usage["total_tokens"] == TOKENS_QUOTA
    assert usage["completion_tokens"] == len(streamed_text(events).split())
    assert usage["completion_tokens"] < len(f"You said: {text}".split())

    spent = problem(chat(server, "metered", "hi"), 429)
    assert spent["rule"] == "quota.tokens"
    assert (spent["limit"], spent["used"]) == (TOKENS_QUOTA, TOKENS_QUOTA)
    status = server.client.get("/ai/v1/quota", headers=member("metered")).json()
    assert status["tokens_used"] == TOKENS_QUOTA
    assert status["period"] == "hour"

    totals = usage_of(server, "metered")["totals"]
    assert (totals["tokens_in"], totals["tokens_out"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )


def _burst(server: Server, tenant: str, calls: int, **options: Any) -> list[httpx.Response]:
    """``calls`` slow streamed chats at once (each holds its budget ~0.4 s)."""

    async def all_at_once() -> list[httpx.Response]:
        body = ask("slow a b c", model="shared-chat", stream=True, **options)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return list(
                await asyncio.gather(
                    *(client.post(CHAT, json=body, headers=member(tenant)) for _ in range(calls))
                )
            )

    return asyncio.run(all_at_once())


def _settled(server: Server, tenant: str) -> dict[str, Any]:
    """The tenant's quota status once no call of it is in progress."""
    status: dict[str, Any] = server.client.get("/ai/v1/quota", headers=member(tenant)).json()
    totals = usage_of(server, tenant)["totals"]
    # Every reservation settled: the budget counts exactly what the usage report shows.
    assert status["tokens_used"] == totals["tokens_in"] + totals["tokens_out"]
    return status


def test_concurrent_calls_cannot_overshoot_the_request_budget(server: Server) -> None:
    answers = _burst(server, "burst", 8)
    served = [a for a in answers if a.status_code == 200]
    refused = [problem(a, 429) for a in answers if a.status_code != 200]
    assert len(served) + len(refused) == 8
    # Admitted one after another under the budget's lock: exactly the budget, no more, no less.
    assert len(served) == 3, "concurrent calls went past the request budget"
    assert {document["rule"] for document in refused} == {"quota.requests"}
    status = _settled(server, "burst")
    assert status["requests_used"] == 3
    assert problem(chat(server, "burst", "too many"), 429)["rule"] == "quota.requests"


def test_concurrent_calls_cannot_overshoot_the_token_budget(server: Server) -> None:
    # Each reserves its prompt (~3 tokens) and its max_tokens (6): four fit in 40, and a
    # fifth gets the one completion token left (its stream is cut there).
    answers = _burst(server, "bursttokens", 8, max_tokens=6)
    served = [a for a in answers if a.status_code == 200]
    refused = [problem(a, 429) for a in answers if a.status_code != 200]
    assert len(served) == 5, "concurrent calls went past the token budget"
    assert {document["rule"] for document in refused} == {"quota.tokens"}
    texts = sorted(streamed_text(stream_events(a)) for a in served)
    assert texts == ["flaky:"] + ["flaky: slow a b c"] * 4
    status = _settled(server, "bursttokens")
    # 4 prompt + 5 completion tokens each, and the cut one's estimated prompt and one token.
    assert status["tokens_used"] == 4 * 9 + 3 + 1 == 40


def _sql(database: ProvisionedDatabase, statement: str) -> list[Any]:
    """One statement on the test's own connection, as the platform's system work sees rows."""
    connection = database.url.connect(autocommit=True)
    try:
        cursor = connection.cursor()
        if database.url.backend == "postgres":
            # Row-level security: the test's role sees no tenant's rows by itself.
            cursor.execute("SELECT set_config('hyperspot.system', 'on', false)")
        cursor.execute(statement)
        return list(cursor.fetchall()) if cursor.description else []
    finally:
        connection.close()


def test_budget_totals_are_rebuilt_from_the_usage_rows(
    server: Server, module_database: ProvisionedDatabase
) -> None:
    for text in ("one", "two words"):
        assert chat(server, "rebuilt", text).status_code == 200
    before = _settled(server, "rebuilt")
    assert before["requests_used"] == 2
    # Lost, as after an upgrade from a version without them, or a purge during a call.
    assert _sql(module_database, "SELECT id FROM ai_budget WHERE id = 'rebuilt'") == [("rebuilt",)]
    _sql(module_database, "DELETE FROM ai_budget WHERE id = 'rebuilt'")
    assert server.client.get("/ai/v1/quota", headers=member("rebuilt")).json() == before
    assert chat(server, "rebuilt", "three").status_code == 200
    after = _settled(server, "rebuilt")
    assert after["requests_used"] == 3
    assert after["tokens_used"] > before["tokens_used"]


# --- usage ---------------------------------------------------------------------------------------


def test_usage_totals_equal_what_the_answers_said(server: Server) -> None:
    tokens_in = tokens_out = 0
    for text in ("alpha", "beta gamma", "delta epsilon zeta"):
        usage = chat(server, "counted", text).json()["usage"]
        tokens_in += usage["prompt_tokens"]
        tokens_out += usage["completion_tokens"]
    events = stream_events(
        chat(
            server, "counted", "streamed words", stream=True, stream_options={"include_usage": True}
        )
    )
    usage = events[-2]["usage"]
    tokens_in += usage["prompt_tokens"]
    tokens_out += usage["completion_tokens"]
    embedded = server.client.post(
        EMBED, json={"model": "demo-embed", "input": "one two three"}, headers=member("counted")
    )
    tokens_in += embedded.json()["usage"]["prompt_tokens"]

    report = usage_of(server, "counted")
    assert report["totals"] == {
        "requests": 5,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "failures": 0,
        "refused": 0,
    }
    by_model = {row["model"]: row for row in report["rows"]}
    assert by_model["demo-chat"]["requests"] == 4
    assert by_model["demo-embed"]["tokens_in"] == 3
    assert all(row["tenant"] is None for row in report["rows"])
    # Days outside the span report nothing.
    assert usage_of(server, "counted", **{"from": "2020-01-01", "to": "2020-01-31"})["rows"] == []
    backwards = server.client.get(
        "/ai/v1/usage", params={"from": "2020-02-01", "to": "2020-01-01"}, headers=bearer("counted")
    )
    assert problem(backwards, 400)["type"].endswith("/validation-error")
    too_long = server.client.get(
        "/ai/v1/usage", params={"from": "2020-01-01", "to": "2021-01-01"}, headers=bearer("counted")
    )
    assert "at most 92 days" in problem(too_long, 400)["detail"]


def test_a_tenant_sees_only_its_own_usage(server: Server) -> None:
    assert chat(server, "globex", "globex only").status_code == 200
    assert chat(server, "acme", "acme call").status_code == 200
    globex = usage_of(server, "globex")
    assert globex["totals"]["requests"] == 1
    # Another tenant's rows are not reachable by naming that tenant.
    forged = server.client.get("/ai/v1/usage", headers={**bearer("globex"), "X-Tenant-Id": "acme"})
    assert forged.status_code == 403, forged.text
    unknown = server.client.get("/ai/v1/usage", params={"tenant": "acme"}, headers=bearer("globex"))
    assert unknown.status_code == 400
    # Members use the gateway; reading usage is the tenant administrators'.
    assert server.client.get("/ai/v1/usage", headers=member("globex")).status_code == 403
    assert server.client.get("/ai/v1/admin/usage", headers=bearer("globex")).status_code == 403
    # A platform administrator acting in acme sees acme's, as acme.
    acting = server.client.get("/ai/v1/usage", headers={**bearer(ROOT), "X-Tenant-Id": "acme"})
    assert acting.status_code == 200
    assert acting.json()["totals"]["requests"] == usage_of(server, "acme")["totals"]["requests"]


def test_platform_administrators_see_every_tenant(server: Server) -> None:
    assert chat(server, "globex", "for the admin view").status_code == 200
    everyone = server.client.get("/ai/v1/admin/usage", headers=bearer(ROOT))
    assert everyone.status_code == 200, everyone.text
    tenants = {row["tenant"] for row in everyone.json()["rows"]}
    assert {"acme", "globex"} <= tenants
    only = server.client.get(
        "/ai/v1/admin/usage", params={"tenant": "globex"}, headers=bearer(ROOT)
    ).json()
    assert {row["tenant"] for row in only["rows"]} == {"globex"}
    assert only["totals"] == usage_of(server, "globex")["totals"]


# --- providers failing --------------------------------------------------------------------------


def test_fallback_to_the_next_provider(server: Server) -> None:
    served = chat(server, "fallback", "hello", model="shared-chat")
    assert served.json()["choices"][0]["message"]["content"] == "flaky: hello"
    # flaky fails: demo, next for the model, answers.
    rescued = chat(server, "fallback", "fail-first please", model="shared-chat")
    assert rescued.status_code == 200, rescued.text
    assert rescued.json()["choices"][0]["message"]["content"] == "You said: fail-first please"
    rescued_stream = stream_events(
        chat(server, "fallback", "fail-first again", model="shared-chat", stream=True)
    )
    assert streamed_text(rescued_stream) == "You said: fail-first again"

    # No provider left: 503, naming the failure.
    down = problem(chat(server, "fallback", "fail-first", model="flaky-chat"), 503)
    assert down["detail"].endswith("plugin 'flaky' failed (ProviderDownError)")
    # Mid-stream, the failure cannot fall back: the stream ends with an error event.
    broken = stream_events(
        chat(server, "fallback", "fail-mid now", model="flaky-chat", stream=True)
    )
    assert streamed_text(broken) == "flaky:"
    assert broken[-2] == {
        "error": {
            "message": "the provider 'flaky' failed during the stream",
            "type": "provider_failed",
        }
    }
    assert broken[-1] == "[DONE]"
    totals = usage_of(server, "fallback")["totals"]
    assert totals["requests"] == 5
    assert totals["failures"] == 2
    assert "sk-" not in server.log()


def test_a_client_leaving_mid_stream_is_still_metered(server: Server) -> None:
    words = " ".join(f"w{index}" for index in range(40))
    body = ask(f"slow {words}", model="shared-chat", stream=True)
    with server.client.stream("POST", CHAT, json=body, headers=member("leaver")) as response:
        assert response.status_code == 200
        first = next(response.iter_lines())
        assert first.startswith("data: ")
    # The stream (4 s at 100 ms a chunk) ends when the server sees the client gone.
    deadline = time.monotonic() + 3
    rows: list[Any] = []
    while time.monotonic() < deadline and not rows:
        rows = usage_of(server, "leaver")["rows"]
        time.sleep(0.1)
    assert rows, "the stream was not metered after the client left"
    assert 1 <= rows[0]["tokens_out"] < 42
    metrics = server.client.get("/metrics", headers=bearer(ROOT)).text
    assert 'outcome="disconnected"' in metrics
    assert "the client disconnected during the stream" in server.log()


def test_metrics_count_tokens_by_tenant_and_model(server: Server) -> None:
    assert chat(server, "acme", "count me").status_code == 200
    metrics = server.client.get("/metrics", headers=bearer(ROOT)).text
    assert 'hyperspot_ai_tokens_total{direction="in",model="demo-chat",tenant="acme"}' in metrics
    assert 'hyperspot_ai_tokens_total{direction="out",model="demo-chat",tenant="acme"}' in metrics
    assert (
        'hyperspot_ai_requests_total{model="demo-chat",outcome="ok",provider="demo",tenant="acme"}'
        in metrics
    )
    assert "hyperspot_ai_provider_duration_seconds_bucket" in metrics


def test_reload_changes_a_tenant_policy(server: Server, module_launcher: Launcher) -> None:
    path = module_launcher.tmp_path / f"config-{server.url.rsplit(':', 1)[1]}.yaml"
    original = path.read_text(encoding="utf-8")
    config = yaml.safe_load(original)
    config["modules"]["ai"]["tenant_policies"]["acme"] = {"allowed_models": ["demo-embed"]}
    try:
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        report = server.client.post("/admin/reload", headers=bearer(ROOT))
        assert report.json()["status"] == "applied", report.text
        assert "ai" in report.json()["applied"]
        assert problem(chat(server, "acme", "hi"), 403)["rule"] == "allowed_models"
        models = server.client.get("/ai/v1/models", headers=member("acme")).json()["data"]
        assert [model["id"] for model in models] == ["demo-embed"]

        # A route naming a provider that does not run is refused; the running one stays.
        config["modules"]["ai"]["routes"] = {"demo-chat": ["klingon"]}
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        refused = server.client.post("/admin/reload", headers=bearer(ROOT)).json()
        assert refused["status"] == "partial"
        assert "routes.demo-chat: no provider named klingon" in refused["errors"][0]
        assert problem(chat(server, "acme", "hi"), 403)["rule"] == "allowed_models"
    finally:
        path.write_text(original, encoding="utf-8")
        restored = server.client.post("/admin/reload", headers=bearer(ROOT)).json()
    assert restored["status"] == "applied", restored
    assert chat(server, "acme", "hi").status_code == 200


def test_a_budget_removed_and_given_back_counts_the_calls_in_between(
    server: Server, module_launcher: Launcher, module_database: ProvisionedDatabase
) -> None:
    def totals_rows() -> list[Any]:
        return _sql(module_database, "SELECT id FROM ai_budget WHERE id = 'comeback'")

    path = module_launcher.tmp_path / f"config-{server.url.rsplit(':', 1)[1]}.yaml"
    original = path.read_text(encoding="utf-8")
    config = yaml.safe_load(original)

    def reload_with(quota: dict[str, Any] | None) -> None:
        quotas = config["modules"]["ai"]["tenant_quotas"]
        quotas.pop("comeback", None)
        if quota is not None:
            quotas["comeback"] = quota
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        report = server.client.post("/admin/reload", headers=bearer(ROOT)).json()
        assert report["status"] in ("applied", "unchanged"), report

    add_tenant(server, "comeback")
    try:
        reload_with({"requests": 10})
        assert chat(server, "comeback", "under a budget").status_code == 200
        assert len(totals_rows()) == 1
        reload_with(None)  # no budget: its totals go, nothing would keep them
        assert totals_rows() == []
        for _ in range(2):
            assert chat(server, "comeback", "free").status_code == 200
        reload_with({"requests": 10})
        status = _settled(server, "comeback")
        assert status["requests_used"] == 3
        assert chat(server, "comeback", "counted again").status_code == 200
        assert _settled(server, "comeback")["requests_used"] == 4
    finally:
        path.write_text(original, encoding="utf-8")
        server.client.post("/admin/reload", headers=bearer(ROOT))


# --- kernel pieces the gateway relies on ---------------------------------------------------------


def test_problem_extension_members() -> None:
    refused = Problem(422, "no", kind="policy-violation", extensions={"rule": "max_tokens"})
    document = problem_document(refused, "/x", "r1")
    assert document["rule"] == "max_tokens"
    assert document["status"] == 422
    with pytest.raises(ValueError, match="shadow standard ones"):
        Problem(400, "x", extensions={"status": 200})


def test_streams_needs_a_declared_success() -> None:
    builder = OperationBuilder("m", "POST", "/m/v1/x", "m.x")
    with pytest.raises(OperationError, match="declare the success response before streams"):
        builder.streams()


def test_module_metrics_without_a_platform_registry() -> None:
    metrics = ModuleMetrics("probe", None)
    counter = metrics.counter("calls", "Calls", ("tenant",))
    counter.labels(metrics.tenant("acme")).inc()
    # Metrics disabled: every tenant shares one label, in a registry nothing serves.
    assert metrics.tenant("acme") == "other"
    assert (
        metrics.registry.get_sample_value("hyperspot_probe_calls_total", {"tenant": "other"}) == 1
    )


class _EmptyRegistry:
    async def register(self, ctx: Any, entities: Any, validate: bool = True) -> list[str]:
        return []

    async def list(self, ctx: Any, pattern: str) -> list[dict[str, Any]]:
        return []


def test_discovery_may_find_no_plugin() -> None:
    from hyperspot.modules.ai.contract import AI_PROVIDERS
    from hyperspot.platform.clients import ClientHub

    gateway = PluginGateway(AI_PROVIDERS, "ai")
    found = asyncio.run(gateway.discover(_EmptyRegistry(), ClientHub(), required=False))
    assert found == []
    with pytest.raises(PluginError, match=r"no plugin of hx\.core\.ai\.provider"):
        asyncio.run(gateway.discover(_EmptyRegistry(), ClientHub()))


def test_a_stream_closed_before_its_first_event_is_still_metered() -> None:
    from hyperspot.modules.ai.domain.service import _MeteredEvents

    async def events() -> AsyncIterator[bytes]:
        yield b"data: first"

    async def run(read_first: bool) -> list[str]:
        metered: list[str] = []

        async def left_unread() -> None:
            metered.append("left unread")

        stream = _MeteredEvents(cast(Any, events()), left_unread)
        if read_first:
            assert [piece async for piece in stream] == [b"data: first"]
        await stream.aclose()
        await stream.aclose()
        return metered

    # Never read (the client left after the headers): metered once, by the wrapper.
    assert asyncio.run(run(read_first=False)) == ["left unread"]
    # Read: the events' own ending meters the call, not the wrapper.
    assert asyncio.run(run(read_first=True)) == []


def test_a_failing_producer_ends_the_stream_and_a_disconnect_is_awaited() -> None:
    from hyperspot.platform.gateway.streams import until_disconnected

    closed: list[str] = []
    received: list[str] = []

    async def receive() -> dict[str, Any]:
        # The end of the request body first, then nothing until the client goes.
        if not received:
            received.append("request")
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def producer() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            raise RuntimeError("the producer broke")
        finally:
            closed.append("producer")

    async def consume() -> list[bytes]:
        request = SimpleNamespace(_receive=receive)
        stream = until_disconnected(cast(Any, request), producer(), "t.op")
        return [piece async for piece in stream]

    assert asyncio.run(consume()) == [b"first"]
    assert closed == ["producer"]
    assert received == ["request"]


# --- unit: configuration, periods, whole answers as streams -----------------------------------


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"policy": {"forbidden_patterns": {"Bad Name": "x"}}}, "rule name 'Bad Name'"),
        ({"policy": {"forbidden_patterns": {"lookbehind": "(?<=a)b"}}}, "not an RE2 pattern"),
        ({"routes": {"no spaces": ["demo"]}}, "is not a model id"),
        ({"routes": {"demo-chat": []}}, "name at least one provider"),
    ],
)
def test_configuration_is_checked(section: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    from hyperspot.modules.ai.config import AiConfig

    with pytest.raises(ValidationError, match=re.escape(message)):
        AiConfig.model_validate(section)


def test_tenant_sections_replace_only_what_they_name() -> None:
    from hyperspot.modules.ai.config import AiConfig

    config = AiConfig.model_validate(
        {
            "policy": {"max_tokens": 100, "forbidden_patterns": {"x": "x"}},
            "tenant_policies": {"acme": {"max_tokens": 5}},
            "quota": {"tokens": 1000, "period": "month"},
            "tenant_quotas": {"acme": {"requests": 3}},
        }
    )
    acme = config.policy_for("acme")
    assert (acme.max_tokens, acme.forbidden_patterns) == (5, {"x": "x"})
    assert config.policy_for("globex").max_tokens == 100
    assert config.quota_for("acme").model_dump() == {
        "period": "month",
        "tokens": 1000,
        "requests": 3,
        "reserve_tokens": 4096,
    }
    assert config.quota_for("globex").requests is None


def test_periods_start_and_reset_in_utc() -> None:
    from hyperspot.modules.ai.domain.quota import period_bounds

    now = datetime(2025, 12, 31, 23, 59, 30)
    assert period_bounds("hour", now) == (datetime(2025, 12, 31, 23), datetime(2026, 1, 1))
    assert period_bounds("day", now) == (datetime(2025, 12, 31), datetime(2026, 1, 1))
    assert period_bounds("month", now) == (datetime(2025, 12, 1), datetime(2026, 1, 1))
    assert period_bounds("month", datetime(2025, 2, 14)) == (
        datetime(2025, 2, 1),
        datetime(2025, 3, 1),
    )


def test_budget_totals_move_on_with_the_periods(database: ProvisionedDatabase) -> None:
    from hyperspot.modules.ai.config import AiConfig
    from hyperspot.modules.ai.domain.service import AiService, _Call, _Reservation
    from hyperspot.modules.ai.infra.storage import MIGRATIONS, define_entities
    from hyperspot.platform.config import DatabaseSettings
    from hyperspot.platform.db import PlatformDatabase, ScopedSession
    from hyperspot.platform.db.migrations import MigrationRunner
    from hyperspot.platform.security import SecurityContext

    MigrationRunner(database.url, [("ai", MIGRATIONS)]).up()
    db = PlatformDatabase(DatabaseSettings(pool_size=1), database.url.url)
    entities = define_entities(db.schema)
    db.map_entities()
    service = AiService(db, entities, AiConfig(), cast(Any, None), ModuleMetrics("ai", None))
    acme = SecurityContext(subject="ann", tenant_id="acme")

    def settle(at: datetime, call: _Call) -> dict[str, Any]:
        def work(session: ScopedSession) -> dict[str, Any]:
            totals = service._totals(session, at)
            service._settle(totals, call)
            return cast(dict[str, Any], totals.to_dict())

        return asyncio.run(db.run(acme, work))

    def used(admitted: datetime, tokens: int, **extra: Any) -> _Call:
        return _Call(acme, "m", "chat", 0.0, admitted_at=admitted, tokens_in=tokens, **extra)

    five, six = datetime(2026, 11, 26, 5, 59, 50), datetime(2026, 11, 26, 6, 0, 10)
    try:
        first = settle(five, used(five, 7))
        assert (first["hour_tokens"], first["day_tokens"], first["day_requests"]) == (7, 7, 1)
        # Admitted at 5:59, ended at 6:00: the new hour starts empty, the day counts it.
        second = settle(six, used(five, 5))
        assert (second["hour_start"], second["hour_tokens"]) == (datetime(2026, 11, 26, 6), 0)
        assert (second["day_tokens"], second["day_requests"], second["month_tokens"]) == (12, 2, 12)
        # A call's reservation (100 tokens already added to the day) becomes what it used (4).
        held = _Reservation("day", datetime(2026, 11, 26), second["epoch"], 100)
        asyncio.run(db.run(acme, lambda session: service._totals(session, six).set(day_tokens=112)))
        third = settle(six, used(six, 4, reservation=held, outcome="ok"))
        assert (third["day_tokens"], third["day_requests"], third["hour_tokens"]) == (16, 2, 4)
        # A reservation from before the row was made again (another epoch) is not taken back.
        stale = _Reservation("day", datetime(2026, 11, 26), "another-epoch", 100)
        fourth = settle(six, used(six, 4, reservation=stale))
        assert (fourth["day_tokens"], fourth["day_requests"]) == (20, 3)
        # A refusal is not billed and used nothing: the totals stay as they were.
        refused = settle(six, used(six, 0, outcome="quota"))
        assert refused == fourth
    finally:
        db.close()


def test_a_whole_answer_streams_as_two_chunks() -> None:
    from hyperspot.modules.ai.contract import AssistantMessage, ChatChoice, ChatCompletion, Usage
    from hyperspot.modules.ai.domain.service import _as_chunks

    completion = ChatCompletion(
        id="c1",
        created=1,
        model="m",
        choices=[ChatChoice(message=AssistantMessage(content="hi there"), finish_reason="length")],
        usage=Usage(prompt_tokens=2, completion_tokens=2, total_tokens=4),
    )
    first, last = _as_chunks(completion)
    assert first.choices[0].delta.content == "hi there"
    assert first.choices[0].delta.role == "assistant"
    assert last.choices[0].finish_reason == "length"
    assert last.usage == completion.usage
