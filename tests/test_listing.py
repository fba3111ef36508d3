"""List endpoints: $filter / $orderby parsing, translation to Pony, keyset cursors, on every engine.

The engine comes from HYPERSPOT_TEST_DB. One database per module keeps the suite fast; tests that
write use their own tenant so they cannot disturb the shared rows.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pony.orm import Database, Optional, PrimaryKey, Required, db_session, delete, select
from pydantic import BaseModel, ValidationError

from hyperspot.platform.db.listing import (
    MAX_CONDITIONS,
    ListField,
    ListParams,
    ListQueryError,
    ListSpec,
    apply,
    compile_params,
    page,
)
from hyperspot.platform.gateway.openapi import build_openapi
from hyperspot.platform.gateway.operations import Access, Call, Operation, ResponseSpec
from hyperspot.sandbox.databases import Engine, provision

ENGINE = cast(Engine, os.environ.get("HYPERSPOT_TEST_DB", "sqlite"))

TITLES = [
    "alpha",
    "beta",
    "gamma",
    "O'Brien",
    "100% done",
    "a_b",
    "axb",
    "delta",
    "50%",
    "back\\slash",
]
BASE = datetime(2024, 1, 1, 8, 0, 0)

SPEC = ListSpec(
    fields={
        "title": ListField(str, sort=True),
        "body": ListField(str, filter=False),
        "priority": ListField(int, sort=True),
        "score": ListField(float, sort=True),
        "done": ListField(bool, sort=True),
        "created": ListField(datetime, sort=True, attr="created_at"),
        "note": ListField(str, nullable=True),
    },
    default_order="priority desc",
    max_limit=25,
    default_limit=5,
)


def make_row(i: int, tenant: str = "t1") -> dict[str, Any]:
    return {
        "id": f"{tenant}-{i:03d}",
        "tenant_id": tenant,
        "title": TITLES[i % len(TITLES)],
        "body": "secret",
        "priority": i % 4,
        "score": (i % 5) * 0.5,
        "done": i % 3 == 0,
        # Whole seconds: Pony declares DATETIME with precision 0 on MySQL/MariaDB by default.
        "created_at": BASE + timedelta(hours=i),
        "note": None if i % 4 == 1 else f"note {i % 3}",
    }


ROWS = [make_row(i) for i in range(30)]
OTHER_TENANT = [make_row(i, "t2") for i in range(10)]


@dataclass
class Env:
    db: Any
    Task: Any
    Prop: Any

    def query(self, tenant: str = "t1") -> Any:
        # What the scoped session hands over: a tenant-filtered query that listing only narrows.
        return select(t for t in self.Task).filter(lambda t: t.tenant_id == tenant)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    provisioned = provision(ENGINE, folder=Path(tmp_path_factory.mktemp("listing")))
    db = Database()

    class Task(db.Entity):  # type: ignore[misc,name-defined]
        id = PrimaryKey(str)
        tenant_id = Required(str)
        title = Required(str)
        body = Required(str)
        priority = Required(int)
        score = Required(float)
        done = Required(bool)
        created_at = Required(datetime)
        note = Optional(str, nullable=True)

    class Prop(db.Entity):  # type: ignore[misc,name-defined]
        id = PrimaryKey(str)
        tenant_id = Required(str)
        # Optional: Required(str) refuses ''. autostrip=False: Pony strips str values by default.
        s = Optional(str, autostrip=False)
        n = Required(int)
        f = Required(float)
        b = Required(bool)
        d = Required(datetime)
        note = Optional(str, nullable=True, autostrip=False)

    try:
        db.bind(**provisioned.url.pony_bind_arguments())
        db.generate_mapping(create_tables=True)
        with db_session:
            for row in ROWS + OTHER_TENANT:
                Task(**row)
        yield Env(db, Task, Prop)
    finally:
        db.disconnect()
        provisioned.drop()


def walk(env: Env, *, tenant: str = "t1", limit: int = 4, **params: Any) -> list[str]:
    """Every id over all pages."""
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        with db_session:
            found = page(env.query(tenant), SPEC, ListParams(limit=limit, cursor=cursor, **params))
            seen += [t.id for t in found.items]
        if found.next_cursor is None:
            return seen
        cursor = found.next_cursor
    raise AssertionError("pagination did not end")


def matching(filter_text: str, env: Env) -> set[str]:
    return set(walk(env, limit=25, filter=filter_text))


def expected(predicate: Callable[[dict[str, Any]], bool]) -> set[str]:
    return {r["id"] for r in ROWS if predicate(r)}


# -- operators and functions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "predicate"),
    [
        ("priority eq 2", lambda r: r["priority"] == 2),
        ("priority ne 2", lambda r: r["priority"] != 2),
        ("priority gt 2", lambda r: r["priority"] > 2),
        ("priority ge 2", lambda r: r["priority"] >= 2),
        ("priority lt 1", lambda r: r["priority"] < 1),
        ("priority le 1", lambda r: r["priority"] <= 1),
        ("priority gt -1", lambda r: True),
        ("score eq 1.5", lambda r: r["score"] == 1.5),
        ("score gt 1", lambda r: r["score"] > 1),
        ("score le 0.5", lambda r: r["score"] <= 0.5),
        ("done eq true", lambda r: r["done"]),
        ("done eq false", lambda r: not r["done"]),
        ("done ne true", lambda r: not r["done"]),
        ("created ge 2024-01-02T00:00:00", lambda r: r["created_at"] >= datetime(2024, 1, 2)),
        ("created lt 2024-01-01T12:00:00Z", lambda r: r["created_at"] < datetime(2024, 1, 1, 12)),
        # An offset is converted to (naive) UTC: 14:00+02:00 is 12:00 UTC.
        ("created lt 2024-01-01T14:00+02:00", lambda r: r["created_at"] < datetime(2024, 1, 1, 12)),
        ("created lt '2024-01-01T12:00:00'", lambda r: r["created_at"] < datetime(2024, 1, 1, 12)),
        ("created lt 2024-01-02", lambda r: r["created_at"] < datetime(2024, 1, 2)),
        ("title eq 'gamma'", lambda r: r["title"] == "gamma"),
        ("title ne 'gamma'", lambda r: r["title"] != "gamma"),
        # Lowercase letters order the same under every collation in use (C, binary, unicode_ci).
        ("title ge 'b' and title lt 'd'", lambda r: r["title"] in ("beta", "back\\slash")),
        ("contains(title,'amm')", lambda r: "amm" in r["title"]),
        ("startswith(title,'al')", lambda r: r["title"].startswith("al")),
        ("endswith(title, 'ta')", lambda r: r["title"].endswith("ta")),
        ("contains(note,'1')", lambda r: r["note"] is not None and "1" in r["note"]),
    ],
)
def test_each_operator_and_function(env: Env, text: str, predicate: Any) -> None:
    assert matching(text, env) == expected(predicate)


def test_quotes_are_escaped_by_doubling(env: Env) -> None:
    assert matching("title eq 'O''Brien'", env) == expected(lambda r: r["title"] == "O'Brien")
    assert matching("contains(title,'''')", env) == expected(lambda r: "'" in r["title"])


def test_like_wildcards_match_literally(env: Env) -> None:
    # % and _ in the argument are data, not LIKE wildcards; backslash is plain text as well.
    assert matching("contains(title,'%')", env) == expected(lambda r: "%" in r["title"])
    assert matching("contains(title,'_')", env) == expected(lambda r: r["title"] == "a_b")
    assert matching("startswith(title,'a_')", env) == expected(lambda r: r["title"] == "a_b")
    assert matching("endswith(title,'0%')", env) == expected(lambda r: r["title"] == "50%")
    assert matching("contains(title,'0% d')", env) == expected(lambda r: r["title"] == "100% done")
    assert matching("contains(title,'\\')", env) == expected(lambda r: "\\" in r["title"])
    assert matching("contains(title,'!')", env) == set()  # Pony's ESCAPE character


def test_string_matching_follows_the_collation(env: Env) -> None:
    # Documented as engine-dependent: MariaDB's utf8mb4_unicode_ci ignores case, the others don't.
    alpha = expected(lambda r: r["title"] == "alpha") if ENGINE == "mariadb" else set()
    assert matching("title eq 'ALPHA'", env) == alpha
    assert matching("startswith(title,'ALP')", env) == alpha


def test_and_binds_tighter_than_or(env: Env) -> None:
    text = "priority eq 0 or priority eq 1 and done eq true"
    ours = expected(lambda r: r["priority"] == 0 or (r["priority"] == 1 and r["done"]))
    other = expected(lambda r: (r["priority"] in (0, 1)) and r["done"])
    assert ours != other  # the data tells the two readings apart
    assert matching(text, env) == ours


def test_parentheses_override_precedence(env: Env) -> None:
    text = "(priority eq 0 or priority eq 1) and done eq true"
    assert matching(text, env) == expected(lambda r: r["priority"] in (0, 1) and r["done"])
    nested = "((priority eq 0) or ((priority eq 3 and (score ge 1))))"
    assert matching(nested, env) == expected(
        lambda r: r["priority"] == 0 or (r["priority"] == 3 and r["score"] >= 1)
    )


def test_not(env: Env) -> None:
    assert matching("not priority eq 0", env) == expected(lambda r: r["priority"] != 0)
    assert matching("not (priority eq 0 or done eq true)", env) == expected(
        lambda r: not (r["priority"] == 0 or r["done"])
    )
    assert matching("not not done eq true", env) == expected(lambda r: r["done"])
    assert matching("not done eq true and priority eq 2", env) == expected(
        lambda r: not r["done"] and r["priority"] == 2
    )


def test_null_is_two_valued(env: Env) -> None:
    assert matching("note eq null", env) == expected(lambda r: r["note"] is None)
    assert matching("note ne null", env) == expected(lambda r: r["note"] is not None)
    # A missing note differs from every value, and `not` is an exact negation.
    assert matching("note ne 'note 1'", env) == expected(lambda r: r["note"] != "note 1")
    assert matching("not note eq 'note 1'", env) == expected(lambda r: r["note"] != "note 1")
    assert matching("not contains(note,'1')", env) == expected(
        lambda r: r["note"] is None or "1" not in r["note"]
    )


def test_other_tenants_never_appear(env: Env) -> None:
    assert matching("title eq 'alpha' or priority ge 0", env) == {r["id"] for r in ROWS}
    assert len(walk(env, tenant="t2", limit=3)) == len(OTHER_TENANT)


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "where", "message"),
    [
        ({"filter": "tenant_id eq 't2'"}, "$filter", "unknown field 'tenant_id'"),
        ({"filter": "id eq 'x'"}, "$filter", "unknown field 'id'"),
        ({"filter": "body eq 'x'"}, "$filter", "cannot filter by 'body'"),
        ({"filter": "priority eq 'high'"}, "$filter", "'priority' expects an integer, got 'high'"),
        ({"filter": "priority eq high"}, "$filter", "'priority' expects an integer, got 'high'"),
        ({"filter": "priority eq 1.5"}, "$filter", "'priority' expects an integer, got '1.5'"),
        ({"filter": "score eq 'x'"}, "$filter", "'score' expects a number, got 'x'"),
        ({"filter": "done eq 1"}, "$filter", "'done' expects true or false, got '1'"),
        ({"filter": "title eq 5"}, "$filter", "'title' expects a string, got '5'"),
        ({"filter": "created gt 'soon'"}, "$filter", "'created' expects a datetime, got 'soon'"),
        (
            {"filter": "created gt 2024-13-01T00:00"},
            "$filter",
            "'created' expects a datetime, got '2024-13-01T00:00'",
        ),
        ({"filter": "priority eq"}, "$filter", "'priority' expects an integer, got nothing"),
        (
            {"filter": "priority gt null"},
            "$filter",
            "'priority' can only be compared with null using eq or ne",
        ),
        ({"filter": "title eq 'abc"}, "$filter", "unterminated string starting at position 10"),
        ({"filter": "priority == 1"}, "$filter", "unexpected character '=' at position 10"),
        ({"filter": "priority eq 1e5"}, "$filter", "malformed number or datetime at position 13"),
        (
            {"filter": "priority 1"},
            "$filter",
            "expected an operator (eq, ne, gt, ge, lt, le) after 'priority' at position 10, "
            "got '1'",
        ),
        (
            {"filter": "priority EQ 1"},
            "$filter",
            "expected an operator (eq, ne, gt, ge, lt, le) after 'priority' at position 10, "
            "got 'EQ'",
        ),
        (
            {"filter": "priority eq 1 done eq true"},
            "$filter",
            "expected 'and', 'or' or the end at position 15, got 'done'",
        ),
        (
            {"filter": "priority eq 1 and"},
            "$filter",
            "expected a field name at position 18, got the end of the input",
        ),
        (
            {"filter": "(priority eq 1"},
            "$filter",
            "expected ')' to close the parenthesis at position 15, got the end of the input",
        ),
        ({"filter": "1 eq priority"}, "$filter", "expected a field name at position 1, got '1'"),
        (
            {"filter": "contains(priority,'1')"},
            "$filter",
            "contains() needs a string field; 'priority' is an integer",
        ),
        (
            {"filter": "startswith(title,1)"},
            "$filter",
            "startswith() expects a quoted string at position 18, got '1'",
        ),
        ({"filter": "endswith(tenant_id,'x')"}, "$filter", "unknown field 'tenant_id'"),
        (
            {"filter": " or ".join(["priority eq 1"] * (MAX_CONDITIONS + 1))},
            "$filter",
            f"too many conditions (at most {MAX_CONDITIONS})",
        ),
        (
            {"filter": "(" * 20 + "done eq true" + ")" * 20},
            "$filter",
            "nested too deeply (more than 16 levels)",
        ),
        ({"orderby": "body"}, "$orderby", "cannot sort by 'body'"),
        ({"orderby": "note desc"}, "$orderby", "cannot sort by 'note'"),
        ({"orderby": "tenant_id"}, "$orderby", "unknown field 'tenant_id'"),
        ({"orderby": "title, title desc"}, "$orderby", "'title' appears more than once"),
        (
            {"orderby": "title up"},
            "$orderby",
            "expected 'asc', 'desc' or ',' at position 7, got 'up'",
        ),
        (
            {"orderby": "title,"},
            "$orderby",
            "expected a field name at position 7, got the end of the input",
        ),
        ({"limit": 26}, "limit", "must be between 1 and 25"),
        ({"cursor": "!!!"}, "cursor", "not a valid cursor"),
        ({"cursor": "bm90IGpzb24"}, "cursor", "not a valid cursor"),  # "not json"
    ],
)
def test_invalid_input_names_the_parameter(
    env: Env, params: dict[str, Any], where: str, message: str
) -> None:
    with db_session, pytest.raises(ListQueryError) as caught:
        page(env.query(), SPEC, ListParams(**params))
    assert (caught.value.param, caught.value.message) == (where, message)
    assert str(caught.value) == f"{where}: {message}"


def test_error_becomes_a_400_problem() -> None:
    problem = ListQueryError("$filter", "unknown field 'tenant_id'").to_problem()
    assert problem.status_code == 400
    assert problem.description == "$filter: unknown field 'tenant_id'"
    assert problem.field_errors is not None
    assert problem.field_errors[0].field == "query.$filter"


def test_spec_refuses_unsafe_declarations() -> None:
    with pytest.raises(ValueError, match="nullable fields cannot be sortable"):
        ListSpec(fields={"note": ListField(str, nullable=True, sort=True)})
    with pytest.raises(ValueError, match="tenant_id cannot be a list field"):
        ListSpec(fields={"tenant_id": ListField(str)})
    with pytest.raises(ValueError, match="tenant_id cannot be a list field"):
        ListSpec(fields={"tenant": ListField(str, attr="tenant_id")})
    with pytest.raises(ValueError, match="not a plain identifier"):
        ListSpec(fields={"a.b": ListField(str)})
    with pytest.raises(ValueError, match="not a plain identifier"):
        ListSpec(fields={"__class__": ListField(str)})
    with pytest.raises(ValueError, match="unsupported type"):
        ListSpec(fields={"blob": ListField(bytes)})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="default_order: cannot sort by 'x'"):
        ListSpec(fields={"x": ListField(str)}, default_order="x")
    with pytest.raises(ValueError, match="default_limit"):
        ListSpec(fields={}, max_limit=10, default_limit=11)


# -- SQL parameters -------------------------------------------------------------------------------


def test_values_are_bound_parameters_not_sql_text(env: Env) -> None:
    evil = "x'); DROP TABLE task; --"
    text = (
        f"title eq '{evil.replace(chr(39), chr(39) * 2)}' or priority eq 987654321"
        " or score gt 12345.5 or created gt 2031-07-08T09:10:11 or contains(note,'zz%q')"
        " or priority ge 0"
    )
    params = ListParams(filter=text, orderby="score desc", limit=1)
    with db_session:
        first = page(env.query(), SPEC, params)
        assert first.next_cursor is not None
        query = compile_params(SPEC, params.model_copy(update={"cursor": first.next_cursor}))
        sql = apply(env.query(), query).get_sql()
    for literal in ("DROP", "987654321", "12345.5", "2031", "zz", "secret", "t1-0"):
        assert literal not in sql, sql
    placeholder = {"sqlite": "?", "postgres": "%(p", "mariadb": "%s"}[ENGINE]
    assert sql.count(placeholder) >= 8, sql


# -- ordering and pagination ----------------------------------------------------------------------


def python_order(rows: list[dict[str, Any]], keys: list[tuple[str, bool]]) -> list[str]:
    ordered = sorted(rows, key=lambda r: r["id"])
    for name, descending in reversed(keys):  # stable sorts, least significant key first
        ordered = sorted(ordered, key=lambda r: r[name], reverse=descending)
    return [r["id"] for r in ordered]


@pytest.mark.parametrize(
    ("orderby", "keys"),
    [
        (None, [("priority", True)]),  # the spec's default order
        ("priority", [("priority", False)]),
        ("priority asc, created desc", [("priority", False), ("created_at", True)]),
        ("score desc, done, priority desc", [("score", True), ("done", False), ("priority", True)]),
        ("done desc, score", [("done", True), ("score", False)]),
        ("created desc", [("created_at", True)]),
        ("id desc", [("id", True)]),
    ],
)
@pytest.mark.parametrize("limit", [1, 4, 7, 25])
def test_walking_pages_equals_full_sorted_list(
    env: Env, orderby: str | None, keys: list[tuple[str, bool]], limit: int
) -> None:
    assert walk(env, limit=limit, orderby=orderby) == python_order(ROWS, keys)


@pytest.mark.parametrize("orderby", ["title", "title desc, priority", "title, created desc"])
def test_string_order_pages_follow_the_database_collation(env: Env, orderby: str) -> None:
    with db_session:
        unpaged = apply(env.query(), compile_params(SPEC, ListParams(orderby=orderby)))
        full = [t.id for t in unpaged]
    assert sorted(full) == sorted(r["id"] for r in ROWS)
    assert walk(env, limit=3, orderby=orderby) == full


def test_filter_and_order_combine_across_pages(env: Env) -> None:
    rows = [r for r in ROWS if r["priority"] != 2 and r["note"] is not None]
    assert walk(
        env, limit=2, filter="priority ne 2 and note ne null", orderby="score desc"
    ) == python_order(rows, [("score", True)])


def test_default_limit_and_last_page(env: Env) -> None:
    with db_session:
        first = page(env.query(), SPEC, ListParams())
        assert len(first.items) == SPEC.default_limit and first.next_cursor
        exact = page(env.query(), SPEC, ListParams(filter="priority eq 0", limit=8))
        assert len(exact.items) == 8 and exact.next_cursor is None  # limit+1 fetch: no empty page
        empty = page(env.query(), SPEC, ListParams(filter="priority gt 10"))
        assert empty.items == [] and empty.next_cursor is None


def test_pagination_is_stable_when_rows_are_inserted(env: Env) -> None:
    tenant = "t-insert"
    rows = [make_row(i, tenant) for i in range(0, 20, 2)]
    with db_session:
        for row in rows:
            env.Task(**row)
    # Inserted after the second page, whose last row is 010 (created at 10h).
    before = [make_row(1, tenant), {**make_row(10, tenant), "id": f"{tenant}-00a"}]
    after = [make_row(17, tenant), {**make_row(10, tenant), "id": f"{tenant}-zzz"}]
    try:
        seen: list[str] = []
        cursor = None
        for round_ in range(20):
            with db_session:
                params = ListParams(orderby="created", limit=3, cursor=cursor)
                found = page(env.query(tenant), SPEC, params)
                seen += [t.id for t in found.items]
            if round_ == 1:
                assert seen[-1] == f"{tenant}-010"
                with db_session:
                    for row in before + after:
                        env.Task(**row)
            if found.next_cursor is None:
                break
            cursor = found.next_cursor
        # Nothing repeated or skipped; rows inserted behind the cursor are not seen, rows ahead are.
        assert seen == python_order(rows + after, [("created_at", False)])
    finally:
        with db_session:
            delete(t for t in env.Task if t.tenant_id == tenant)


# -- cursors --------------------------------------------------------------------------------------


def first_cursor(env: Env, **params: Any) -> str:
    with db_session:
        cursor = page(env.query(), SPEC, ListParams(limit=2, **params)).next_cursor
    assert cursor is not None
    return cursor


def encode(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def decode(cursor: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return result


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"filter": "priority ge 1"}, {"filter": "priority ge 2"}),
        ({"filter": "priority ge 1"}, {}),
        ({"orderby": "score"}, {"orderby": "score desc"}),
        ({"orderby": "score"}, {}),
    ],
)
def test_cursor_from_another_query_is_rejected(
    env: Env, first: dict[str, Any], second: dict[str, Any]
) -> None:
    cursor = first_cursor(env, **first)
    with db_session, pytest.raises(ListQueryError, match=r"^cursor: does not match this query$"):
        page(env.query(), SPEC, ListParams(cursor=cursor, **second))


def test_cursor_survives_cosmetic_changes_and_other_page_sizes(env: Env) -> None:
    cursor = first_cursor(env, filter="priority ge 1 and done eq false", orderby="score desc")
    with db_session:
        again = page(
            env.query(),
            SPEC,
            ListParams(
                filter="( priority ge 1 )and done  eq false",
                orderby="score  desc",
                cursor=cursor,
                limit=9,
            ),
        )
    assert len(again.items) == 9


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c + "*",  # not base64
        lambda c: c[:-3],  # truncated
        lambda c: encode([1, 2]),
        lambda c: encode({**decode(c), "v": decode(c)["v"][:-1]}),  # too few values
        lambda c: encode({**decode(c), "v": ["high", *decode(c)["v"][1:]]}),  # wrong type
        lambda c: encode({**decode(c), "v": [True, *decode(c)["v"][1:]]}),  # bool is no int
        lambda c: encode({**decode(c), "v": [*decode(c)["v"][:-1], 5]}),  # id must be a string
    ],
)
def test_tampered_cursor_is_rejected(env: Env, tamper: Callable[[str], str]) -> None:
    cursor = first_cursor(env, orderby="priority")
    with db_session, pytest.raises(ListQueryError) as caught:
        page(env.query(), SPEC, ListParams(orderby="priority", cursor=tamper(cursor)))
    assert caught.value.param == "cursor"


def test_forged_cursor_only_moves_within_the_scoped_query(env: Env) -> None:
    # Cursors are not signed; a forged one is just another start inside the same scoped query.
    cursor = first_cursor(env, orderby="priority")
    forged = encode({**decode(cursor), "v": [-1, ""]})
    with db_session:
        found = page(env.query(), SPEC, ListParams(orderby="priority", cursor=forged, limit=25))
    assert {t.tenant_id for t in found.items} == {"t1"}


# -- query model, gateway and OpenAPI -------------------------------------------------------------


def test_params_validate_from_the_gateway_query_dict() -> None:
    raw = {"$filter": "done eq true", "$orderby": "title", "limit": "3", "cursor": "abc"}
    params = ListParams.model_validate(raw)
    assert (params.filter, params.orderby, params.limit, params.cursor) == (
        "done eq true",
        "title",
        3,
        "abc",
    )
    bounded = SPEC.params_model("TaskListQuery")
    assert bounded.model_validate({"limit": "25"}).limit == 25
    for bad in ({"limit": "26"}, {"limit": "0"}, {"limit": "many"}, {"other": "x"}):
        with pytest.raises(ValidationError):
            bounded.model_validate(bad)


def test_openapi_shows_the_dollar_names_and_the_limit_bound() -> None:
    model = SPEC.params_model("TaskListQuery")

    class Out(BaseModel):
        count: int

    async def handler(call: Call) -> Out:
        return Out(count=0)

    operation = Operation(
        module="tasks",
        method="GET",
        path="/tasks/v1/tasks",
        operation_id="tasks.list",
        summary="List tasks",
        description="",
        tags=("tasks",),
        query_model=model,
        path_model=None,
        body_model=None,
        responses=(ResponseSpec(200, Out, "OK"),),
        errors={},
        access=Access(None, authenticated=False),
        rate_limit=None,
        handler=handler,
    )
    document = build_openapi([operation], title="t", version="1")
    parameters = document["paths"]["/tasks/v1/tasks"]["get"]["parameters"]
    by_name = {p["name"]: p for p in parameters}
    assert list(by_name) == ["$filter", "$orderby", "limit", "cursor"]
    assert by_name["limit"]["schema"]["anyOf"][0] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 25,
    }


# -- property: the database agrees with a Python evaluation ---------------------------------------

S_ALPHABET = "aAbB _%'!\\"
DATES = [datetime(2024, 5, 1) + timedelta(days=k, seconds=k) for k in range(4)]
FLOATS = [-1.5, 0.0, 0.5, 2.25]

PROP_SPEC = ListSpec(
    fields={
        "s": ListField(str),
        "n": ListField(int, sort=True),
        "f": ListField(float, sort=True),
        "b": ListField(bool, sort=True),
        "d": ListField(datetime, sort=True),
        "note": ListField(str, nullable=True),
    },
    default_order="n desc",
    max_limit=50,
)


def fold(text: str) -> str:
    """What string equality sees under the engine's collation (documented as engine-dependent)."""
    if ENGINE == "mariadb":  # utf8mb4_unicode_ci: case-insensitive, PAD SPACE
        return text.lower().rstrip(" ")
    return text


def like_fold(text: str) -> str:
    """What LIKE sees: case-insensitive on MariaDB (collation, no padding); exact elsewhere
    (Pony turns on SQLite's case_sensitive_like)."""
    return text.lower() if ENGINE == "mariadb" else text


def literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}
FUNCS: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda a, b: b in a,
    "startswith": lambda a, b: a.startswith(b),
    "endswith": lambda a, b: a.endswith(b),
}

Pred = tuple[str, Callable[[dict[str, Any]], bool]]
# Small pools so that case, trailing spaces, quotes and LIKE metacharacters actually collide.
STRINGS = ["", " ", "a", "A", "a ", "A ", "aA", "a%", "a_b", "'", "a!", "\\"]
pooled = st.sampled_from(STRINGS)
texts = st.one_of(pooled, pooled, pooled, st.text(alphabet=S_ALPHABET, max_size=3))
equals = st.sampled_from(["", " ", "a", "A", "a ", "'"]) | texts
needles = st.sampled_from(["", " ", "a", "A", "a ", "%", "_", "'", "!", "\\", "aA"])


def compare(name: str, op: str, value: Any) -> Pred:
    def check(row: dict[str, Any]) -> bool:
        actual = row[name]
        if value is None:
            return (actual is None) == (op == "eq")
        if actual is None:
            return op == "ne"
        if isinstance(value, str):
            return OPS[op](fold(actual), fold(value))
        return OPS[op](actual, value)

    return f"{name} {op} {literal(value)}", check


def call(func: str, name: str, value: str) -> Pred:
    def check(row: dict[str, Any]) -> bool:
        actual = row[name]
        return actual is not None and FUNCS[func](like_fold(actual), like_fold(value))

    return f"{func}({name},{literal(value)})", check


ordered_ops = st.sampled_from(list(OPS))
atoms = st.one_of(
    st.builds(compare, st.just("n"), ordered_ops, st.integers(-2, 2)),
    st.builds(compare, st.just("f"), ordered_ops, st.sampled_from(FLOATS)),
    st.builds(compare, st.just("b"), st.sampled_from(["eq", "ne"]), st.booleans()),
    st.builds(compare, st.just("d"), ordered_ops, st.sampled_from(DATES)),
    # Strings: only eq/ne, whose meaning is the same under every collation up to case/padding.
    st.builds(compare, st.just("s"), st.sampled_from(["eq", "ne"]), equals),
    st.builds(compare, st.just("note"), st.sampled_from(["eq", "ne"]), st.none() | equals),
    st.builds(call, st.sampled_from(list(FUNCS)), st.sampled_from(["s", "note"]), needles),
)
# String semantics are where engines differ: a second test draws only these, so it hits them.
string_atoms = st.one_of(
    st.builds(compare, st.sampled_from(["s", "note"]), st.sampled_from(["eq", "ne"]), equals),
    st.builds(call, st.sampled_from(list(FUNCS)), st.sampled_from(["s", "note"]), needles),
)


def combine(children: st.SearchStrategy[Pred]) -> st.SearchStrategy[Pred]:
    def both(op: str, left: Pred, right: Pred) -> Pred:
        if op == "and":
            return f"({left[0]} and {right[0]})", lambda r: left[1](r) and right[1](r)
        return f"({left[0]} or {right[0]})", lambda r: left[1](r) or right[1](r)

    def negate(inner: Pred) -> Pred:
        return f"not {inner[0]}", lambda r: not inner[1](r)

    return st.one_of(
        st.builds(both, st.sampled_from(["and", "or"]), children, children),
        st.builds(negate, children),
    )


filters = st.recursive(atoms, combine, max_leaves=4)
prop_rows = st.lists(
    st.fixed_dictionaries(
        {
            "s": texts,
            "n": st.integers(-2, 2),
            "f": st.sampled_from(FLOATS),
            "b": st.booleans(),
            "d": st.sampled_from(DATES),
            "note": st.none() | texts,
        }
    ),
    max_size=12,
)
ORDERS: dict[str, list[tuple[str, bool]]] = {
    "n desc": [("n", True)],
    "f, d desc": [("f", False), ("d", True)],
    "b desc, n": [("b", True), ("n", False)],
}


def check_against_python(
    env: Env, raw_rows: list[dict[str, Any]], flt: Pred, orderby: str, limit: int
) -> None:
    rows = [{**r, "id": f"r{i:02d}"} for i, r in enumerate(raw_rows)]
    with db_session:
        select(p for p in env.Prop).delete(bulk=True)
    with db_session:
        for row in rows:
            env.Prop(tenant_id="t1", **row)
            # A mirror in another tenant matches the same filters and must never appear.
            env.Prop(tenant_id="t2", **{**row, "id": "x" + row["id"]})
    text, predicate = flt
    want = python_order([r for r in rows if predicate(r)], ORDERS[orderby])
    got: list[str] = []
    cursor = None
    for _ in range(20):
        with db_session:
            scoped = select(p for p in env.Prop).filter(lambda p: p.tenant_id == "t1")
            params = ListParams(filter=text, orderby=orderby, limit=limit, cursor=cursor)
            found = page(scoped, PROP_SPEC, params)
            got += [p.id for p in found.items]
        cursor = found.next_cursor
        if cursor is None:
            break
    assert got == want, text


def test_filters_agree_with_python_evaluation(env: Env) -> None:
    @settings(max_examples=150, deadline=None, database=None)
    @given(prop_rows, filters, st.sampled_from(list(ORDERS)), st.integers(1, 4))
    def check(raw_rows: list[dict[str, Any]], flt: Pred, orderby: str, limit: int) -> None:
        check_against_python(env, raw_rows, flt, orderby, limit)

    check()


EXAMPLE_ROWS = [
    {"s": text, "n": 0, "f": 0.0, "b": False, "d": DATES[0], "note": note}
    for text, note in [("A", "a "), ("a ", None), ("aA", "A"), ("a%", "a_b"), ("a_b", "")]
]


def test_string_filters_agree_with_the_collation_model(env: Env) -> None:
    negated = st.builds(lambda p: (f"not {p[0]}", lambda r: not p[1](r)), string_atoms)

    # The explicit examples pin the cases where engines differ (case, padding, wildcards).
    @settings(max_examples=300, deadline=None, database=None)
    @given(prop_rows, string_atoms | negated)
    @example(EXAMPLE_ROWS, call("contains", "s", "a"))
    @example(EXAMPLE_ROWS, call("startswith", "note", "A"))
    @example(EXAMPLE_ROWS, call("endswith", "s", " "))
    @example(EXAMPLE_ROWS, call("contains", "note", "_"))
    @example(EXAMPLE_ROWS, call("contains", "s", "%"))
    @example(EXAMPLE_ROWS, compare("s", "eq", "a"))
    @example(EXAMPLE_ROWS, compare("note", "ne", "a"))
    def check(raw_rows: list[dict[str, Any]], flt: Pred) -> None:
        check_against_python(env, raw_rows, flt, "n desc", 50)

    check()


def test_aware_datetime_literal_is_converted_to_utc() -> None:
    params = ListParams(filter="d eq 2024-05-01T02:00:00+02:00")
    node = compile_params(PROP_SPEC, params).filter
    assert node is not None
    assert getattr(node, "value", None) == datetime(2024, 5, 1, 0, 0, tzinfo=UTC).replace(
        tzinfo=None
    )
