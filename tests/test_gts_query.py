"""OP#10 query language (§3.3) and OP#11 attribute selector (§3.4) over an in-memory store.

The entities and expressions follow the cases of the conformance suite (tests/test_op10 and
tests/test_op11 of GlobalTypeSystem/gts-spec) and the examples of the specification text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hyperspot.platform.gts import (
    GtsEntity,
    GtsError,
    GtsQueryError,
    GtsStore,
    attr,
    parse_query,
    query,
    select,
)

FIXTURES = Path(__file__).parent / "fixtures" / "gts"

EVENTS: list[dict[str, Any]] = [
    {
        "id": "gts.x.test10.query.event.v1.0~a.b.c.d.v1",
        "type": "gts.x.test10.query.event.v1.0~",
        "eventId": "evt-001",
        "status": "active",
        "category": "order",
    },
    {
        "id": "gts.x.test10.query.event.v1.1~a.b.c.d.v2",
        "type": "gts.x.test10.query.event.v1.1~",
        "eventId": "evt-002",
        "status": "inactive",
        "category": "payment",
    },
    {
        "id": "gts.x.test10.query.event.v2.2~a.b.c.d.v1~a.b.c.d.v2",
        "type": "gts.x.test10.query.event.v2.2~a.b.c.d.v1~",
        "eventId": "evt-003",
        "status": "active",
        "category": "email",
    },
    {
        "id": "gts.x.test10.other_namespace.notification.v1.0~a.b.c.d.v1",
        "type": "gts.x.test10.other_namespace.notification.v1.0~",
        "eventId": "evt-003",
        "status": "some",
        "category": "email",
    },
    {
        "id": "gts.x.test10_2.commerce.order.v2.0~a.b.c.d.v1",
        "type": "gts.x.test10_2.commerce.order.v2.0~",
        "eventId": "evt-004",
        "status": "active",
        "category": "order",
    },
    {
        "id": "gts.x.test10.zero.event.v0~x.test10._.instance.v0",
        "type": "gts.x.test10.zero.event.v0~",
        "eventId": "evt-v0",
    },
]
DRAFT7 = "http://json-schema.org/draft-07/schema#"
CHAT_TYPES: list[dict[str, Any]] = [
    {"$schema": DRAFT7, "$id": "gts://gts.x.test10_llm.chat.message.v1.0~", "type": "object"},
    {
        "$schema": DRAFT7,
        "$id": "gts://gts.x.test10_llm.chat.message.v1.0~x.test10_llm._.system_message.v1.0~",
        "allOf": [{"$ref": "gts://gts.x.test10_llm.chat.message.v1.0~"}],
    },
    {"$schema": DRAFT7, "$id": "gts://gts.x.test10_llm.chat.message.v1.1~", "type": "object"},
    {
        "$schema": DRAFT7,
        "$id": "gts://gts.x.test10_llm.chat.message.v1.1~x.test10_llm._.user_message.v1.1~",
        "allOf": [{"$ref": "gts://gts.x.test10_llm.chat.message.v1.1~"}],
    },
]


def _store(documents: list[dict[str, Any]]) -> GtsStore:
    store = GtsStore()
    for document in documents:
        store.put(GtsEntity.from_content(document))
    return store


@pytest.fixture
def store() -> GtsStore:
    return _store(EVENTS + CHAT_TYPES)


def _ids(body: dict[str, Any]) -> list[str]:
    return [document.get("id") or document["$id"] for document in body["results"]]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("gts.x.test10.query.event.v1.0~a.b.c.d.v1", [EVENTS[0]["id"]]),
        ("gts.x.test10.zero.event.v0~x.test10._.instance.v0", [EVENTS[5]["id"]]),
        ("gts.x.test10.query.*", [EVENTS[0]["id"], EVENTS[1]["id"], EVENTS[2]["id"]]),
        ("gts.x.test10.query.event.*", [EVENTS[0]["id"], EVENTS[1]["id"], EVENTS[2]["id"]]),
        ("gts.x.test10.query.event.v2.*", [EVENTS[2]["id"]]),
        ("gts.x.test10.query.event.v1.1~*", [EVENTS[1]["id"]]),
        ("gts.x.test10.query.event.v1~", [EVENTS[0]["id"], EVENTS[1]["id"]]),
        ("gts.x.test10.*[status=active]", [EVENTS[0]["id"], EVENTS[2]["id"]]),
        ("gts.x.test10.*[status=active, category=order]", [EVENTS[0]["id"]]),
        ('gts.x.test10.*[status="active", category="order"]', [EVENTS[0]["id"]]),
        ("gts.x.test10.*[status='active',category='order']", [EVENTS[0]["id"]]),
        ("gts.x.test10.*[status=active, category=*]", [EVENTS[0]["id"], EVENTS[2]["id"]]),
        ("gts.x.test10.*[status=nonexisting, category=order]", []),
        ("gts.nonexistent.*", []),
        # §10 use cases: "~*" lists derived types only, ".*" also the bases
        (
            "gts.x.test10_llm.chat.message.v1.0~*",
            ["gts://gts.x.test10_llm.chat.message.v1.0~x.test10_llm._.system_message.v1.0~"],
        ),
        ("gts.x.test10_llm.chat.message.*", [document["$id"] for document in CHAT_TYPES]),
        (
            "gts.x.test10_llm.chat.message.v1~*",
            [CHAT_TYPES[1]["$id"], CHAT_TYPES[3]["$id"]],
        ),
        ("gts.x.test10_llm.chat.message.v1.*", [document["$id"] for document in CHAT_TYPES]),
    ],
)
def test_op10_query_selects(store: GtsStore, expr: str, expected: list[str]) -> None:
    body = query(store, expr, 50)
    assert body["error"] == ""
    assert body["limit"] == 50
    assert _ids(body) == expected
    assert body["count"] == len(expected)


def test_op10_wildcard_over_a_vendor_package(store: GtsStore) -> None:
    body = query(store, "gts.x.test10.*", 50)
    # the "test10_2" package and the "test10_llm" types are other packages
    assert _ids(body) == [
        EVENTS[0]["id"],
        EVENTS[1]["id"],
        EVENTS[2]["id"],
        EVENTS[3]["id"],
        EVENTS[5]["id"],
    ]


def test_op10_limit_caps_results(store: GtsStore) -> None:
    body = query(store, "gts.x.test10.*", 2)
    assert body["limit"] == 2 and body["count"] == 2 and len(body["results"]) == 2
    assert query(store, "gts.x.test10.*")["limit"] == 100


@pytest.mark.parametrize("limit", [0, 1001, -1, True])
def test_op10_limit_out_of_range(store: GtsStore, limit: int) -> None:
    with pytest.raises(GtsError, match="limit"):
        query(store, "gts.*", limit)


@pytest.mark.parametrize(
    "expr",
    [
        "gts.x.test10.query",
        "gts.x.test10..query.v1",
        "gtsa.x.test10._.query.v",
        "gtsa.x.test10._.query.v1~a.b.c.d",
        "gts.x.test10.*~[status=active]",
        "gts.x.test10.*[status=active",
        "gts.x.test10.*[]",
        "gts.x.test10.*[status]",
        "gts.x.test10.*[status=active,]",
        'gts.x.test10.*[status="active]',
        "gts.x.test10.*[=active]",
        "gts.x.test10.query.event.v1.0~a.b.c.d.v1@status",
        "gts.x.*[ref=gts.a*]",
        "",
        "   ",
    ],
)
def test_op10_invalid_queries(store: GtsStore, expr: str) -> None:
    body = query(store, expr)
    assert body["error"].startswith("Invalid query")
    assert "\n" not in body["error"]
    assert body["results"] == [] and body["count"] == 0
    with pytest.raises(GtsQueryError, match=r"^Invalid query"):
        parse_query(expr)


def test_op10_spec_examples_with_gts_valued_predicates() -> None:
    # §3.3: events published to a topic by a vendor; §3.5: ABAC predicate with a wildcard value
    topic = "gts.x.core.events.topic.v1~z.app._.some_topic.v1~"
    store = _store(
        [
            {"id": "gts.x.core.events.type.v1~a.b.c.d.v1", "type_id": topic},
            {"id": "gts.x.core.events.type.v1~a.b.c.e.v1", "type_id": "gts.other.a.b.c.v1~"},
            {
                "id": "gts.x.ui.left_menu.menu_item.v1~x.ui._.users.v1",
                "screen_type": "gts.x.ui.core_ui.screens.v1~abc.app._.users.v1~",
            },
            {
                "id": "gts.x.ui.left_menu.menu_item.v1~x.ui._.admin.v1",
                "screen_type": "gts.x.ui.core_ui.screens.v1~xyz.app._.admin.v1~",
            },
        ]
    )
    by_topic = query(store, f'gts.x.core.events.type.v1~[type_id="{topic}"]')
    assert _ids(by_topic) == ["gts.x.core.events.type.v1~a.b.c.d.v1"]
    abac = query(
        store, 'gts.x.ui.left_menu.menu_item.v1~[screen_type="gts.x.ui.core_ui.screens.v1~abc.*"]'
    )
    assert _ids(abac) == ["gts.x.ui.left_menu.menu_item.v1~x.ui._.users.v1"]


def test_op10_predicates_compare_json_values_and_nested_paths() -> None:
    store = _store(
        [
            {"id": "gts.x.a.b.c.v1~x.a._.one.v1", "on": True, "n": 5, "meta": {"tier": "gold"}},
            {"id": "gts.x.a.b.c.v1~x.a._.two.v1", "on": False, "n": 5.5, "meta": None},
        ]
    )
    assert _ids(query(store, "gts.x.a.*[on=true]")) == ["gts.x.a.b.c.v1~x.a._.one.v1"]
    assert _ids(query(store, "gts.x.a.*[n=5.5]")) == ["gts.x.a.b.c.v1~x.a._.two.v1"]
    assert _ids(query(store, "gts.x.a.*[meta.tier=gold]")) == ["gts.x.a.b.c.v1~x.a._.one.v1"]
    # "*" needs a present, non-null value
    assert _ids(query(store, "gts.x.a.*[meta=*]")) == ["gts.x.a.b.c.v1~x.a._.one.v1"]
    assert _ids(query(store, 'gts.x.a.*[meta.tier="gold", n=5]')) == ["gts.x.a.b.c.v1~x.a._.one.v1"]


def test_op10_anonymous_instances_are_selected_through_their_type() -> None:
    documents: list[dict[str, Any]] = []
    for path in sorted(FIXTURES.glob("events/*/*.json")):
        loaded = json.loads(path.read_text(encoding="utf-8"))
        documents.extend(loaded if isinstance(loaded, list) else [loaded])
    store = _store(documents)
    audit = "gts.x.core.events.type.v1~x.core.audit.type.v1~"
    found = sorted(entity.id for entity in select(store, audit + "*"))
    assert found == [
        "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        "b2c3d4e5-f6a7-8901-bcde-f12345678901",
        audit + "x.core.iam.settings_changed.v1~",
    ]
    assert [entity.id for entity in select(store, audit + "*[sequenceNumber=43]")] == [
        "b2c3d4e5-f6a7-8901-bcde-f12345678901"
    ]
    topics = select(store, "gts.x.core.events.topic.v1~*")
    assert len(topics) == 3 and all(not entity.is_type for entity in topics)
    assert len(select(store, "gts.*", limit=4)) == 4


# --- OP#11 attribute selector -------------------------------------------------------------------

ORDER = "gts.x.test11.array_access.order.v1~x.test11._.order_arr.v1"
NESTED = "gts.x.test11.events.type.v1~x.test11.nested.type.v1.0~x.test11.my.event.v1.0"


@pytest.fixture
def attr_store() -> GtsStore:
    return _store(
        [
            {
                "id": NESTED,
                "type": "gts.x.test11.events.type.v1~x.test11.nested.type.v1.0~",
                "eventId": "ad4g5h67-8901-72de-2345-def456789",
                "payload": {
                    "orderId": "order-12345",
                    "customer": {"name": "John Doe", "email": "john.doe@example.com"},
                },
            },
            {
                "type": "gts.x.test11.array_access.order.v1~",
                "id": ORDER,
                "orderId": "ORD-123",
                "items": [
                    {"sku": "SKU-001", "name": "Item 1", "price": 10.99},
                    {"sku": "SKU-002", "name": "Item 2", "price": 20.99},
                ],
                "records": [{"details": {"metadata": {"tags": ["review", "pending"]}}}],
                "enabled": True,
                "maxRetries": 5,
                "timeout": 30.5,
                "nothing": None,
                "level1": {"level2": {"level3": {"level4": {"level5": {"deep": "found-it"}}}}},
            },
            {
                "id": "test11-nosymbol-instance",
                "type": "gts.x.test11.nosymbol.type.v1~x.test11.nosymbol.event.v1.0~",
                "payload": {"field1": "value1"},
            },
        ]
    )


@pytest.mark.parametrize(
    ("selector", "value"),
    [
        (NESTED + "@eventId", "ad4g5h67-8901-72de-2345-def456789"),
        (NESTED + "@payload.customer.email", "john.doe@example.com"),
        (NESTED + "@payload.customer", {"name": "John Doe", "email": "john.doe@example.com"}),
        (ORDER + "@items[0].sku", "SKU-001"),
        (ORDER + "@items[1].name", "Item 2"),
        (ORDER + "@records[0].details.metadata.tags[1]", "pending"),
        (ORDER + "@enabled", True),
        (ORDER + "@maxRetries", 5),
        (ORDER + "@timeout", 30.5),
        (ORDER + "@nothing", None),
        (ORDER + "@level1.level2.level3.level4.level5.deep", "found-it"),
        ("test11-nosymbol-instance@payload.field1", "value1"),
    ],
)
def test_op11_resolves_values(attr_store: GtsStore, selector: str, value: Any) -> None:
    gts_id, _, path = selector.partition("@")
    assert attr(attr_store, selector) == {
        "gts_id": gts_id,
        "path": path,
        "value": value,
        "resolved": True,
    }


@pytest.mark.parametrize(
    ("selector", "reason"),
    [
        (NESTED + "@payload.nonExistent", "path not found"),
        (ORDER + "@items[7].sku", "path not found"),
        (ORDER + "@items.sku", "path not found"),
        (ORDER + "@orderId[0]", "path not found"),
        (ORDER + "@", "empty"),
        (ORDER + "@items..sku", "malformed"),
        (ORDER + "@items[x]", "malformed"),
        (ORDER, "'@' is missing"),
        ("gts.x.test11.nosymbol.type.v1~x.test11.nosymbol.event.v1.0", "'@' is missing"),
        ("gts.x.test11.unknown.type.v1~x.a._.b.v1@id", "not found"),
    ],
)
def test_op11_unresolved(attr_store: GtsStore, selector: str, reason: str) -> None:
    body = attr(attr_store, selector)
    assert body["resolved"] is False
    assert body["value"] is None
    assert reason in body["error"]


def test_op11_names_the_available_fields_when_a_path_misses(attr_store: GtsStore) -> None:
    body = attr(attr_store, NESTED + "@nope")
    assert body["available_fields"] == ["eventId", "id", "payload", "type"]
