"""Tenant isolation, attacked: through the scoped session and through the running server.

Runs on the engine named by HYPERSPOT_TEST_DB (sqlite, postgres, mariadb), each test run on fresh
databases that are dropped afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from conftest import TEST_ENGINE, Launcher, Server, add_tenant, bearer, secured_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pony.orm import PrimaryKey, Required

from hyperspot.modules.notes.domain.ports import NoteEntities
from hyperspot.modules.notes.infra.storage import MIGRATIONS, define_entities
from hyperspot.platform.config import DatabaseSettings
from hyperspot.platform.db import PlatformDatabase, ScopedSession, TenantViolationError
from hyperspot.platform.db.migrations import MigrationRunner
from hyperspot.platform.errors import HyperspotError
from hyperspot.platform.security import SecurityContext
from hyperspot.sandbox.databases import ProvisionedDatabase

ALL = ("notes:read", "notes:write")


def context(tenant: str, *visible: str) -> SecurityContext:
    return SecurityContext(
        subject=f"user-of-{tenant}",
        tenant_id=tenant,
        permissions=frozenset(ALL),
        visible_tenants=frozenset(visible or (tenant,)),
    )


def token(tenant: str, roles: tuple[str, ...] = ("member",)) -> dict[str, str]:
    """A member of the server-side tenant ``tenant.lower()`` (tenant ids are lower case)."""
    return bearer(tenant.lower(), f"user-of-{tenant}", roles)


# ---- the scoped session, in process --------------------------------------------------------


class NotesStore:
    """The notes entities on a migrated database, driven synchronously for tests."""

    def __init__(self, database: ProvisionedDatabase) -> None:
        MigrationRunner(database.url, [("notes", MIGRATIONS)]).up()
        self.db = PlatformDatabase(DatabaseSettings(pool_size=2), database.url.url)
        self.entities: NoteEntities = define_entities(self.db.schema)
        self.db.map_entities()

    def run(self, security: SecurityContext, work: Callable[[ScopedSession], Any]) -> Any:
        return asyncio.run(self.db.run(security, work))

    def add(self, tenant: str, title: str) -> str:
        now = datetime(2026, 1, 1)

        def work(session: ScopedSession) -> str:
            row = session.create(
                self.entities.Note,
                id=str(uuid.uuid4()),
                title=title,
                body="",
                priority=0,
                pinned=False,
                created_at=now,
                updated_at=now,
            )
            return str(row.id)

        result: str = self.run(context(tenant), work)
        return result

    def titles(self, security: SecurityContext) -> set[str]:
        return set(self.run(security, lambda s: [n.title for n in s.query(self.entities.Note)]))


@pytest.fixture
def store(database: ProvisionedDatabase) -> Iterator[NotesStore]:
    notes = NotesStore(database)
    yield notes
    notes.db.close()


def test_each_tenant_sees_only_its_rows(store: NotesStore) -> None:
    a1, _ = store.add("A", "a1"), store.add("A", "a2")
    b1 = store.add("B", "b1")
    assert store.titles(context("A")) == {"a1", "a2"}
    assert store.titles(context("B")) == {"b1"}
    note = store.entities.Note
    assert store.run(context("A"), lambda s: s.count(note)) == 2
    assert store.run(context("A"), lambda s: s.get(note, b1)) is None
    assert store.run(context("B"), lambda s: s.get(note, a1)) is None
    assert store.run(context("A"), lambda s: s.count(note, title="b1")) == 0
    # A context allowed to see several tenants (a parent and its child) sees both, no more.
    store.add("C", "c1")
    assert store.titles(context("A", "A", "B")) == {"a1", "a2", "b1"}


def test_other_tenants_rows_cannot_be_changed_or_deleted(store: NotesStore) -> None:
    b1 = store.add("B", "b1")
    note = store.entities.Note
    assert store.run(context("A"), lambda s: s.update(note, b1, title="taken")) is None
    assert store.run(context("A"), lambda s: s.delete(note, b1)) is False
    assert store.titles(context("B")) == {"b1"}


def test_tenant_id_cannot_be_forged_filtered_or_changed(store: NotesStore) -> None:
    a1 = store.add("A", "a1")
    note = store.entities.Note
    now = datetime(2026, 1, 1)
    forged = {"id": str(uuid.uuid4()), "title": "x", "body": "", "priority": 0, "pinned": False}
    with pytest.raises(TenantViolationError, match="set by the platform"):
        store.run(
            context("A"),
            lambda s: s.create(note, tenant_id="B", created_at=now, updated_at=now, **forged),
        )
    with pytest.raises(TenantViolationError, match="cannot be changed"):
        store.run(context("A"), lambda s: s.update(note, a1, tenant_id="B"))
    with pytest.raises(TenantViolationError, match="cannot be filtered"):
        store.run(context("A"), lambda s: s.count(note, tenant_id="B"))

    def sneak(session: ScopedSession) -> None:
        row = session.get(note, a1)
        assert row is not None
        row.tenant_id = "B"  # assigning the attribute directly is caught when flushed

    with pytest.raises(TenantViolationError, match="tenant_id cannot be changed"):
        store.run(context("A"), sneak)
    assert store.titles(context("A")) == {"a1"}
    assert store.titles(context("B")) == set()


def test_empty_scope_sees_nothing_and_system_access_is_explicit(
    store: NotesStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.add("A", "a1")
    store.add("B", "b1")
    nobody = SecurityContext(subject="ghost", tenant_id="", permissions=frozenset(ALL))
    assert store.titles(nobody) == set()
    with pytest.raises(HyperspotError, match="use run_system"):
        store.titles(SecurityContext.for_system("test"))
    with caplog.at_level(logging.INFO, logger="hyperspot.db"):
        titles = asyncio.run(
            store.db.run_system(
                "nightly report", lambda s: {n.title for n in s.query(store.entities.Note)}
            )
        )
    assert titles == {"a1", "b1"}
    assert "system database access: nightly report" in caplog.text


@pytest.mark.skipif(TEST_ENGINE != "postgres", reason="row-level security is PostgreSQL's")
def test_raw_sql_is_confined_by_row_level_security(store: NotesStore) -> None:
    store.add("A", "a1")
    store.add("B", "b1")
    raw = "SELECT tenant_id FROM notes_note"
    seen = store.run(context("A"), lambda s: list(s.database.select(raw)))
    assert seen == ["A"]
    everything = asyncio.run(store.db.run_system("audit", lambda s: list(s.database.select(raw))))
    assert sorted(everything) == ["A", "B"]


def test_an_entity_without_declared_scoping_stops_start_up(database: ProvisionedDatabase) -> None:
    db = PlatformDatabase(DatabaseSettings(), database.url.url)

    class Loose(db.schema.Entity):  # type: ignore[name-defined,misc]
        id = PrimaryKey(str, 36)
        name = Required(str)

    with pytest.raises(HyperspotError, match="entity Loose must inherit exactly one of"):
        db.map_entities()


def _get(note: Any, key: str, session: ScopedSession) -> Any:
    return session.get(note, key)


def _update(note: Any, key: str, title: str, session: ScopedSession) -> Any:
    return session.update(note, key, title=title)


def _delete(note: Any, key: str, session: ScopedSession) -> bool:
    return session.delete(note, key)


# A random interleaving of operations by three tenants, checked against a model of what each
# tenant owns: no tenant may observe, count, change or delete another's rows.
operation = st.tuples(
    st.sampled_from(("A", "B", "C")),
    st.sampled_from(("create", "list", "count", "get", "update", "delete")),
    st.integers(min_value=0, max_value=50),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(operation, min_size=1, max_size=25))
def test_random_interleavings_never_cross_tenants(
    store: NotesStore, steps: list[tuple[str, str, int]]
) -> None:
    run_id = uuid.uuid4().hex[:8]  # each example works in tenants of its own
    owned: dict[str, dict[str, str]] = {"A": {}, "B": {}, "C": {}}  # tenant -> id -> title
    note = store.entities.Note
    for tenant, action, pick in steps:
        security = context(f"{tenant}-{run_id}")
        every_id = [i for rows in owned.values() for i in rows]
        target = every_id[pick % len(every_id)] if every_id else str(uuid.uuid4())
        mine = target in owned[tenant]
        if action == "create":
            owned[tenant][store.add(security.tenant_id, f"{tenant}{pick}")] = f"{tenant}{pick}"
        elif action == "list":
            assert store.titles(security) == set(owned[tenant].values())
        elif action == "count":
            assert store.run(security, lambda s: s.count(note)) == len(owned[tenant])
        elif action == "get":
            found = store.run(security, functools.partial(_get, note, target))
            assert (found is not None) == mine
        elif action == "update":
            title = f"{tenant}u{pick}"
            changed = store.run(security, functools.partial(_update, note, target, title))
            assert (changed is not None) == mine
            if mine:
                owned[tenant][target] = title
        else:
            deleted = store.run(security, functools.partial(_delete, note, target))
            assert deleted == mine
            owned[tenant].pop(target, None)
    for tenant, rows in owned.items():
        assert store.titles(context(f"{tenant}-{run_id}")) == set(rows.values())


# ---- the running server ---------------------------------------------------------------------


@pytest.fixture
def notes_server(launcher: Launcher, database: ProvisionedDatabase) -> Server:
    server = launcher.start(
        secured_config(
            database.url.url,
            {"modules": {"notes": {"max_notes_per_tenant": 5, "max_page_size": 3}}},
        )
    )
    add_tenant(server, "a")
    add_tenant(server, "b")
    return server


def create(server: Server, tenant: str, title: str, **extra: Any) -> dict[str, Any]:
    response = server.client.post(
        "/notes/v1/notes", json={"title": title, **extra}, headers=token(tenant)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/notes/v1/notes/{body['id']}"
    return body


def test_http_crud_is_confined_to_the_callers_tenant(notes_server: Server) -> None:
    client = notes_server.client
    mine = create(notes_server, "A", "mine", priority=2)
    theirs = create(notes_server, "B", "theirs")
    listed = client.get("/notes/v1/notes", headers=token("A")).json()
    assert [n["title"] for n in listed["items"]] == ["mine"]
    assert client.get(f"/notes/v1/notes/{mine['id']}", headers=token("A")).json() == mine
    for method in ("GET", "PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"title": "stolen"}} if method == "PATCH" else {}
        stolen = client.request(
            method, f"/notes/v1/notes/{theirs['id']}", headers=token("A"), **kwargs
        )
        missing = client.request(
            method, f"/notes/v1/notes/{uuid.uuid4()}", headers=token("A"), **kwargs
        )
        # Another tenant's note and a missing one are indistinguishable.
        assert stolen.status_code == missing.status_code == 404
        assert stolen.json()["type"] == missing.json()["type"]
    assert client.get(f"/notes/v1/notes/{theirs['id']}", headers=token("B")).json() == theirs
    changed = client.patch(
        f"/notes/v1/notes/{mine['id']}", json={"title": "renamed"}, headers=token("A")
    )
    assert changed.json()["title"] == "renamed"
    assert client.delete(f"/notes/v1/notes/{mine['id']}", headers=token("A")).status_code == 204
    assert client.get(f"/notes/v1/notes/{mine['id']}", headers=token("A")).status_code == 404


def test_http_forged_tenant_attempts_are_refused(notes_server: Server) -> None:
    client = notes_server.client
    theirs = create(notes_server, "B", "theirs")
    forged = client.post(
        "/notes/v1/notes", json={"title": "x", "tenant_id": "B"}, headers=token("A")
    )
    assert forged.status_code == 400
    assert forged.json()["errors"][0]["field"] == "body.tenant_id"
    mine = create(notes_server, "A", "mine")
    moved = client.patch(
        f"/notes/v1/notes/{mine['id']}", json={"tenant_id": "B"}, headers=token("A")
    )
    assert moved.status_code == 400
    by_filter = client.get(
        "/notes/v1/notes", params={"$filter": "tenant_id eq 'B'"}, headers=token("A")
    )
    assert by_filter.status_code == 400
    assert "tenant_id" in by_filter.json()["detail"]
    by_header = client.get("/notes/v1/notes", headers={**token("A"), "X-Tenant-Id": "b"})
    assert by_header.status_code == 403
    assert client.get("/notes/v1/notes", headers=token("B")).json()["items"] == [theirs]


def test_http_credentials_and_permissions(notes_server: Server) -> None:
    client = notes_server.client
    assert client.get("/notes/v1/notes").status_code == 401
    reader_role = {"name": "reader", "permissions": ["notes:read"]}
    defined = client.post("/access/v1/tenants/a/roles", json=reader_role, headers=bearer("a"))
    assert defined.status_code == 201
    reader = token("A", ("reader",))
    assert client.get("/notes/v1/notes", headers=reader).status_code == 200
    denied = client.post("/notes/v1/notes", json={"title": "x"}, headers=reader)
    assert denied.status_code == 403
    assert "notes:write" in denied.json()["detail"]
    forged = bearer("a", "mallory", ("member",), secret="not-the-server-secret-0123456789ab")
    bad = client.get("/notes/v1/notes", headers=forged)
    assert bad.status_code == 401
    assert bad.json()["detail"].startswith("invalid token")
    old = client.get("/notes/v1/notes", headers=bearer("a", "a", ("member",), ttl_s=-120))
    assert old.json()["detail"] == "the token has expired"


def test_http_quota_is_per_tenant(notes_server: Server) -> None:
    for number in range(5):
        create(notes_server, "A", f"n{number}")
    over = notes_server.client.post("/notes/v1/notes", json={"title": "6"}, headers=token("A"))
    assert over.status_code == 403
    assert over.json()["type"].endswith("/quota-exceeded")
    create(notes_server, "B", "still fine")


def test_http_list_pages_filters_and_sorts(notes_server: Server) -> None:
    client = notes_server.client
    for number, priority in enumerate((3, 1, 2, 1)):
        create(notes_server, "A", f"note{number}", priority=priority, pinned=priority == 1)
    create(notes_server, "B", "other", priority=1)
    seen: list[str] = []
    params: dict[str, Any] = {"$orderby": "priority desc,title", "limit": 2}
    while True:
        page = client.get("/notes/v1/notes", params=params, headers=token("A")).json()
        seen += [n["title"] for n in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == ["note0", "note2", "note1", "note3"]
    pinned = client.get(
        "/notes/v1/notes",
        params={"$filter": "pinned eq true and priority le 1"},
        headers=token("A"),
    ).json()
    assert sorted(n["title"] for n in pinned["items"]) == ["note1", "note3"]
    too_many = client.get("/notes/v1/notes", params={"limit": 50}, headers=token("A"))
    assert too_many.status_code == 400
    bad_field = client.get("/notes/v1/notes", params={"$orderby": "colour"}, headers=token("A"))
    assert bad_field.status_code == 400
    assert bad_field.json()["errors"][0]["field"].startswith("query.")
