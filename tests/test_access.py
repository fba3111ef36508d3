"""Roles, delegation down the tenant tree, API keys, suspension and development mode, end to end."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from conftest import ROOT, Launcher, Server, add_tenant, bearer, run_cli, secured_config
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from hyperspot.sandbox.databases import ProvisionedDatabase


@pytest.fixture
def server(launcher: Launcher, database: ProvisionedDatabase) -> Server:
    started = launcher.start(secured_config(database.url.url))
    add_tenant(started, "parent")
    add_tenant(started, "kid", parent="parent")
    return started


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def test_builtin_roles_and_me(server: Server) -> None:
    client = server.client
    member = _ok(client.get("/access/v1/me", headers=bearer("parent", "ann", ("member",))))
    assert member["permissions"] == ["ai:use", "notes:read", "notes:write"]
    assert member["platform_admin"] is False
    admin = _ok(client.get("/access/v1/me", headers=bearer("parent")))
    assert {"roles:manage", "tenants:manage", "audit:read"} <= set(admin["permissions"])
    assert _ok(client.get("/access/v1/me", headers=bearer(ROOT)))["platform_admin"] is True
    unknown = client.get("/access/v1/me", headers=bearer("nowhere"))
    assert unknown.status_code == 403
    assert unknown.json()["detail"] == "tenant 'nowhere' does not exist"


def test_a_parent_administers_its_child(server: Server) -> None:
    client, parent = server.client, bearer("parent")
    role = {"name": "reader", "permissions": ["notes:read"]}
    _ok(client.post("/access/v1/tenants/kid/roles", json=role, headers=parent), 201)
    assignment = {"subject": "kim", "role": "reader"}
    _ok(client.post("/access/v1/tenants/kid/assignments", json=assignment, headers=parent), 201)
    # kim's token carries no role: the assignment in the kid tenant gives notes:read.
    kim = bearer("kid", "kim", ())
    assert _ok(client.get("/notes/v1/notes", headers=kim)) == {"items": [], "next_cursor": None}
    assert client.post("/notes/v1/notes", json={"title": "x"}, headers=kim).status_code == 403
    listed = _ok(client.get("/access/v1/tenants/kid/assignments", headers=parent))["items"]
    assert [(a["subject"], a["role"], a["created_by"]) for a in listed] == [
        ("kim", "reader", "parent/admin-of-parent")
    ]
    _ok(client.delete(f"/access/v1/tenants/kid/assignments/{listed[0]['id']}", headers=parent), 204)
    assert client.get("/notes/v1/notes", headers=kim).status_code == 403


def test_a_child_cannot_touch_its_parent(server: Server) -> None:
    client, kid = server.client, bearer("kid")
    role = {"name": "sneaky", "permissions": ["notes:read"]}
    attempts = [
        client.get("/access/v1/tenants/parent/roles", headers=kid),
        client.post("/access/v1/tenants/parent/roles", json=role, headers=kid),
        client.post(
            "/access/v1/tenants/parent/assignments",
            json={"subject": "admin-of-kid", "role": "tenant-admin"},
            headers=kid,
        ),
        client.get("/tenants/v1/tenants/parent", headers=kid),
        client.patch("/tenants/v1/tenants/parent", json={"name": "Mine"}, headers=kid),
        client.post("/tenants/v1/tenants/parent/suspend", headers=kid),
        client.delete("/tenants/v1/tenants/parent", headers=kid),
    ]
    assert [r.status_code for r in attempts] == [404] * 7
    # Its own tenant it sees, but cannot suspend.
    assert client.post("/tenants/v1/tenants/kid/suspend", headers=kid).status_code == 403
    tenants = _ok(client.get("/tenants/v1/tenants", headers=kid))["items"]
    assert [t["id"] for t in tenants] == ["kid"]


def test_no_escalation(server: Server) -> None:
    client, parent = server.client, bearer("parent")
    manager = {"name": "role-manager", "permissions": ["roles:manage", "roles:read", "notes:read"]}
    _ok(client.post("/access/v1/tenants/parent/roles", json=manager, headers=parent), 201)
    reader = {"name": "reader", "permissions": ["notes:read"]}
    _ok(client.post("/access/v1/tenants/parent/roles", json=reader, headers=parent), 201)
    delegate = bearer("parent", "dee", ("role-manager",))

    def refused(response: Any) -> str:
        assert response.status_code == 403, response.text
        detail: str = response.json()["detail"]
        return detail

    writer = {"name": "writer", "permissions": ["notes:write"]}
    assert "notes:write" in refused(
        client.post("/access/v1/tenants/parent/roles", json=writer, headers=delegate)
    )
    for role in ("tenant-admin", "member"):
        refused(
            client.post(
                "/access/v1/tenants/parent/assignments",
                json={"subject": "dee", "role": role},
                headers=delegate,
            )
        )
    grow = {"permissions": ["roles:manage", "roles:read", "notes:read", "apikeys:manage"]}
    assert "apikeys:manage" in refused(
        client.patch("/access/v1/tenants/parent/roles/role-manager", json=grow, headers=delegate)
    )
    # ... and through the child tenant, delegation does not widen rights either.
    refused(
        client.post(
            "/access/v1/tenants/kid/assignments",
            json={"subject": "dee", "role": "tenant-admin"},
            headers=delegate,
        )
    )
    # What the delegate holds, it may pass on.
    _ok(
        client.post(
            "/access/v1/tenants/parent/assignments",
            json={"subject": "eve", "role": "reader"},
            headers=delegate,
        ),
        201,
    )
    assert client.get("/notes/v1/notes", headers=bearer("parent", "eve", ())).status_code == 200
    me = _ok(client.get("/access/v1/me", headers=delegate))
    assert "notes:write" not in me["permissions"]
    # Every refused escalation is in the audit log.
    events = _ok(client.get("/audit/v1/events", headers=parent))["items"]
    denied = [e for e in events if e["result"] == "denied"]
    assert len(denied) >= 4
    assert all(e["actor"] == "dee" for e in denied)


def test_role_definitions_are_checked(server: Server) -> None:
    client, parent = server.client, bearer("parent")
    unknown = {"name": "odd", "permissions": ["notes:fly"]}
    response = client.post("/access/v1/tenants/parent/roles", json=unknown, headers=parent)
    assert response.status_code == 422
    assert response.json()["detail"] == "no such permission: notes:fly"
    builtin = {"name": "member", "permissions": []}
    assert (
        client.post("/access/v1/tenants/parent/roles", json=builtin, headers=parent).status_code
        == 409
    )
    assert (
        client.delete("/access/v1/tenants/parent/roles/member", headers=parent).status_code == 409
    )
    _ok(
        client.post(
            "/access/v1/tenants/parent/roles",
            json={"name": "reader", "permissions": ["notes:read"]},
            headers=parent,
        ),
        201,
    )
    _ok(
        client.post(
            "/access/v1/tenants/parent/assignments",
            json={"subject": "ann", "role": "reader"},
            headers=parent,
        ),
        201,
    )
    in_use = client.delete("/access/v1/tenants/parent/roles/reader", headers=parent)
    assert in_use.status_code == 409
    roles = _ok(client.get("/access/v1/tenants/parent/roles", headers=parent))["items"]
    assert [r["name"] for r in roles] == ["tenant-admin", "member", "reader"]
    catalogue = _ok(client.get("/access/v1/permissions", headers=parent))["items"]
    assert {
        "name": "notes:read",
        "description": "Read and list the tenant's notes",
        "module": "notes",
        "member": True,
    } in catalogue


def test_api_keys_are_shown_once_hashed_and_revocable(server: Server) -> None:
    client, parent = server.client, bearer("parent")
    created = _ok(
        client.post(
            "/access/v1/api-keys", json={"name": "ci", "roles": ["member"]}, headers=parent
        ),
        201,
    )
    key = created["key"]
    assert key.startswith(f"hsk_parent_{created['id']}_")
    listed = _ok(client.get("/access/v1/api-keys", headers=parent))["items"]
    assert [k["name"] for k in listed] == ["ci"]
    assert key not in str(listed) and "secret_hash" not in listed[0]
    as_key = {"Authorization": f"Bearer {key}"}
    me = _ok(client.get("/access/v1/me", headers=as_key))
    assert (me["subject"], me["tenant_id"], me["roles"]) == ("api-key:ci", "parent", ["member"])
    _ok(client.post("/notes/v1/notes", json={"title": "from CI"}, headers=as_key), 201)
    # Tampering: another secret, or the key moved to another tenant.
    wrong = key[: key.rindex("_") + 1] + "guessed"
    assert (
        client.get("/access/v1/me", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
    )
    moved = key.replace("hsk_parent_", "hsk_kid_")
    assert (
        client.get("/access/v1/me", headers={"Authorization": f"Bearer {moved}"}).status_code == 401
    )
    # A key cannot hold more than its creator.
    kid_member = bearer("kid", "kat", ("member",))
    too_much = {"name": "x", "roles": ["tenant-admin"]}
    assert client.post("/access/v1/api-keys", json=too_much, headers=kid_member).status_code == 403
    _ok(client.delete(f"/access/v1/api-keys/{created['id']}", headers=parent), 204)
    revoked = client.get("/access/v1/me", headers=as_key)
    assert revoked.status_code == 401
    assert revoked.json()["detail"] == "the API key is not valid (unknown, malformed or revoked)"
    assert key not in server.log()


def test_suspended_tenants_and_their_children_are_refused(server: Server) -> None:
    client = server.client
    _ok(client.post("/tenants/v1/tenants/parent/suspend", headers=bearer(ROOT)))
    for tenant in ("parent", "kid"):
        response = client.get("/notes/v1/notes", headers=bearer(tenant, roles=("member",)))
        assert response.status_code == 403
        assert "suspended" in response.json()["detail"]
    _ok(client.post("/tenants/v1/tenants/parent/resume", headers=bearer(ROOT)))
    assert (
        client.get("/notes/v1/notes", headers=bearer("kid", roles=("member",))).status_code == 200
    )


def test_development_mode_is_explicit_loud_and_loopback_only(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    dev = {"database": {"url": database.url.url}, "auth": {"mode": "dev"}}
    server = launcher.start(dev)
    me = _ok(server.client.get("/access/v1/me"))
    assert (me["subject"], me["tenant_id"], me["platform_admin"]) == ("developer", ROOT, True)
    assert "DEVELOPMENT MODE: authentication is OFF" in server.log()
    path, _ = launcher.config({**dev, "server": {"host": "0.0.0.0"}})
    refused = run_cli("up", "--config", str(path))
    assert refused.returncode == 1
    assert "development mode serves only loopback addresses" in refused.stderr
    assert "Traceback" not in refused.stderr
    # Commands that only inspect do not serve: they work with that configuration.
    assert run_cli("openapi", "--config", str(path)).returncode == 0


def test_rs256_tokens_from_a_jwks_file_end_to_end(
    launcher: Launcher, database: ProvisionedDatabase, tmp_path: Path
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "k1", "alg": "RS256"}]}))
    config = {"database": {"url": database.url.url}, "auth": {"jwt": {"jwks_file": str(jwks)}}}
    server = launcher.start(config)
    now = int(time.time())
    claims = {"sub": "ann", "tenant": ROOT, "roles": ["member"], "exp": now + 60}
    claims |= {"iss": "hyperspot", "aud": "hyperspot"}
    token = jwt.encode(claims, private, algorithm="RS256", headers={"kid": "k1"})
    me = _ok(server.client.get("/access/v1/me", headers={"Authorization": f"Bearer {token}"}))
    assert (me["subject"], me["tenant_id"]) == ("ann", ROOT)
    # The HS256 test secret is not configured here: such tokens are refused, not crashed on.
    refused = server.client.get("/access/v1/me", headers=bearer(ROOT))
    assert refused.status_code == 401
