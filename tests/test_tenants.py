"""The tenant tree: who sees and manages which tenant, the cached lineage, the root, the CLI.

Runs on the engine named by HYPERSPOT_TEST_DB (sqlite, postgres, mariadb), each test on a fresh
database that is dropped afterwards.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, Launcher, Server, add_tenant, bearer, run_cli, secured_config
from pydantic import ValidationError

from hyperspot.modules.audit.contract import AuditEvent, AuditResult
from hyperspot.modules.audit.domain.service import AuditService
from hyperspot.modules.audit.infra import storage as audit_storage
from hyperspot.modules.tenants.contract import (
    NewTenant,
    Tenant,
    TenantActionDeniedError,
    TenantChanges,
    TenantError,
    TenantExistsError,
    TenantHasChildrenError,
    TenantNotFoundError,
    TenantState,
)
from hyperspot.modules.tenants.domain.service import TenantsService
from hyperspot.modules.tenants.infra import storage as tenants_storage
from hyperspot.platform.config import DatabaseSettings
from hyperspot.platform.db import ListParams, ListQueryError, PlatformDatabase, ScopedSession
from hyperspot.platform.db.migrations import MigrationRunner
from hyperspot.platform.identity import RequestOrigin
from hyperspot.platform.security import SecurityContext
from hyperspot.sandbox.databases import ProvisionedDatabase

ORIGIN = RequestOrigin(client="10.0.0.7", request_id="req-1", method="POST", path="/tenants")


def caller(tenant: str, **extra: Any) -> SecurityContext:
    return SecurityContext(subject=f"admin-of-{tenant}", tenant_id=tenant, **extra)


PLATFORM_ADMIN = caller(ROOT, platform_admin=True)


class Instance:
    """One server instance's audit and tenants services on a shared, migrated database."""

    def __init__(self, database: ProvisionedDatabase, cache_ttl_s: float = 60) -> None:
        MigrationRunner(
            database.url,
            [("audit", audit_storage.MIGRATIONS), ("tenants", tenants_storage.MIGRATIONS)],
        ).up()
        self.db = PlatformDatabase(DatabaseSettings(pool_size=2), database.url.url)
        self.audit = AuditService(self.db, audit_storage.define_entities(self.db.schema))
        self.now = 0.0
        self.tenants = TenantsService(
            self.db,
            tenants_storage.define_entities(self.db.schema),
            self.audit,
            root_tenant=ROOT,
            cache_ttl_s=cache_ttl_s,
            clock=lambda: self.now,
        )
        self.db.map_entities()

    def create(
        self, security: SecurityContext, tenant_id: str, parent: str | None = None
    ) -> Tenant:
        new = NewTenant(id=tenant_id, name=tenant_id.upper(), parent_id=parent)
        return asyncio.run(self.tenants.create(security, new, ORIGIN))

    def get(self, security: SecurityContext, tenant_id: str) -> Tenant:
        return asyncio.run(self.tenants.get(security, tenant_id))

    def ids(self, security: SecurityContext, **params: Any) -> list[str]:
        items, _ = asyncio.run(self.tenants.list(security, ListParams(orderby="id", **params)))
        return [tenant.id for tenant in items]

    def suspend(self, security: SecurityContext, tenant_id: str) -> Tenant:
        return asyncio.run(self.tenants.suspend(security, tenant_id, ORIGIN))

    def resume(self, security: SecurityContext, tenant_id: str) -> Tenant:
        return asyncio.run(self.tenants.resume(security, tenant_id, ORIGIN))

    def delete(self, security: SecurityContext, tenant_id: str) -> None:
        asyncio.run(self.tenants.delete(security, tenant_id, ORIGIN))

    def rename(self, security: SecurityContext, tenant_id: str, name: str) -> Tenant:
        changes = TenantChanges(name=name)
        return asyncio.run(self.tenants.rename(security, tenant_id, changes, ORIGIN))

    def lineage(self, tenant_id: str) -> list[tuple[str, TenantState]]:
        return [(t.id, t.state) for t in asyncio.run(self.tenants.lineage(tenant_id))]

    def events(self, tenant: str) -> list[AuditEvent]:
        events, _ = asyncio.run(self.audit.list(caller(tenant), ListParams(orderby="at")))
        return events


@pytest.fixture
def instance(database: ProvisionedDatabase) -> Iterator[Instance]:
    first = Instance(database)
    yield first
    first.db.close()


@pytest.fixture
def tree(instance: Instance) -> Instance:
    """root -> acme -> acme-eu, and root -> globex."""
    asyncio.run(instance.tenants.ensure_root())
    instance.create(PLATFORM_ADMIN, "acme")
    instance.create(caller("acme"), "acme-eu")
    instance.create(PLATFORM_ADMIN, "globex")
    return instance


# ---- the root -------------------------------------------------------------------------------


def test_the_root_is_created_once(instance: Instance) -> None:
    assert asyncio.run(instance.tenants.ensure_root()) is True
    assert asyncio.run(instance.tenants.ensure_root()) is False
    root = instance.get(PLATFORM_ADMIN, ROOT)
    assert (root.name, root.parent_id, root.state) == ("Root", None, TenantState.ACTIVE)


def test_instances_starting_at_once_create_one_root(
    database: ProvisionedDatabase, instance: Instance
) -> None:
    second = Instance(database)

    async def both() -> list[bool]:
        return list(
            await asyncio.gather(instance.tenants.ensure_root(), second.tenants.ensure_root())
        )

    try:
        assert sorted(asyncio.run(both())) == [False, True]
    finally:
        second.db.close()
    assert instance.ids(PLATFORM_ADMIN) == [ROOT]


def test_losing_the_insert_race_reads_again(
    database: ProvisionedDatabase, instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(instance.tenants.ensure_root())
    second = Instance(database)
    real_get = ScopedSession.get
    calls: list[Any] = []

    def stale_first_read(self: ScopedSession, entity: Any, key: Any) -> Any:
        # The first read misses the root, as if another instance inserted it just after.
        calls.append(key)
        return None if len(calls) == 1 else real_get(self, entity, key)

    monkeypatch.setattr(ScopedSession, "get", stale_first_read)
    try:
        assert asyncio.run(second.tenants.ensure_root()) is False
    finally:
        second.db.close()
    assert calls == [ROOT, ROOT]


# ---- the tree rules -------------------------------------------------------------------------


def test_a_caller_sees_its_tenant_and_those_below_only(tree: Instance) -> None:
    acme, eu = caller("acme"), caller("acme-eu")
    assert tree.get(acme, "acme-eu").parent_id == "acme"
    assert tree.get(acme, "acme").name == "ACME"
    for hidden in ("globex", ROOT, "missing"):
        with pytest.raises(TenantNotFoundError) as found:
            tree.get(acme, hidden)
        # The same answer whether the tenant exists elsewhere or not at all.
        assert str(found.value) == f"no tenant '{hidden}'"
    assert tree.ids(acme) == ["acme", "acme-eu"]
    assert tree.ids(eu) == ["acme-eu"]
    assert tree.ids(PLATFORM_ADMIN) == ["acme", "acme-eu", "globex", ROOT]
    assert tree.ids(caller("nobody")) == []


def test_lists_filter_sort_and_page(tree: Instance) -> None:
    tree.suspend(PLATFORM_ADMIN, "globex")
    assert tree.ids(PLATFORM_ADMIN, filter="state eq 'suspended'") == ["globex"]
    assert tree.ids(PLATFORM_ADMIN, filter="parent_id eq null") == [ROOT]
    assert tree.ids(caller("acme"), filter="startswith(name, 'ACME-')") == ["acme-eu"]
    first, cursor = asyncio.run(
        tree.tenants.list(caller("acme"), ListParams(orderby="name desc", limit=1))
    )
    assert [t.id for t in first] == ["acme-eu"] and cursor is not None
    rest, end = asyncio.run(
        tree.tenants.list(caller("acme"), ListParams(orderby="name desc", limit=1, cursor=cursor))
    )
    assert [t.id for t in rest] == ["acme"] and end is None
    with pytest.raises(ListQueryError, match="unknown field 'tenant_id'"):
        tree.ids(PLATFORM_ADMIN, filter="tenant_id eq 'acme'")


def test_create_under_the_own_subtree_only(tree: Instance) -> None:
    acme = caller("acme")
    made = tree.create(acme, "acme-us")
    assert (made.parent_id, made.state) == ("acme", TenantState.ACTIVE)
    assert tree.create(acme, "acme-eu-1", parent="acme-eu").parent_id == "acme-eu"
    with pytest.raises(TenantNotFoundError, match="no tenant 'globex'"):
        tree.create(acme, "sneaky", parent="globex")
    with pytest.raises(TenantExistsError, match="tenant 'globex' already exists"):
        tree.create(acme, "globex")
    assert tree.lineage("acme-eu-1") == [
        ("acme-eu-1", TenantState.ACTIVE),
        ("acme-eu", TenantState.ACTIVE),
        ("acme", TenantState.ACTIVE),
        (ROOT, TenantState.ACTIVE),
    ]
    with pytest.raises(ValidationError):
        NewTenant(id="Not_An_Id", name="x")
    with pytest.raises(ValidationError):
        NewTenant.model_validate({"id": "ok", "name": "x", "state": "active"})


def test_suspend_and_resume_below_the_own_tenant_only(tree: Instance) -> None:
    acme = caller("acme")
    assert tree.suspend(acme, "acme-eu").state == TenantState.SUSPENDED
    assert tree.resume(acme, "acme-eu").state == TenantState.ACTIVE
    with pytest.raises(TenantActionDeniedError, match="tenant acted in"):
        tree.suspend(acme, "acme")
    with pytest.raises(TenantActionDeniedError, match="root tenant"):
        tree.suspend(PLATFORM_ADMIN, ROOT)
    for elsewhere in ("globex", ROOT):
        with pytest.raises(TenantNotFoundError):
            tree.suspend(acme, elsewhere)
    with pytest.raises(TenantNotFoundError):
        tree.resume(caller("acme-eu"), "acme")
    # A platform administrator acting in acme has acme's rights, not the root's.
    acting = caller("acme", platform_admin=True, home_tenant=ROOT)
    with pytest.raises(TenantActionDeniedError):
        tree.suspend(acting, "acme")
    assert tree.suspend(PLATFORM_ADMIN, "acme").state == TenantState.SUSPENDED


def test_rename_the_own_tenant_and_those_below(tree: Instance) -> None:
    assert tree.rename(caller("acme"), "acme", "  Acme Inc ").name == "Acme Inc"
    assert tree.rename(caller("acme"), "acme-eu", "Acme Europe").name == "Acme Europe"
    assert tree.rename(PLATFORM_ADMIN, ROOT, "Platform").name == "Platform"
    with pytest.raises(TenantNotFoundError):
        tree.rename(caller("acme"), "globex", "Mine")
    with pytest.raises(ValidationError):
        TenantChanges(name="   ")


def test_delete_a_leaf_below_the_own_tenant(tree: Instance) -> None:
    with pytest.raises(TenantHasChildrenError, match="still has child tenants"):
        tree.delete(PLATFORM_ADMIN, "acme")
    with pytest.raises(TenantActionDeniedError):
        tree.delete(caller("acme"), "acme")
    with pytest.raises(TenantActionDeniedError, match="root tenant"):
        tree.delete(PLATFORM_ADMIN, ROOT)
    with pytest.raises(TenantNotFoundError):
        tree.delete(caller("globex"), "acme-eu")
    tree.delete(caller("acme"), "acme-eu")
    with pytest.raises(TenantNotFoundError):
        tree.get(caller("acme"), "acme-eu")
    assert tree.lineage("acme-eu") == []
    tree.delete(PLATFORM_ADMIN, "acme")
    assert tree.ids(PLATFORM_ADMIN) == ["globex", ROOT]


def test_every_administrative_action_is_audited_in_the_callers_tenant(tree: Instance) -> None:
    acme = caller("acme")
    tree.suspend(acme, "acme-eu")
    attempts: list[Callable[[], object]] = [
        lambda: tree.suspend(acme, "acme"),
        lambda: tree.suspend(acme, "globex"),
        lambda: tree.suspend(acme, "missing"),
        lambda: tree.create(acme, "globex"),
    ]
    for attempt in attempts:
        with pytest.raises(TenantError):
            attempt()
    events = [(e.action, e.target, e.result, e.detail) for e in tree.events("acme")]
    assert events == [
        ("tenants.create", "acme-eu", AuditResult.SUCCESS, ""),
        ("tenants.suspend", "acme-eu", AuditResult.SUCCESS, ""),
        (
            "tenants.suspend",
            "acme",
            AuditResult.DENIED,
            "cannot suspend tenant 'acme': it is the tenant acted in; only a tenant above it can",
        ),
        # Foreign and missing tenants are recorded alike: acme's log reveals nothing either.
        ("tenants.suspend", "globex", AuditResult.DENIED, "no tenant 'globex'"),
        ("tenants.suspend", "missing", AuditResult.DENIED, "no tenant 'missing'"),
        ("tenants.create", "globex", AuditResult.FAILURE, "tenant 'globex' already exists"),
    ]
    assert {e.client for e in tree.events("acme")} == {"10.0.0.7"}
    assert [(e.action, e.target) for e in tree.events(ROOT)] == [
        ("tenants.create", "acme"),
        ("tenants.create", "globex"),
    ]
    assert tree.events("globex") == []


def test_concurrent_creates_of_one_id_admit_one(
    database: ProvisionedDatabase, tree: Instance
) -> None:
    second = Instance(database)
    new = NewTenant(id="twin", name="Twin")

    async def both() -> list[Tenant | BaseException]:
        return list(
            await asyncio.gather(
                tree.tenants.create(PLATFORM_ADMIN, new, ORIGIN),
                second.tenants.create(PLATFORM_ADMIN, new, ORIGIN),
                return_exceptions=True,
            )
        )

    try:
        outcomes = asyncio.run(both())
    finally:
        second.db.close()
    assert sorted(type(o).__name__ for o in outcomes) == ["Tenant", "TenantExistsError"]
    results = [(e.action, e.target, e.result) for e in tree.events(ROOT)][-2:]
    assert sorted(results) == [
        ("tenants.create", "twin", AuditResult.FAILURE),
        ("tenants.create", "twin", AuditResult.SUCCESS),
    ]


def test_a_create_losing_the_insert_race_is_a_conflict(
    tree: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_get = ScopedSession.get

    def stale(self: ScopedSession, entity: Any, key: Any) -> Any:
        # The duplicate check misses globex, as if it were inserted just after.
        return None if key == "globex" else real_get(self, entity, key)

    monkeypatch.setattr(ScopedSession, "get", stale)
    with pytest.raises(TenantExistsError, match="tenant 'globex' already exists"):
        tree.create(PLATFORM_ADMIN, "globex")


# ---- the lineage and its cache --------------------------------------------------------------


def test_lineage_is_cached_and_invalidated_by_local_changes(
    database: ProvisionedDatabase, tree: Instance
) -> None:
    active, suspended = TenantState.ACTIVE, TenantState.SUSPENDED
    assert tree.lineage("acme-eu") == [("acme-eu", active), ("acme", active), (ROOT, active)]
    assert tree.lineage("nobody") == []
    assert tree.lineage("Not An Id") == []
    other = Instance(database)  # another server instance on the same database
    try:
        other.suspend(PLATFORM_ADMIN, "acme")
        other.create(PLATFORM_ADMIN, "nobody")
    finally:
        other.db.close()
    # Within the TTL this instance answers from its cache, negative answers included...
    assert tree.lineage("acme-eu")[1] == ("acme", active)
    assert tree.lineage("nobody") == []
    # ...and re-reads once it has passed.
    tree.now += 61
    assert tree.lineage("acme-eu")[1] == ("acme", suspended)
    assert tree.lineage("nobody") == [("nobody", active), (ROOT, active)]
    # A change made here is seen at once, in the lineage of every tenant below it too.
    tree.resume(PLATFORM_ADMIN, "acme")
    assert tree.lineage("acme-eu")[1] == ("acme", active)
    tree.create(PLATFORM_ADMIN, "fresh")
    assert tree.lineage("fresh")[0] == ("fresh", active)


def test_lineage_without_cache_reads_every_time(database: ProvisionedDatabase) -> None:
    uncached = Instance(database, cache_ttl_s=0)
    other = Instance(database)
    try:
        asyncio.run(uncached.tenants.ensure_root())
        assert uncached.lineage("late") == []
        other.create(PLATFORM_ADMIN, "late")
        assert uncached.lineage("late") == [
            ("late", TenantState.ACTIVE),
            (ROOT, TenantState.ACTIVE),
        ]
    finally:
        uncached.db.close()
        other.db.close()


# ---- the CLI --------------------------------------------------------------------------------


def cli_config(tmp_path: Path, database: ProvisionedDatabase) -> Path:
    config = tmp_path / "cli.yaml"
    settings = {"data_dir": str(tmp_path / "data"), "database": {"url": database.url.url}}
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return config


def test_cli_creates_lists_suspends_and_resumes(
    tmp_path: Path, database: ProvisionedDatabase
) -> None:
    config = str(cli_config(tmp_path, database))

    def ok(*args: str) -> str:
        result = run_cli("tenants", *args, "--config", config)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert ok("create", "acme", "--name", "Acme Inc") == "created tenant acme (Acme Inc) under root"
    assert ok("create", "acme-eu", "--name", "Acme EU", "--parent", "acme") == (
        "created tenant acme-eu (Acme EU) under acme"
    )
    assert ok("suspend", "acme") == "suspended tenant acme"
    listed = {t["id"]: (t["parent_id"], t["state"]) for t in json.loads(ok("list", "--json"))}
    assert listed == {
        ROOT: (None, "active"),
        "acme": (ROOT, "suspended"),
        "acme-eu": ("acme", "active"),
    }
    assert ok("resume", "acme") == "resumed tenant acme"
    assert "acme-eu" in ok("list")

    audit = Instance(database)
    try:
        events = audit.events(ROOT)
    finally:
        audit.db.close()
    assert [(e.action, e.target, e.client) for e in events] == [
        ("tenants.create", "acme", "cli"),
        ("tenants.create", "acme-eu", "cli"),
        ("tenants.suspend", "acme", "cli"),
        ("tenants.resume", "acme", "cli"),
    ]
    assert all(e.actor.startswith("cli:") and e.actor_tenant == ROOT for e in events)


def test_cli_errors_are_one_line(tmp_path: Path, database: ProvisionedDatabase) -> None:
    config = str(cli_config(tmp_path, database))
    assert run_cli("tenants", "create", "acme", "--name", "A", "--config", config).returncode == 0
    for args, message in (
        (("suspend", "nope"), "error: no tenant 'nope'"),
        (("resume", "Bad_Id"), "error: invalid tenant id 'Bad_Id'"),
        (("create", "acme", "--name", "Again"), "error: tenant 'acme' already exists"),
        (("create", "x", "--name", "X", "--parent", "nope"), "error: no tenant 'nope'"),
        (("create", "y", "--name", " "), "error: invalid name"),
        (("suspend", ROOT), "error: cannot suspend tenant 'root': it is the root tenant"),
    ):
        result = run_cli("tenants", *args, "--config", config)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith(message), (args, result.stderr)
    bad_root = run_cli(
        "tenants", "list", "--config", config, env={"HYPERSPOT_AUTH__ROOT_TENANT": "Top Tenant"}
    )
    assert bad_root.returncode == 1
    # The runtime also logs a failing module hook; the command's own answer is the last line.
    assert bad_root.stderr.strip().splitlines()[-1] == (
        "error: module 'tenants' failed during init: auth.root_tenant 'Top Tenant' is not a valid "
        "tenant id: use lower-case letters, digits and '-', up to 63 characters"
    )


# ---- the REST API, end to end ---------------------------------------------------------------


@pytest.fixture
def server(launcher: Launcher, database: ProvisionedDatabase) -> Server:
    started = launcher.start(secured_config(database.url.url))
    add_tenant(started, "acme")
    add_tenant(started, "acme-eu", parent="acme")
    add_tenant(started, "globex")
    return started


def test_http_administration_within_the_callers_subtree(server: Server) -> None:
    client, acme = server.client, bearer("acme")
    created = client.post("/tenants/v1/tenants", json={"id": "acme-us", "name": "US"}, headers=acme)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/tenants/v1/tenants/acme-us"
    assert created.json()["parent_id"] == "acme"
    listed = client.get("/tenants/v1/tenants", params={"$orderby": "id"}, headers=acme).json()
    assert [t["id"] for t in listed["items"]] == ["acme", "acme-eu", "acme-us"]
    renamed = client.patch("/tenants/v1/tenants/acme-us", json={"name": "Acme US"}, headers=acme)
    assert renamed.json()["name"] == "Acme US"
    suspended = client.post("/tenants/v1/tenants/acme-eu/suspend", headers=acme)
    assert suspended.json()["state"] == "suspended"
    # The lineage cache is invalidated by the change: acme-eu is refused at once.
    assert client.get("/tenants/v1/tenants", headers=bearer("acme-eu")).status_code == 403
    assert client.post("/tenants/v1/tenants/acme-eu/resume", headers=acme).status_code == 200
    assert client.get("/tenants/v1/tenants", headers=bearer("acme-eu")).status_code == 200
    assert client.delete("/tenants/v1/tenants/acme-us", headers=acme).status_code == 204
    assert client.get("/tenants/v1/tenants/acme-us", headers=acme).status_code == 404


def test_http_refusals(server: Server) -> None:
    client, acme, root = server.client, bearer("acme"), bearer(ROOT)
    # Outside the subtree reads exactly like missing.
    foreign, missing = (
        client.get(f"/tenants/v1/tenants/{t}", headers=acme) for t in ("globex", "nope")
    )
    assert (foreign.status_code, missing.status_code) == (404, 404)
    assert foreign.json()["detail"] == "no tenant 'globex'"
    assert missing.json()["detail"] == "no tenant 'nope'"
    assert client.post("/tenants/v1/tenants/acme/suspend", headers=acme).status_code == 403
    assert client.delete(f"/tenants/v1/tenants/{ROOT}", headers=root).status_code == 403
    has_children = client.delete("/tenants/v1/tenants/acme", headers=root)
    assert has_children.status_code == 409
    assert has_children.headers["content-type"] == "application/problem+json"
    duplicate = client.post("/tenants/v1/tenants", json={"id": "globex", "name": "G"}, headers=acme)
    assert duplicate.status_code == 409
    forged = {"id": "x", "name": "X", "state": "suspended"}
    assert client.post("/tenants/v1/tenants", json=forged, headers=acme).status_code == 400
    assert client.get("/tenants/v1/tenants/Bad_Id", headers=acme).status_code == 400
    assert (
        client.patch("/tenants/v1/tenants/globex", json={"name": "G"}, headers=acme).status_code
        == 404
    )
    assert client.post("/tenants/v1/tenants/acme/resume", headers=acme).status_code == 403
    unknown = client.get(
        "/tenants/v1/tenants", params={"$filter": "tenant_id eq 'x'"}, headers=acme
    )
    assert unknown.status_code == 400
    member = bearer("acme", "mia", ("member",))
    assert client.get("/tenants/v1/tenants", headers=member).status_code == 403
    # A platform administrator acting in acme has acme's view of the tree.
    acting = {**root, "X-Tenant-Id": "acme"}
    listed = client.get("/tenants/v1/tenants", params={"$orderby": "id"}, headers=acting).json()
    assert [t["id"] for t in listed["items"]] == ["acme", "acme-eu"]
