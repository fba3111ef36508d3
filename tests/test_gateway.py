"""The REST gateway over real HTTP: problem+json for every error, request ids, CORS, docs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Launcher, Server, probe_config
from openapi_spec_validator import validate

PROBLEM = "application/problem+json"


@pytest.fixture
def server(launcher: Launcher, tmp_path: Path) -> Server:
    config = probe_config(tmp_path / "events.log")
    config["server"] = {"max_body_bytes": 1024, "cors": {"allow_origins": ["https://app.example"]}}
    return launcher.start(config)


def assert_problem(response: object, status: int, *, detail_has: str = "") -> dict[str, object]:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert str(body["type"]).startswith("https://hyperspot.dev/problems/")
    assert body["title"] and "detail" in body
    assert body["instance"] == response.request.url.path
    assert body["request_id"] == response.headers["x-request-id"]
    assert detail_has in str(body["detail"])
    return body


def test_module_operations_answer(server: Server) -> None:
    assert server.client.get("/hello/v1/greetings/fr", params={"name": "Ann"}).json() == {
        "language": "fr",
        "message": "Bonjour, Ann !",
    }
    composed = server.client.post(
        "/hello/v1/greetings", json={"names": ["Ann", "Bo", "Cy"], "language": "de"}
    )
    assert composed.json()["message"] == "Hallo, Ann, Bo und Cy!"
    languages = server.client.get("/hello/v1/languages").json()["items"]
    assert {"code": "en", "name": "English"} in languages


def test_unknown_route_is_404(server: Server) -> None:
    assert_problem(server.client.get("/no/such/thing"), 404)


def test_handler_404_carries_detail(server: Server) -> None:
    assert_problem(
        server.client.get("/hello/v1/greetings/xx"), 404, detail_has="no greeting in language 'xx'"
    )


def test_wrong_method_is_405_with_allow(server: Server) -> None:
    response = server.client.delete("/hello/v1/languages")
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, OPTIONS"


def test_unacceptable_accept_is_406(server: Server) -> None:
    assert_problem(server.client.get("/hello/v1/languages", headers={"Accept": "text/html"}), 406)
    problem_ok = server.client.get("/hello/v1/languages", headers={"Accept": "application/json"})
    assert problem_ok.status_code == 200


def test_oversize_body_is_413(server: Server) -> None:
    response = server.client.post("/alpha/v1/echo", json={"text": "x" * 2000})
    assert_problem(response, 413, detail_has="1024 bytes")


def test_oversize_chunked_body_is_413(server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b'{"text": "' + b"x" * 100

    response = server.client.post(
        "/alpha/v1/echo",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 413)


def test_malformed_json_is_400(server: Server) -> None:
    response = server.client.post(
        "/alpha/v1/echo", content=b'{"text": ', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, detail_has="not valid JSON")


def test_invalid_body_is_400_listing_fields(server: Server) -> None:
    response = server.client.post("/alpha/v1/echo", json={"count": "many"})
    body = assert_problem(response, 400)
    fields = {error["field"] for error in body["errors"]}  # type: ignore[attr-defined]
    assert fields == {"body.text", "body.count"}


def test_invalid_query_and_path_are_400(server: Server) -> None:
    body = assert_problem(server.client.get("/alpha/v1/slow", params={"ms": "-5"}), 400)
    assert body["errors"] == [
        {"field": "query.ms", "message": "Input should be greater than or equal to 0"}
    ]
    body = assert_problem(server.client.get("/alpha/v1/slow", params={"sleep": "1"}), 400)
    assert body["errors"] == [{"field": "query.sleep", "message": "unknown parameter"}]
    body = assert_problem(server.client.get("/hello/v1/greetings/french"), 400)
    assert body["errors"][0]["field"] == "path.language"  # type: ignore[index]


def test_non_json_body_is_415(server: Server) -> None:
    response = server.client.post(
        "/alpha/v1/echo", content=b"text=hi", headers={"content-type": "text/plain"}
    )
    assert_problem(response, 415)


def test_unhandled_exception_is_500_without_internals(server: Server) -> None:
    response = server.client.get("/alpha/v1/boom")
    body = assert_problem(response, 500)
    assert "hunter2" not in response.text and "Traceback" not in response.text
    assert body["detail"] == "The server could not complete the request."
    # The log keeps the traceback for operators, tagged with the request id.
    log = server.log()
    assert f"[{body['request_id']}] unhandled error in GET /alpha/v1/boom" in log
    assert "RuntimeError: secret internals" in log


def test_protected_operation_without_credential_is_401(server: Server) -> None:
    response = server.client.get("/alpha/v1/protected")
    assert_problem(response, 401, detail_has="alpha:read")
    assert response.headers["www-authenticate"] == 'Bearer realm="hyperspot"'


def test_request_id_is_kept_when_valid_and_replaced_when_not(server: Server) -> None:
    kept = server.client.get("/healthz", headers={"X-Request-Id": "trace-abc.123"})
    assert kept.headers["x-request-id"] == "trace-abc.123"
    replaced = server.client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert replaced.headers["x-request-id"] != "bad id\twith spaces"
    assert len(replaced.headers["x-request-id"]) == 32
    failing = server.client.get("/no/where", headers={"X-Request-Id": "trace-404"})
    assert failing.json()["request_id"] == "trace-404"
    # The text format: "[<request id> trace=<trace id prefix> ...] <message>".
    assert re.search(r"\[trace-abc\.123[^\]]*\] GET /healthz 200", server.log())


def test_cors_follows_config(server: Server) -> None:
    allowed = server.client.get("/healthz", headers={"Origin": "https://app.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
    other = server.client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    preflight = server.client.options(
        "/alpha/v1/echo",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"


def test_openapi_document_is_valid_and_complete(server: Server) -> None:
    document = server.client.get("/openapi.json").json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    echo = document["paths"]["/alpha/v1/echo"]["post"]
    assert echo["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Echo"
    }
    assert set(echo["responses"]) >= {"200", "400", "413", "415", "406", "500"}
    protected = document["paths"]["/alpha/v1/protected"]["get"]
    assert protected["x-hyperspot-permission"] == "alpha:read"
    assert protected["security"] == [{"bearerAuth": []}]
    slow = document["paths"]["/alpha/v1/slow"]["get"]
    assert slow["parameters"][0]["name"] == "ms" and slow["parameters"][0]["in"] == "query"
    greeting = document["paths"]["/hello/v1/greetings/{language}"]["get"]
    assert greeting["parameters"][0] == {
        "name": "language",
        "in": "path",
        "required": True,
        "schema": {"pattern": "^[a-z]{2}$", "title": "Language", "type": "string"},
        "description": "ISO 639-1 language code.",
    }


def test_docs_render_from_local_assets(server: Server) -> None:
    page = server.client.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http://" not in page.text and "https://" not in page.text  # nothing from the internet
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js"):
        response = server.client.get(f"/docs/assets/{asset}")
        assert response.status_code == 200 and len(response.content) > 10_000
    assert_problem(server.client.get("/docs/assets/..%2Fsecrets"), 404)


def test_health_endpoints(server: Server) -> None:
    assert server.client.get("/healthz").json() == {"status": "alive"}
    health = server.client.get("/health").json()
    assert (
        health["status"] == "ok"
        and health["version"]
        == json.loads(server.client.get("/openapi.json").text)["info"]["version"]
    )
    assert health["uptime_s"] >= 0


def test_repeated_and_list_query_parameters(server: Server) -> None:
    repeated = server.client.get("/alpha/v1/slow", params=[("ms", "1"), ("ms", "2")])
    assert repeated.json() == {"slept_ms": 2, "tags": []}
    one = server.client.get("/alpha/v1/slow", params={"tag": "x"})
    assert one.json()["tags"] == ["x"]
    several = server.client.get("/alpha/v1/slow", params=[("tag", "x"), ("tag", "y")])
    assert several.json()["tags"] == ["x", "y"]
