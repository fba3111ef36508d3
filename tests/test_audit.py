"""The audit log: events land in the tenant acted in, and each tenant reads only its own.

Runs on the engine named by HYPERSPOT_TEST_DB (sqlite, postgres, mariadb), each test on a fresh
database that is dropped afterwards.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ROOT, TEST_ENGINE, Launcher, add_tenant, bearer, secured_config

from hyperspot.modules.audit.contract import AuditEvent, AuditResult
from hyperspot.modules.audit.domain.ports import ACTOR_LENGTH
from hyperspot.modules.audit.domain.service import AuditService
from hyperspot.modules.audit.infra.storage import MIGRATIONS, define_entities
from hyperspot.platform.config import DatabaseSettings
from hyperspot.platform.db import ListParams, ListQueryError, PlatformDatabase, ScopedSession
from hyperspot.platform.db.migrations import MigrationRunner
from hyperspot.platform.identity import RequestOrigin
from hyperspot.platform.security import SecurityContext
from hyperspot.sandbox.databases import ProvisionedDatabase

ORIGIN = RequestOrigin(client="10.0.0.7", request_id="req-1", method="POST", path="/x")


def context(tenant: str, subject: str = "ann", **extra: Any) -> SecurityContext:
    return SecurityContext(subject=subject, tenant_id=tenant, **extra)


class AuditLog:
    """The audit service on a migrated database, driven synchronously for tests."""

    def __init__(self, database: ProvisionedDatabase) -> None:
        MigrationRunner(database.url, [("audit", MIGRATIONS)]).up()
        self.db = PlatformDatabase(DatabaseSettings(pool_size=2), database.url.url)
        self.service = AuditService(self.db, define_entities(self.db.schema))
        self.db.map_entities()

    def record(
        self,
        actor: SecurityContext,
        action: str,
        result: AuditResult = AuditResult.SUCCESS,
        origin: RequestOrigin | None = ORIGIN,
        detail: str = "",
    ) -> None:
        asyncio.run(
            self.service.record(actor, action, "target", result, origin=origin, detail=detail)
        )

    def page(self, security: SecurityContext, **params: Any) -> tuple[list[AuditEvent], str | None]:
        return asyncio.run(self.service.list(security, ListParams(**params)))

    def actions(self, security: SecurityContext, **params: Any) -> list[str]:
        return [event.action for event in self.page(security, **params)[0]]


@pytest.fixture
def log(database: ProvisionedDatabase) -> Iterator[AuditLog]:
    audit = AuditLog(database)
    yield audit
    audit.db.close()


def test_each_tenant_reads_only_its_own_log(log: AuditLog) -> None:
    log.record(context("a"), "x.first")
    log.record(context("b"), "x.other")
    log.record(context("a"), "x.second")
    assert log.actions(context("a")) == ["x.second", "x.first"]  # newest first
    assert log.actions(context("b")) == ["x.other"]
    events, _ = log.page(context("a"))
    assert {event.tenant_id for event in events} == {"a"}
    first = events[-1]
    assert (first.actor, first.actor_tenant, first.target) == ("ann", "a", "target")
    assert (first.client, first.request_id, first.result) == ("10.0.0.7", "req-1", "success")
    assert log.actions(context("c")) == []
    with pytest.raises(ListQueryError, match="unknown field 'tenant_id'"):
        log.page(context("a"), filter="tenant_id eq 'b'")


def test_an_administrator_acting_in_another_tenant_is_recorded_there(log: AuditLog) -> None:
    admin = context("b", subject="root-admin", platform_admin=True, home_tenant="root")
    log.record(admin, "x.act", AuditResult.DENIED, detail="why")
    events, _ = log.page(context("b"))
    assert [(e.actor, e.actor_tenant, e.result, e.detail) for e in events] == [
        ("root-admin", "root", AuditResult.DENIED, "why")
    ]
    assert log.actions(context("root")) == []


def test_filter_order_and_cursor(log: AuditLog) -> None:
    for action in ("t.create", "t.rename", "t.suspend", "t.create"):
        log.record(context("a"), action)
    log.record(context("a", subject="bob"), "t.delete", AuditResult.FAILURE, origin=None)
    assert log.actions(context("a"), orderby="at asc") == [
        "t.create",
        "t.rename",
        "t.suspend",
        "t.create",
        "t.delete",
    ]
    assert log.actions(context("a"), filter="action eq 't.create'") == ["t.create"] * 2
    failed, _ = log.page(context("a"), filter="result eq 'failure' and actor eq 'bob'")
    assert [(e.action, e.client, e.request_id) for e in failed] == [("t.delete", "", "")]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        events, cursor = log.page(context("a"), limit=2, cursor=cursor)
        seen.extend(event.id for event in events)
        if cursor is None:
            break
    newest_first, _ = log.page(context("a"))
    assert seen == [event.id for event in newest_first]


def test_each_event_is_logged_once_and_long_values_are_clipped(
    log: AuditLog, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="hyperspot.audit"):
        log.record(context("a", subject="s" * 400), "t.create")
    lines = [r for r in caplog.records if r.name == "hyperspot.audit"]
    assert len(lines) == 1
    assert "t.create 'target' in tenant 'a'" in lines[0].getMessage()
    assert "success" in lines[0].getMessage()
    events, _ = log.page(context("a"))
    assert len(events[0].actor) == ACTOR_LENGTH


@pytest.mark.skipif(TEST_ENGINE != "postgres", reason="row-level security is PostgreSQL's")
def test_raw_sql_sees_only_the_tenants_events(log: AuditLog) -> None:
    log.record(context("a"), "x.a")
    log.record(context("b"), "x.b")

    def raw(session: ScopedSession) -> list[str]:
        return list(session.database.select("SELECT tenant_id FROM audit_event"))

    assert asyncio.run(log.db.run(context("a"), raw)) == ["a"]


def test_http_each_tenant_reads_its_own_log(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    server = launcher.start(secured_config(database.url.url))
    add_tenant(server, "acme")
    add_tenant(server, "globex")
    client = server.client
    client.post("/tenants/v1/tenants", json={"id": "acme-eu", "name": "EU"}, headers=bearer("acme"))
    events = client.get("/audit/v1/events", headers=bearer("acme")).json()["items"]
    assert [(e["action"], e["target"], e["result"]) for e in events] == [
        ("tenants.create", "acme-eu", "success")
    ]
    assert client.get("/audit/v1/events", headers=bearer("globex")).json()["items"] == []
    filtered = client.get(
        "/audit/v1/events",
        params={"$filter": "action eq 'tenants.create'", "$orderby": "at asc"},
        headers=bearer(ROOT),
    ).json()["items"]
    assert [e["target"] for e in filtered] == ["acme", "globex"]
    bad = client.get(
        "/audit/v1/events", params={"$filter": "tenant_id eq 'acme'"}, headers=bearer(ROOT)
    )
    assert bad.status_code == 400
    member = bearer("acme", "mia", ("member",))
    assert client.get("/audit/v1/events", headers=member).status_code == 403
