"""OP#13 schema traits (spec §9.7, §9.11.4, ADR-0002..0004).

``fixtures/gts/schemas-cases/op13_traits.json`` restates the cases of the gts-spec conformance
suite (tests/test_op13_schema_traits_validation.py) as data; the functions below test the merge
and materialization rules directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hyperspot.platform.gts import GtsEntity, GtsError, GtsStore
from hyperspot.platform.gts.traits import (
    effective_traits,
    materialize,
    merge_patch,
    merged_traits,
    trait_layers,
)
from hyperspot.platform.gts.validation import (
    check_registration,
    check_schema_basic,
    validate_entity,
    validate_instance,
    validate_type_schema,
)

FIXTURES = Path(__file__).parent / "fixtures" / "gts"
D7 = "http://json-schema.org/draft-07/schema#"


def _documents(item: Any) -> list[dict[str, Any]]:
    if not isinstance(item, str):
        return [item]
    documents: list[dict[str, Any]] = []
    for path in sorted((FIXTURES / item[1:]).rglob("*.json")):
        data = json.loads(path.read_text())
        documents.extend(data if isinstance(data, list) else [data])
    return documents


def _scenarios() -> list[Any]:
    data = json.loads((FIXTURES / "schemas-cases" / "op13_traits.json").read_text())
    return [pytest.param(s, id=s["name"]) for s in data["cases"]]


@pytest.mark.parametrize("scenario", _scenarios())
def test_scenario(scenario: dict[str, Any]) -> None:
    store = GtsStore()
    for item in scenario["entities"]:
        for document in _documents(item):
            store.put(GtsEntity.from_content(document))
    before = {e.id: e for e in store.entities()}
    for check in scenario["checks"]:
        mode = check.get("mode", "any-valid")
        body: dict[str, Any]
        if check["op"] in ("register", "basic"):
            # Registration-time checks of a document that is not in the store.
            errors = (
                check_registration(store, GtsEntity.from_content(check["document"]), mode)
                if check["op"] == "register"
                else check_schema_basic(check["document"])
            )
            body = {"ok": not errors, "error": "; ".join(errors)}
        else:
            validate = {
                "type": validate_type_schema,
                "entity": validate_entity,
                "instance": validate_instance,
            }[check["op"]]
            body = validate(store, check["id"], mode)
        assert body["ok"] is check["ok"], (check.get("id"), body)
        if "error" in check:
            assert check["error"] in body["error"], body
        if "entity_type" in check:
            assert body["entity_type"] == check["entity_type"]
    # Validation and registration checks never write the registry (§9.3).
    assert {e.id: e for e in store.entities()} == before


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        # RFC 7396 appendix A examples.
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_rfc7396(target: Any, patch: Any, expected: Any) -> None:
    before = json.dumps(target)
    assert merge_patch(target, patch) == expected
    assert json.dumps(target) == before  # inputs are not modified


def _chain() -> list[tuple[str, dict[str, Any]]]:
    base = {
        "$id": "gts://gts.x.t.m.base.v1~",
        "$schema": D7,
        "x-gts-traits-schema": {
            "type": "object",
            "properties": {
                "retention": {"type": "string", "default": "P30D"},
                "routing": {
                    "type": "object",
                    "properties": {"topic": {"type": "string", "default": "events"}},
                },
            },
        },
        "x-gts-traits": {"routing": {"key": "userId"}, "tags": ["a", "b"]},
    }
    mid = {
        "$id": "gts://gts.x.t.m.base.v1~x.t._.mid.v1~",
        "$schema": D7,
        "x-gts-traits-schema": {"properties": {"retention": {"default": "P90D"}}},
        "x-gts-traits": {"tags": ["c"], "retention": None},
    }
    return [("gts.x.t.m.base.v1~", base), ("gts.x.t.m.base.v1~x.t._.mid.v1~", mid)]


def test_effective_traits_merge_root_to_leaf_and_leaf_most_default_wins() -> None:
    chain = _chain()
    values, given = merged_traits(chain)
    assert given
    assert values == {"routing": {"key": "userId"}, "tags": ["c"]}
    layers = trait_layers(chain)
    assert [layer.host_id for layer in layers] == [tid for tid, _ in chain]
    assert layers[0].reference == {"$ref": "gts://gts.x.t.m.base.v1~#/x-gts-traits-schema"}
    effective = materialize(values, [layer.schema for layer in layers])
    # The mid layer's default wins; a nested default fills the present routing object.
    assert effective == {
        "routing": {"key": "userId", "topic": "events"},
        "tags": ["c"],
        "retention": "P90D",
    }
    assert values == {"routing": {"key": "userId"}, "tags": ["c"]}  # not modified


def test_trait_values_without_any_trait_schema_are_reported() -> None:
    values, given = merged_traits([("gts.x.t.m.b.v1~", {"$schema": D7})])
    assert (values, given) == ({}, False)
    assert trait_layers([("gts.x.t.m.b.v1~", {"$schema": D7})]) == []


def test_effective_traits_of_registered_example_types() -> None:
    store = GtsStore()
    for document in _documents("@events"):
        store.put(GtsEntity.from_content(document))
    assert effective_traits(store, "gts.x.core.events.type.v1~") == {
        "topicRef": "gts.x.core.events.topic.v1~x.core._.default.v1",
        "retention": "P30D",
    }
    leaf = "gts.x.core.events.type.v1~x.core.audit.type.v1~x.core.iam.settings_changed.v1~"
    assert effective_traits(store, leaf) == {
        "topicRef": "gts.x.core.events.topic.v1~x.core.audit.events.v1",
        "retention": "P730D",
    }
    with pytest.raises(GtsError, match="not found"):
        effective_traits(store, "gts.x.core.events.type.v1~x.none._.t.v1~")
    with pytest.raises(GtsError, match="not a GTS Type Identifier"):
        effective_traits(store, "gts.x.core.events.topic.v1~x.core._.default.v1")
