"""Deleting a tenant deletes its data in every module: a tenant re-created under the same id starts
empty, and no other tenant loses a row.

Runs on the engine named by HYPERSPOT_TEST_DB (sqlite, postgres, mariadb): one server for the
module on one database, then the kernel's purge on fresh databases.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any

import httpx
import pytest
from conftest import (
    ROOT,
    TEST_ENGINE,
    Launcher,
    Server,
    add_tenant,
    bearer,
    secured_config,
)

from hyperspot.modules.audit.contract import AuditResult
from hyperspot.modules.audit.domain.service import AuditService
from hyperspot.modules.audit.infra import storage as audit_storage
from hyperspot.modules.notes.infra import storage as notes_storage
from hyperspot.platform.config import DatabaseSettings
from hyperspot.platform.db import PlatformDatabase, ScopedSession
from hyperspot.platform.db.migrations import MigrationRunner
from hyperspot.platform.errors import HyperspotError
from hyperspot.platform.security import SecurityContext
from hyperspot.sandbox.databases import ProvisionedDatabase

# ---- through the running server -------------------------------------------------------------


@pytest.fixture(scope="module")
def server(module_launcher: Launcher, module_database: ProvisionedDatabase) -> Server:
    # Other installed AI providers stay out of the way: ai_demo serves demo-chat.
    installed = {entry.name for entry in entry_points(group="hyperspot.modules")}
    modules = {name: {"enabled": False} for name in ("ai_local", "ai_openai") if name in installed}
    # auth.cache_ttl_s 0: an API key verified before its tenant's deletion is not reused from the
    # access module's cache, so the test sees what the database holds.
    config = {"modules": modules, "auth": {"cache_ttl_s": 0}}
    server = module_launcher.start(secured_config(module_database.url.url, config))
    for tenant in ("acme", "globex", "acme2"):
        add_tenant(server, tenant)
    return server


def member(tenant: str) -> dict[str, str]:
    return bearer(tenant, f"member-of-{tenant}", ("member",))


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def fill(server: Server, tenant: str) -> str:
    """Notes, an AI call (its usage), an API key and its audit entry; returns the key."""
    client = server.client
    for title in ("plan", "budget"):
        ok(client.post("/notes/v1/notes", json={"title": title}, headers=member(tenant)), 201)
    chat = {"model": "demo-chat", "messages": [{"role": "user", "content": "hello there"}]}
    ok(client.post("/ai/v1/chat/completions", json=chat, headers=member(tenant)))
    created = ok(
        client.post(
            "/access/v1/api-keys",
            json={"name": "ci", "roles": ["member"]},
            headers=bearer(tenant),
        ),
        201,
    )
    key: str = created["key"]
    return key


def titles(server: Server, tenant: str) -> list[str]:
    items = ok(server.client.get("/notes/v1/notes", headers=member(tenant)))["items"]
    return sorted(note["title"] for note in items)


def requests_made(server: Server, tenant: str) -> int:
    requests: int = ok(server.client.get("/ai/v1/usage", headers=bearer(tenant)))["totals"][
        "requests"
    ]
    return requests


def audit_actions(server: Server, tenant: str) -> list[tuple[str, str, str]]:
    items = ok(server.client.get("/audit/v1/events", headers=bearer(tenant)))["items"]
    return [(event["action"], event["target"], event["result"]) for event in items]


def test_a_tenant_recreated_under_a_deleted_ones_id_inherits_nothing(server: Server) -> None:
    client = server.client
    old_key = fill(server, "acme")
    fill(server, "globex")
    assert titles(server, "acme") == ["budget", "plan"]
    assert requests_made(server, "acme") == 1
    assert any(action == "access.create-api-key" for action, _, _ in audit_actions(server, "acme"))
    as_old_key = {"Authorization": f"Bearer {old_key}"}
    assert ok(client.get("/access/v1/me", headers=as_old_key))["tenant_id"] == "acme"
    globex_before = (titles(server, "globex"), requests_made(server, "globex"))
    globex_audit = audit_actions(server, "globex")

    ok(client.delete("/tenants/v1/tenants/acme", headers=bearer(ROOT)), 204)
    add_tenant(server, "acme")

    assert titles(server, "acme") == []
    assert requests_made(server, "acme") == 0
    assert ok(client.get("/access/v1/api-keys", headers=bearer("acme")))["items"] == []
    # The old tenant's audit log went with it; the new tenant's is empty.
    assert audit_actions(server, "acme") == []
    # The old tenant's key does not open the new tenant.
    assert client.get("/access/v1/me", headers=as_old_key).status_code == 401
    # Nobody else lost anything.
    assert (titles(server, "globex"), requests_made(server, "globex")) == globex_before
    assert audit_actions(server, "globex") == globex_audit
    # The deletion itself stays on record, in the deleting tenant's log.
    assert ("tenants.delete", "acme", AuditResult.SUCCESS.value) in audit_actions(server, ROOT)


def test_a_module_in_another_process_loses_the_deleted_tenants_rows_too(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    # notes runs in a child process: the platform that deletes the tenant has no notes entity.
    config = {"modules": {"notes": {"runtime": "oop"}}, "auth": {"cache_ttl_s": 0}}
    server = launcher.start(secured_config(database.url.url, config))
    for tenant in ("acme", "globex"):
        add_tenant(server, tenant)
        for title in ("plan", "budget"):
            body = {"title": title}
            ok(server.client.post("/notes/v1/notes", json=body, headers=member(tenant)), 201)

    ok(server.client.delete("/tenants/v1/tenants/acme", headers=bearer(ROOT)), 204)
    add_tenant(server, "acme")

    assert titles(server, "acme") == []
    assert titles(server, "globex") == ["budget", "plan"]
    assert "notes_note: 2" in server.log()


def test_a_refused_deletion_keeps_the_tenants_data(server: Server) -> None:
    client = server.client
    fill(server, "acme2")
    add_tenant(server, "acme2-eu", parent="acme2")
    ok(client.post("/notes/v1/notes", json={"title": "eu"}, headers=member("acme2-eu")), 201)

    # A tenant with children is not deleted, and its data stays with it.
    assert client.delete("/tenants/v1/tenants/acme2", headers=bearer(ROOT)).status_code == 409
    assert titles(server, "acme2") == ["budget", "plan"]
    assert requests_made(server, "acme2") == 1
    # Its child's deletion (by the parent's admin) takes the child's data only.
    ok(client.delete("/tenants/v1/tenants/acme2-eu", headers=bearer("acme2")), 204)
    add_tenant(server, "acme2-eu", parent="acme2")
    assert titles(server, "acme2-eu") == []
    assert titles(server, "acme2") == ["budget", "plan"]


# ---- the kernel's purge, on the engine under test -------------------------------------------


def caller(tenant: str) -> SecurityContext:
    return SecurityContext(subject=f"user-of-{tenant}", tenant_id=tenant)


class Store:
    """The notes and audit entities on a migrated database, driven synchronously."""

    def __init__(self, database: ProvisionedDatabase) -> None:
        MigrationRunner(
            database.url,
            [("notes", notes_storage.MIGRATIONS), ("audit", audit_storage.MIGRATIONS)],
        ).up()
        self.db = PlatformDatabase(DatabaseSettings(pool_size=2), database.url.url)
        self.notes = notes_storage.define_entities(self.db.schema)
        self.audit = AuditService(self.db, audit_storage.define_entities(self.db.schema))

    def run(self, security: SecurityContext, work: Any) -> Any:
        return asyncio.run(self.db.run(security, work))

    def add(self, tenant: str, *titles: str) -> None:
        now = datetime(2026, 1, 1)

        def work(session: ScopedSession) -> None:
            for title in titles:
                session.create(
                    self.notes.Note,
                    id=str(uuid.uuid4()),
                    title=title,
                    body="",
                    priority=0,
                    pinned=False,
                    created_at=now,
                    updated_at=now,
                )

        self.run(caller(tenant), work)
        asyncio.run(
            self.audit.record(caller(tenant), "notes.add", "x", AuditResult.SUCCESS, origin=None)
        )

    def count(self, tenant: str) -> int:
        return int(self.run(caller(tenant), lambda session: session.count(self.notes.Note)))

    def audited(self, tenant: str) -> int:
        return int(
            self.run(caller(tenant), lambda session: session.count(self.audit.entities.AuditEntry))
        )


@pytest.fixture
def store(database: ProvisionedDatabase) -> Iterator[Store]:
    store = Store(database)
    yield store
    store.db.close()


def test_purge_deletes_one_tenants_rows_in_every_tenant_table(store: Store) -> None:
    with pytest.raises(HyperspotError, match="not ready"):
        store.db.tenant_entities()
    store.db.map_entities()
    # Tenant ids that a LIKE or a prefix would confuse with "a" keep their rows.
    for tenant in ("a", "ab", "b"):
        store.add(tenant, "one", "two")

    deleted = asyncio.run(store.db.purge_tenant("a", "test"))

    assert deleted == {"audit_event": 1, "notes_note": 2}
    assert (store.count("a"), store.audited("a")) == (0, 0)
    assert (store.count("ab"), store.audited("ab")) == (2, 1)
    assert (store.count("b"), store.audited("b")) == (2, 1)
    assert asyncio.run(store.db.purge_tenant("a", "again")) == {"audit_event": 0, "notes_note": 0}


def test_purge_inside_a_scoped_unit_crosses_the_wall_for_the_purge_alone(store: Store) -> None:
    store.db.map_entities()
    store.add("a", "one")
    store.add("c", "mine")

    def work(session: ScopedSession) -> tuple[dict[str, int], int]:
        deleted = store.db.purge_tenant_rows(session, "a", "test")
        # Afterwards the unit is scoped again: raw SQL sees the caller's rows only on PostgreSQL
        # (row-level security), and the scoped session everywhere.
        if TEST_ENGINE == "postgres":
            flag = store.db.schema.select("SELECT current_setting('hyperspot.system', true)")
            assert flag == ["off"]
            total = store.db.schema.select("SELECT count(*) FROM notes_note")
            assert total == [1]
        return deleted, session.count(store.notes.Note)

    deleted, visible = store.run(caller("c"), work)
    assert deleted["notes_note"] == 1 and visible == 1
    assert (store.count("a"), store.count("c")) == (0, 1)


def test_a_purge_rolls_back_with_its_unit(store: Store) -> None:
    store.db.map_entities()
    store.add("a", "one", "two")

    def work(session: ScopedSession) -> None:
        store.db.purge_tenant_rows(session, "a", "test")
        raise RuntimeError("the deletion failed after the purge")

    with pytest.raises(RuntimeError, match="after the purge"):
        store.run(caller("c"), work)
    assert store.count("a") == 2


def test_purge_refuses_no_tenant_and_a_foreign_session(
    store: Store, database: ProvisionedDatabase
) -> None:
    store.db.map_entities()
    with pytest.raises(HyperspotError, match="needs a tenant id"):
        asyncio.run(store.db.purge_tenant("", "test"))
    other = PlatformDatabase(DatabaseSettings(pool_size=1), database.url.url)
    with pytest.raises(HyperspotError, match="unit of work of this database"):
        store.run(
            caller("c"),
            lambda session: other.purge_tenant_rows(session, "a", "test"),
        )


def test_tenant_tables_follow_the_applied_migrations() -> None:
    from hyperspot.platform.db import Column, ColumnType, CreateTable, DropTable, Migration
    from hyperspot.platform.db.schema import tenant_tables

    def table(name: str, tenant_scoped: bool = True) -> CreateTable:
        column = Column("id", ColumnType.STRING, length=36, primary_key=True)
        return CreateTable(name, columns=(column,), tenant_scoped=tenant_scoped)

    migrations = (
        Migration(1, "first", (table("a_items"), table("a_settings", tenant_scoped=False))),
        Migration(2, "more", (table("a_tags"),)),
        Migration(3, "fewer", (DropTable("a_items"),)),
    )
    assert tenant_tables(migrations, up_to=0) == []
    assert tenant_tables(migrations, up_to=2) == ["a_items", "a_tags"]
    assert tenant_tables(migrations, up_to=3) == ["a_tags"]
