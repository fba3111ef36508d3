"""Every secured operation of the OpenAPI document, attacked with bad and foreign credentials.

The operations come from the running server's ``/openapi.json``, not from a list here: a new
endpoint is covered without editing this file. Only two things are per resource kind: how to make
an object for a path parameter (``SEEDERS``), and the request body, which is the example each body
model must carry in the document.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from conftest import (
    ROOT,
    TEST_ENGINE,
    TEST_SECRET,
    Launcher,
    Server,
    add_tenant,
    bearer,
    secured_config,
)

from hyperspot.sandbox.databases import provision

VICTIM, ATTACKER = "alpha", "beta"
MARKER = "alpha-marker"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.spec["operationId"])

    @property
    def permission(self) -> str | None:
        return self.spec.get("x-hyperspot-permission")

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"\{([a-z_]+)\}", self.path)

    def declares(self, status: int) -> bool:
        return str(status) in self.spec["responses"]


@dataclass
class World:
    server: Server
    document: dict[str, Any]
    seeds: dict[str, str]
    tokens: list[str]

    @property
    def operations(self) -> list[Operation]:
        return [
            Operation(method.upper(), path, spec)
            for path, methods in self.document["paths"].items()
            for method, spec in methods.items()
            if "security" in spec
        ]

    def url(self, op: Operation) -> str:
        missing = [name for name in op.path_params if name not in self.seeds]
        assert not missing, f"{op.id}: add a seeder for path parameter(s) {missing} to SEEDERS"
        return op.path.format(**{name: self.seeds[name] for name in op.path_params})

    def body(self, op: Operation) -> Any:
        if "requestBody" not in op.spec:
            return None
        ref = op.spec["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = self.document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        assert schema.get("examples"), f"{op.id}: give the body model {ref} an example"
        return schema["examples"][0]

    def call(self, op: Operation, headers: dict[str, str]) -> Any:
        self.tokens.append(headers.get("Authorization", ""))
        response = self.server.client.request(
            op.method, self.url(op), json=self.body(op), headers=headers
        )
        assert response.status_code < 500, f"{op.id}: {response.status_code} {response.text}"
        for token in self.tokens:
            secret = token.removeprefix("Bearer ")
            assert not secret or secret not in response.text, f"{op.id} echoed a credential"
        return response


# Secrets the server showed once (API keys): they must never appear again, in logs included.
SHOWN_SECRETS: list[str] = []


def _created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    if "key" in body:
        SHOWN_SECRETS.append(body["key"])
    return body


# The GTS registry is one for all tenants (written by platform administrators only): its entities
# are nobody's tenant data, so another tenant's administrator may read them, never change them.
GLOBAL_MODULES = {"types_registry"}
GLOBAL_TYPE_ID = "gts.x.matrix.shared.order.v1~"
GLOBAL_TYPE: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "$id": "gts://" + GLOBAL_TYPE_ID,
    "type": "object",
    "properties": {"id": {"type": "string"}},
}
GLOBAL_SEEDS = {"gts_id", "gts_type"}


# How to make, in the victim tenant, the object a path parameter names.
SEEDERS: dict[str, Callable[[Server, dict[str, str]], str]] = {
    "tenant_id": lambda server, headers: VICTIM,
    "note_id": lambda server, headers: _created(
        server.client.post("/notes/v1/notes", json={"title": MARKER}, headers=headers)
    )["id"],
    "role": lambda server, headers: _created(
        server.client.post(
            f"/access/v1/tenants/{VICTIM}/roles",
            json={"name": f"{MARKER}-role", "permissions": ["notes:read"]},
            headers=headers,
        )
    )["name"],
    "assignment_id": lambda server, headers: _created(
        server.client.post(
            f"/access/v1/tenants/{VICTIM}/assignments",
            json={"subject": f"{MARKER}-user", "role": "member"},
            headers=headers,
        )
    )["id"],
    "trace_id": lambda server, headers: server.client.get(
        "/notes/v1/notes", headers=headers
    ).headers["X-Trace-Id"],
    "key_id": lambda server, headers: _created(
        server.client.post(
            "/access/v1/api-keys", json={"name": MARKER, "roles": ["member"]}, headers=headers
        )
    )["id"],
    "gts_id": lambda server, headers: _registered(server, GLOBAL_TYPE),
    "gts_type": lambda server, headers: _registered(server, GLOBAL_TYPE),
}


def _registered(server: Server, content: dict[str, Any]) -> str:
    response = server.client.post("/gts/entities", json=content, headers=bearer(ROOT))
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


# The same attacks with the notes module in a process of its own: its operations are forwarded
# by the platform's gateway, which must decide access exactly as for its own.
PLACEMENTS = {"local": {}, "oop": {"modules": {"notes": {"runtime": "oop"}}}}


@pytest.fixture(
    scope="module",
    params=["local", pytest.param("oop", marks=pytest.mark.slow)],
)
def world(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("matrix")
    database = provision(TEST_ENGINE, folder=folder)
    launcher = Launcher(folder)
    try:
        server = launcher.start(secured_config(database.url.url, PLACEMENTS[request.param]))
        notes = next(
            m for m in server.client.get("/health").json()["modules"] if m["name"] == "notes"
        )
        assert notes["detail"].startswith("oop: process") is (request.param == "oop"), notes
        add_tenant(server, VICTIM)
        add_tenant(server, ATTACKER)
        # A child of the victim: the attacker's admin must not reach it either.
        add_tenant(server, f"{VICTIM}-child", parent=VICTIM)
        admin = bearer(VICTIM)
        seeds = {name: seed(server, admin) for name, seed in SEEDERS.items()}
        document = server.client.get("/openapi.json").json()
        yield World(server, document, seeds, [])
    finally:
        launcher.close()
        database.drop()


def _expired() -> dict[str, str]:
    return bearer(VICTIM, ttl_s=-600)


def _wrong_key() -> dict[str, str]:
    return bearer(VICTIM, secret="not-the-server-secret-0123456789abcdef")


def _none_alg() -> dict[str, str]:
    now = int(time.time())
    claims = {
        "sub": "mallory",
        "tenant": VICTIM,
        "roles": ["tenant-admin"],
        "iss": "hyperspot",
        "aud": "hyperspot",
        "exp": now + 600,
    }
    return {"Authorization": f"Bearer {jwt.encode(claims, '', algorithm='none')}"}


def _forged_claims() -> dict[str, str]:
    # A valid token with its signature cut off.
    header, payload, _ = bearer(VICTIM)["Authorization"].removeprefix("Bearer ").split(".")
    return {"Authorization": f"Bearer {header}.{payload}."}


BAD_CREDENTIALS: dict[str, Callable[[], dict[str, str]]] = {
    "no credential": dict,
    "expired token": _expired,
    "token signed with another key": _wrong_key,
    "alg=none token": _none_alg,
    "token without signature": _forged_claims,
    "garbage": lambda: {"Authorization": "Bearer not-a-token"},
    "unknown API key": lambda: {"Authorization": f"Bearer hsk_{VICTIM}_{'0' * 32}_guess"},
    "wrong scheme": lambda: {"Authorization": f"Basic {TEST_SECRET}"},
}


@pytest.mark.parametrize("credential", sorted(BAD_CREDENTIALS))
def test_bad_credentials_get_401_on_every_secured_operation(world: World, credential: str) -> None:
    assert len(world.operations) >= 15  # the document really lists the secured operations
    for op in world.operations:
        response = world.call(op, BAD_CREDENTIALS[credential]())
        assert response.status_code == 401, f"{op.id}: {response.status_code} {response.text}"
        assert op.declares(401), op.id
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.headers["Content-Type"] == "application/problem+json"


def test_a_role_without_the_permission_gets_403(world: World) -> None:
    powerless = bearer(VICTIM, subject="powerless", roles=())
    checked = 0
    for op in world.operations:
        response = world.call(op, powerless)
        if op.permission is None:  # any credential will do (e.g. "who am I", parse an id)
            # Admitted: answered, or refused for the (absent) query parameters, never 401/403.
            assert response.status_code in (200, 400, 422), op.id
            continue
        assert response.status_code == 403, f"{op.id}: {response.status_code} {response.text}"
        assert op.permission in response.json()["detail"]
        assert op.declares(403), op.id
        checked += 1
    assert checked >= 15


def test_another_tenants_administrator_cannot_reach_the_victims_objects(world: World) -> None:
    attacker = bearer(ATTACKER)
    for op in world.operations:
        response = world.call(op, attacker)
        if (op.permission or "").startswith("platform:"):
            # Every tenant's monitoring data: platform administrators only.
            assert response.status_code == 403, f"{op.id}: {response.status_code}"
        elif op.spec.get("x-hyperspot-module") in GLOBAL_MODULES:
            # Readable by every tenant's administrator; changes are refused.
            if op.permission == "types:write":
                assert response.status_code == 403, f"{op.id}: {response.status_code}"
            else:
                assert response.status_code in (200, 400, 404, 422), f"{op.id}: {response.text}"
            assert MARKER not in response.text, f"{op.id} showed the victim's data"
            for name, seed in world.seeds.items():
                if name not in GLOBAL_SEEDS:
                    assert seed == VICTIM or seed not in response.text, f"{op.id} leaked {seed}"
        elif op.path_params:
            # Another tenant's object is indistinguishable from a missing one.
            assert response.status_code == 404, f"{op.id}: {response.status_code} {response.text}"
            assert op.declares(404), op.id
        else:
            assert response.status_code < 400 or response.status_code in (403, 409, 422), op.id
            assert MARKER not in response.text, f"{op.id} showed the victim's data"
            for seed in world.seeds.values():
                assert seed == VICTIM or seed not in response.text, f"{op.id} leaked {seed}"
    # Nothing of the victim's changed, nor the shared registry.
    admin = bearer(VICTIM)
    client = world.server.client
    shared = client.get(f"/gts/entities/{GLOBAL_TYPE_ID}", headers=bearer(ROOT))
    assert shared.status_code == 200 and shared.json()["content"] == GLOBAL_TYPE, shared.text
    assert (
        client.get(f"/notes/v1/notes/{world.seeds['note_id']}", headers=admin).json()["title"]
        == MARKER
    )
    roles = client.get(f"/access/v1/tenants/{VICTIM}/roles", headers=admin).json()["items"]
    assert any(role["name"] == world.seeds["role"] for role in roles)
    keys = client.get("/access/v1/api-keys", headers=admin).json()["items"]
    assert [k["revoked_at"] for k in keys if k["id"] == world.seeds["key_id"]] == [None]
    assert client.get(f"/tenants/v1/tenants/{VICTIM}", headers=admin).json()["state"] == "active"


def test_acting_in_another_tenant_needs_a_platform_administrator(world: World) -> None:
    client = world.server.client
    spoofed = client.get("/notes/v1/notes", headers={**bearer(ATTACKER), "X-Tenant-Id": VICTIM})
    assert spoofed.status_code == 403
    assert "platform administrators" in spoofed.json()["detail"]
    as_platform = client.get("/notes/v1/notes", headers={**bearer(ROOT), "X-Tenant-Id": VICTIM})
    assert as_platform.status_code == 200
    assert [n["title"] for n in as_platform.json()["items"]] == [MARKER]
    # ... and it is in the victim tenant's audit log, naming the administrator.
    events = client.get("/audit/v1/events", headers=bearer(VICTIM)).json()["items"]
    acts = [e for e in events if e["action"] == "platform.act-in-tenant"]
    assert acts and acts[0]["actor_tenant"] == ROOT and acts[0]["target"] == "GET /notes/v1/notes"


def test_no_log_line_holds_a_credential(world: World) -> None:
    log = world.server.log()
    assert TEST_SECRET not in log
    assert SHOWN_SECRETS
    for key in SHOWN_SECRETS:
        assert key not in log
        # Not even the secret part (hsk_<tenant>_<id>_<secret>: the secret may contain "_").
        assert key.split("_", 3)[3] not in log
    for token in world.tokens:
        secret = token.partition(" ")[2]
        assert not secret or secret not in log
    assert "Traceback" not in log
