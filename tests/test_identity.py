"""The kernel's identity pieces: permission catalogue, built-in roles, acting in another tenant."""

from __future__ import annotations

import asyncio
import logging

import pytest
from conftest import Launcher, bearer, secured_config

from hyperspot.platform.errors import OperationError
from hyperspot.platform.identity import (
    MEMBER,
    TENANT_ADMIN,
    AccessDeniedError,
    CredentialRejectedError,
    Permission,
    PermissionCatalogue,
    Principal,
    RequestOrigin,
    StaticIdentityResolver,
    build_context,
)
from hyperspot.sandbox.databases import ProvisionedDatabase

CATALOGUE = PermissionCatalogue(
    [
        ("notes", Permission("notes:read", "Read notes", member=True)),
        ("notes", Permission("notes:purge", "Purge notes")),
        ("platform", Permission("platform:observe", "See all tenants")),
    ]
)
ORIGIN = RequestOrigin(client="127.0.0.1", request_id="r1", method="GET", path="/x")


def principal(tenant: str, *roles: str) -> Principal:
    return Principal("ann", tenant, frozenset(roles), "t1", "token")


def test_catalogue_and_builtin_roles() -> None:
    assert CATALOGUE.builtin(TENANT_ADMIN) == frozenset({"notes:read", "notes:purge"})
    assert CATALOGUE.builtin(MEMBER) == frozenset({"notes:read"})
    assert CATALOGUE.builtin("editor") is None
    assert CATALOGUE.unknown(["notes:read", "notes:fly"]) == ["notes:fly"]
    assert "notes:read" in CATALOGUE
    with pytest.raises(OperationError, match="declared twice: by 'notes' and 'other'"):
        PermissionCatalogue([("notes", Permission("a:b", "x")), ("other", Permission("a:b", "y"))])
    with pytest.raises(OperationError, match="must look like 'resource:action'"):
        Permission("Notes.Read", "bad")


def test_only_root_administrators_act_in_other_tenants() -> None:
    admin = build_context(
        principal("root", TENANT_ADMIN),
        frozenset({"x:y"}),
        catalogue=CATALOGUE,
        root_tenant="root",
        act_in="acme",
    )
    assert (admin.tenant_id, admin.home_tenant, admin.platform_admin) == ("acme", "root", True)
    assert admin.acting_in_other_tenant and admin.visible_tenants == {"acme"}
    # Platform permissions: platform administrators only, whatever a role says.
    assert admin.permissions == {"x:y", "platform:observe"}
    smuggled = build_context(
        principal("acme", TENANT_ADMIN),
        frozenset({"platform:observe", "notes:read"}),
        catalogue=CATALOGUE,
        root_tenant="root",
        act_in=None,
    )
    assert smuggled.permissions == {"notes:read"}
    same = build_context(
        principal("acme", MEMBER),
        frozenset(),
        catalogue=CATALOGUE,
        root_tenant="root",
        act_in="acme",
    )
    assert not same.acting_in_other_tenant
    for who in (principal("acme", TENANT_ADMIN), principal("root", MEMBER)):
        with pytest.raises(AccessDeniedError, match="only platform administrators"):
            build_context(who, frozenset(), catalogue=CATALOGUE, root_tenant="root", act_in="other")


def test_static_resolver_gives_builtin_roles_and_logs_acts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    resolver = StaticIdentityResolver(CATALOGUE, "root")
    member = asyncio.run(resolver.resolve(principal("acme", MEMBER, "editor"), None, ORIGIN))
    assert member.permissions == {"notes:read"}
    with caplog.at_level(logging.WARNING, logger="hyperspot.auth"):
        acting = asyncio.run(resolver.resolve(principal("root", TENANT_ADMIN), "acme", ORIGIN))
    assert acting.tenant_id == "acme"
    assert "acts in tenant 'acme' (GET /x)" in caplog.text
    with pytest.raises(CredentialRejectedError, match="'access' module"):
        asyncio.run(resolver.verify_api_key("hsk_acme_x_y"))


def test_without_the_access_module_tokens_get_builtin_roles(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    server = launcher.start(
        secured_config(database.url.url, {"modules": {"access": {"enabled": False}}})
    )
    client = server.client
    member = bearer("acme", "ann", ("member",))
    assert client.post("/notes/v1/notes", json={"title": "t"}, headers=member).status_code == 201
    assert client.get("/notes/v1/notes", headers=bearer("acme", "bob", ())).status_code == 403
    spoof = client.get("/notes/v1/notes", headers={**member, "X-Tenant-Id": "other"})
    assert spoof.status_code == 403
    as_root = client.get("/notes/v1/notes", headers={**bearer("root"), "X-Tenant-Id": "acme"})
    assert [n["title"] for n in as_root.json()["items"]] == ["t"]
    key = client.get("/notes/v1/notes", headers={"Authorization": "Bearer hsk_acme_1_2"})
    assert key.status_code == 401
    assert "platform administrator 'admin-of-root' acts in tenant 'acme'" in server.log()
