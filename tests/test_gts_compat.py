"""GTS Type Schema evolution compatibility (spec §4, OP#8) and version casting (OP#9).

The cases come from the specification: every `/compatibility` and `/cast` case of the conformance
suite (tests/test_op8_compatibility_checking.py, tests/test_op9_version_casting.py of
GlobalTypeSystem/gts-spec), the examples of §4.6, rows of the §4.5 table, the §4.4 content
models and the minor-version pair of the examples folder; they live as data under
tests/fixtures/gts/compat-cases/ and are checked here against the library.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from hyperspot.platform.gts.cast import GtsCastError, cast
from hyperspot.platform.gts.compat import (
    GtsCompatibilityError,
    check_compatibility,
    compare_schemas,
    resolve_schema,
    schema_dialect,
)
from hyperspot.platform.gts.ids import GtsError, GtsIdError
from hyperspot.platform.gts.store import GtsEntity, GtsStore

CASES = Path(__file__).parent / "fixtures" / "gts" / "compat-cases"
D7 = "http://json-schema.org/draft-07/schema#"
D2020 = "https://json-schema.org/draft/2020-12/schema"
VERDICTS = ["compatible", "incompatible", "unknown"]

# Response schemas of tests/openapi.json (gts-spec): GET /compatibility and components.CastResponse.
COMPATIBILITY_RESPONSE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "old": {"type": "string"},
        "new": {"type": "string"},
        "backward_compatibility": {"type": "string", "enum": VERDICTS},
        "forward_compatibility": {"type": "string", "enum": VERDICTS},
        "full_compatibility": {"type": "string", "enum": VERDICTS},
    },
    "required": [
        "old",
        "new",
        "backward_compatibility",
        "forward_compatibility",
        "full_compatibility",
    ],
}
CAST_RESPONSE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "casted_entity": {"type": "object"},
        "backward_compatibility": {"type": "string", "enum": VERDICTS},
        "forward_compatibility": {"type": "string", "enum": VERDICTS},
        "full_compatibility": {"type": "string", "enum": VERDICTS},
    },
    "required": ["backward_compatibility", "forward_compatibility", "full_compatibility"],
}


def _cases(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((CASES / name).read_text())["cases"]
    return cases


def _store(*documents: dict[str, Any]) -> GtsStore:
    store = GtsStore()
    for document in documents:
        store.put(GtsEntity.from_content(document))
    return store


def _content(store: GtsStore, gts_id: str) -> dict[str, Any]:
    entity = store.get(gts_id)
    assert entity is not None, gts_id
    return entity.content


def _verdicts(body: dict[str, Any]) -> dict[str, str]:
    return {
        "backward": body["backward_compatibility"],
        "forward": body["forward_compatibility"],
        "full": body["full_compatibility"],
    }


def _plain_validator(schema: dict[str, Any], store: GtsStore) -> jsonschema.protocols.Validator:
    """A stock jsonschema validator (no GTS code) to check counterexamples independently."""

    def retrieve(uri: str) -> Resource[Any]:
        entity = store.get(uri.removeprefix("gts://"))
        assert entity is not None, uri
        return Resource.from_contents(entity.content, default_specification=DRAFT7)

    cls = jsonschema.validators.validator_for(schema)
    registry: Registry[Any] = Registry(retrieve=retrieve)  # type: ignore[call-arg]
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


SECTION4 = _cases("spec-section4-cases.json")
ALL_CASES = _cases("op8-conformance.json") + SECTION4


# -- OP#8 on the specification's cases -----------------------------------------------------------


@pytest.mark.parametrize("case", ALL_CASES, ids=[c["name"] for c in ALL_CASES])
def test_compatibility_verdicts_match_the_specification(case: dict[str, Any]) -> None:
    store = _store(*case["schemas"])
    body = check_compatibility(store, case["old"], case["new"])
    jsonschema.validate(body, COMPATIBILITY_RESPONSE)
    assert (body["old"], body["new"]) == (case["old"], case["new"])
    got = _verdicts(body)
    assert {k: got[k] for k in case["expected"]} == case["expected"], body
    # Full is the conjunction of the two relations.
    if got["backward"] == got["forward"] == "compatible":
        assert got["full"] == "compatible"
    elif "incompatible" in (got["backward"], got["forward"]):
        assert got["full"] == "incompatible"
    else:
        assert got["full"] == "unknown"
    for direction in ("backward", "forward"):
        reasons = body[f"{direction}_errors"]
        if got[direction] == "compatible":
            assert reasons == []
        elif got[direction] == "incompatible":
            assert reasons[0].startswith("counterexample ")
        else:
            assert reasons, "an unknown verdict says why"


@pytest.mark.parametrize("case", ALL_CASES, ids=[c["name"] for c in ALL_CASES])
def test_counterexamples_hold_under_a_stock_validator(case: dict[str, Any]) -> None:
    store = _store(*case["schemas"])
    old = store.get(case["old"])
    new = store.get(case["new"])
    assert old is not None and new is not None
    report = compare_schemas(old.content, new.content, store=store)
    for result, (accepting, rejecting) in (
        (report.backward, (old.content, new.content)),
        (report.forward, (new.content, old.content)),
    ):
        if result.verdict != "incompatible":
            assert result.counterexample is None
            continue
        assert result.counterexample is not None
        (instance,) = result.counterexample
        assert _plain_validator(accepting, store).is_valid(instance)
        assert not _plain_validator(rejecting, store).is_valid(instance)


def test_examples_folder_order_placed_minor_versions() -> None:
    documents = [json.loads(p.read_text()) for p in sorted((CASES / "examples").glob("*.json"))]
    store = _store(*documents)
    old = "gts.x.core.events.type.v1~x.commerce.orders.order_placed.v1.0~"
    new = "gts.x.core.events.type.v1~x.commerce.orders.order_placed.v1.1~"
    body = check_compatibility(store, old, new)
    # The required const "type" differs (§4.6.3 identity-field note): no instance is shared.
    assert _verdicts(body) == dict.fromkeys(("backward", "forward", "full"), "incompatible")
    assert any("/type" in r for r in body["backward_errors"])
    # The schema reached through gts:// is part of the comparison: its "/$id" x-gts-ref is
    # satisfied by the counterexample, which a stock validator does not even check.
    backward = compare_schemas(_content(store, old), _content(store, new), store=store)
    assert backward.backward.counterexample is not None
    assert backward.backward.counterexample[0]["type"] == old
    # Unchanged inputs are fully compatible (0.13 correction), even with x-gts-ref "/$id".
    for type_id in (old, new):
        schema = _content(store, type_id)
        same = compare_schemas(schema, copy.deepcopy(schema), store=store)
        assert (same.backward.verdict, same.forward.verdict, same.full) == ("compatible",) * 3


def test_op8_accepts_gts_uri_forms_and_reports_canonical_ids() -> None:
    case = SECTION4[0]
    store = _store(*case["schemas"])
    body = check_compatibility(store, f" gts://{case['old']}", f"gts://{case['new']}")
    assert (body["old"], body["new"]) == (case["old"], case["new"])


# -- OP#8 input errors ---------------------------------------------------------------------------

_SIMPLE = {"$schema": D7, "type": "object"}


def _family_store() -> GtsStore:
    return _store(
        {"$id": "gts://gts.x.a.b.t.v1.0~", **_SIMPLE},
        {"$id": "gts://gts.x.a.b.t.v1.1~", **_SIMPLE},
        {"$id": "gts://gts.x.a.b.t.v2.0~", **_SIMPLE},
        {"$id": "gts://gts.x.a.b.other.v1.1~", **_SIMPLE},
        {"$id": "gts://gts.x.a.b.t.v1.0~x.a.b.d.v1.0~", **_SIMPLE},
        {"id": "gts.x.a.b.t.v1.0~x.a.b.inst.v1.0", "name": "an instance"},
    )


@pytest.mark.parametrize(
    ("old", "new", "error", "message"),
    [
        ("gts.x.a.b.t.v1.0~", "gts.x.a.b.t.v2.0~", GtsCompatibilityError, "MAJOR"),
        ("gts.x.a.b.t.v1.0~", "gts.x.a.b.other.v1.1~", GtsCompatibilityError, "different types"),
        ("gts.x.a.b.t.v1.0~", "gts.x.a.b.t.v1.0~x.a.b.d.v1.0~", GtsCompatibilityError, "chain"),
        ("gts.x.a.b.t.v1.0~", "gts.x.a.b.t.v1.7~", GtsCompatibilityError, "not registered"),
        ("gts.x.a.b.t.v1.0~x.a.b.inst.v1.0", "gts.x.a.b.t.v1.1~", GtsCompatibilityError, "not a"),
        ("gts.x.a.b.t.v1.*", "gts.x.a.b.t.v1.1~", GtsIdError, "wildcard"),
        ("not-an-id", "gts.x.a.b.t.v1.1~", GtsIdError, "must start with"),
    ],
)
def test_op8_refuses_what_it_cannot_compare(
    old: str, new: str, error: type[GtsError], message: str
) -> None:
    with pytest.raises(error, match=message):
        check_compatibility(_family_store(), old, new)


def test_op8_compares_identical_and_minorless_ids() -> None:
    store = _family_store()
    store.put(GtsEntity.from_content({"$id": "gts://gts.x.a.b.t.v1~", **_SIMPLE}))
    for old, new in (
        ("gts.x.a.b.t.v1.0~", "gts.x.a.b.t.v1.0~"),
        ("gts.x.a.b.t.v1~", "gts.x.a.b.t.v1.1~"),
    ):
        assert _verdicts(check_compatibility(store, old, new))["full"] == "compatible"


# -- dialects, references, content models ---------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "dialect"),
    [
        ("http://json-schema.org/draft-07/schema#", "draft-07"),
        ("https://json-schema.org/draft-07/schema", "draft-07"),
        (" HTTP://JSON-SCHEMA.ORG/draft-07/schema/ ", "draft-07"),
        ("http://json-schema.org/draft-04/schema#", "draft-04"),
        ("https://json-schema.org/draft/2019-09/schema", "2019-09"),
        ("https://json-schema.org/draft/2020-12/schema#", "2020-12"),
        ("https://example.com/my-dialect", "uri:example.com/my-dialect"),
    ],
)
def test_equivalent_dialect_spellings_are_one_dialect(uri: str, dialect: str) -> None:
    assert schema_dialect({"$schema": uri}) == dialect


def test_a_missing_or_unsupported_dialect_is_unknown() -> None:
    schema = {"type": "object"}
    unsupported = {**schema, "$schema": "x:y"}
    for old, new in ((schema, {**schema, "$schema": D7}), (unsupported, unsupported)):
        report = compare_schemas(old, new)
        assert (report.backward.verdict, report.forward.verdict, report.full) == ("unknown",) * 3
        assert "dialect" in report.backward.reasons[0]


def test_unresolvable_or_mixed_dialect_references_are_unknown() -> None:
    target = {"$id": "gts://gts.x.a.b.target.v1~", "$schema": D2020, "type": "string"}
    store = _store(target)
    for ref, reason in (
        ("gts://gts.x.a.b.missing.v1~", "does not name a registered type schema"),
        ("gts://gts.x.a.b.target.v1~", "declares dialect 2020-12"),
        ("#/definitions/missing", "does not resolve"),
    ):
        old = {"$schema": D7, "properties": {"a": {"$ref": ref}}}
        new = {"$schema": D7, "properties": {"a": {"type": "string"}}}
        report = compare_schemas(old, new, store=store)
        assert report.full == "unknown"
        assert reason in report.backward.reasons[0]
        with pytest.raises(GtsCompatibilityError, match=reason):
            resolve_schema(old, store=store)


def test_draft07_ignores_ref_siblings_and_2020_applies_them() -> None:
    defs = {"definitions": {"s": {"type": "string"}}, "$defs": {"s": {"type": "string"}}}
    d7 = {"$schema": D7, **defs, "properties": {"a": {"$ref": "#/definitions/s", "maxLength": 1}}}
    d2020 = {"$schema": D2020, **defs, "properties": {"a": {"$ref": "#/$defs/s", "maxLength": 1}}}
    assert resolve_schema(d7).props["a"].max_len is None
    assert resolve_schema(d2020).props["a"].max_len == 1


def test_recursive_schemas_compare_without_looping() -> None:
    def tree(label: dict[str, Any]) -> dict[str, Any]:
        return {
            "$schema": D7,
            "definitions": {
                "node": {
                    "type": "object",
                    "properties": {
                        "label": label,
                        "children": {"type": "array", "items": {"$ref": "#/definitions/node"}},
                    },
                }
            },
            "$ref": "#/definitions/node",
        }

    same = compare_schemas(tree({"type": "string"}), tree({"type": "string"}))
    assert same.full == "compatible"
    changed = compare_schemas(tree({"type": "string"}), tree({"type": "integer"}))
    assert changed.backward.verdict == "incompatible"  # proven at the top level
    assert changed.forward.verdict == "incompatible"


@pytest.mark.parametrize(
    ("schema", "model"),
    [
        ({"$schema": D7, "type": "object"}, "open"),
        ({"$schema": D7, "additionalProperties": True}, "open"),
        ({"$schema": D7, "additionalProperties": {}}, "open"),
        ({"$schema": D7, "additionalProperties": False}, "closed"),
        ({"$schema": D7, "additionalProperties": {"not": {}}}, "closed"),
        ({"$schema": D7, "additionalProperties": {"type": "string"}}, "partially open"),
        (
            {"$schema": D7, "patternProperties": {"^x_": {}}, "additionalProperties": False},
            "partially open",
        ),
        ({"$schema": D7, "allOf": [{"additionalProperties": False}]}, "closed"),
        ({"$schema": D2020, "unevaluatedProperties": False}, "closed"),
        ({"$schema": D2020, "additionalProperties": True, "unevaluatedProperties": False}, "open"),
        (
            {
                "$schema": D2020,
                "anyOf": [{"properties": {"a": {}}}],
                "unevaluatedProperties": False,
            },
            "undetermined",
        ),
        ({"$schema": D7, "unevaluatedProperties": False}, "open"),  # not a Draft-07 keyword
    ],
)
def test_content_model_is_read_from_the_resolved_schema(schema: dict[str, Any], model: str) -> None:
    assert resolve_schema(schema).content_model == model


def test_a_closed_base_reached_through_ref_closes_the_derived_level() -> None:
    base = {
        "$id": "gts://gts.x.a.b.base.v1~",
        "$schema": D7,
        "properties": {"a": {}},
        "additionalProperties": False,
    }
    derived = {
        "$schema": D7,
        "allOf": [{"$ref": "gts://gts.x.a.b.base.v1~"}, {"properties": {"b": {"type": "string"}}}],
    }
    node = resolve_schema(derived, store=_store(base))
    assert node.content_model == "closed"
    assert node.value_for("b").is_bottom  # the base rejects "b" whatever the second conjunct says


def _prop(schema: dict[str, Any], dialect: str = D7) -> dict[str, Any]:
    return {"$schema": dialect, "type": "object", "required": ["p"], "properties": {"p": schema}}


@pytest.mark.parametrize(
    ("old", "new", "backward", "forward"),
    [
        # Integer bounds compare on integers: > 0 and >= 1 admit the same integers.
        (
            {"type": "integer", "exclusiveMinimum": 0},
            {"type": "integer", "minimum": 1},
            "compatible",
            "compatible",
        ),
        (
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "number", "minimum": 1},
            "incompatible",
            "compatible",
        ),
        # multipleOf is read as the decimal it is written as; every integer is a multiple of 0.5.
        (
            {"type": "number", "multipleOf": 0.3},
            {"type": "number", "multipleOf": 0.1},
            "compatible",
            "incompatible",
        ),
        ({"type": "integer"}, {"type": "integer", "multipleOf": 0.5}, "compatible", "compatible"),
        # Formats are assertions (OP#6).
        ({"type": "string"}, {"type": "string", "format": "uuid"}, "incompatible", "compatible"),
        (
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "date"},
            "incompatible",
            "incompatible",
        ),
        (
            {"type": "string", "pattern": "^a+$"},
            {"type": "string", "pattern": "^a"},
            "unknown",
            "incompatible",
        ),
        # x-gts-ref constrains strings (§9.6).
        (
            {"type": "string"},
            {"type": "string", "x-gts-ref": "gts.x.a.b.t.v1~"},
            "incompatible",
            "compatible",
        ),
        (
            {"type": "string", "x-gts-ref": "gts.x.a.*"},
            {"type": "string", "x-gts-ref": "gts.x.a.b.t.v1~"},
            "incompatible",
            "unknown",
        ),
        # Arrays: bounds, uniqueness, tuples.
        (
            {"type": "array", "maxItems": 3},
            {"type": "array", "maxItems": 2},
            "incompatible",
            "compatible",
        ),
        ({"type": "array"}, {"type": "array", "uniqueItems": True}, "incompatible", "compatible"),
        (
            {"type": "array", "items": [{"type": "string"}]},
            {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
            "incompatible",
            "compatible",
        ),
        # Keywords outside the model: decided only by equality or a checked counterexample.
        ({"type": "any"}, {"type": "string"}, "unknown", "unknown"),
        ({"type": "string", "pattern": "(?<=a)b"}, {"type": "string"}, "compatible", "unknown"),
        (
            {"if": {"type": "string"}, "then": {"minLength": 1}},
            {"if": {"type": "string"}, "then": {"minLength": 2}},
            "unknown",
            "unknown",
        ),
    ],
)
def test_keyword_comparisons(
    old: dict[str, Any], new: dict[str, Any], backward: str, forward: str
) -> None:
    report = compare_schemas(_prop(old), _prop(new))
    assert (report.backward.verdict, report.forward.verdict) == (backward, forward), report


def test_dialects_gts_validation_does_not_evaluate_are_unknown() -> None:
    d4 = "http://json-schema.org/draft-04/schema#"
    report = compare_schemas(_prop({"type": "number"}, d4), _prop({"type": "string"}, d4))
    assert report.full == "unknown"
    assert report.backward.reasons == ("unsupported JSON Schema dialect draft-04",)


# -- OP#9 ----------------------------------------------------------------------------------------

OP9 = {c["name"]: c for c in _cases("op9-conformance.json")}


def _op9_store(name: str) -> GtsStore:
    return _store(*OP9[name]["entities"])


def test_op9_upcast_adds_the_target_default_and_rewrites_the_identity() -> None:
    case = OP9["minor_version_upcast"]
    body = cast(_op9_store(case["name"]), case["instance_id"], case["to_type_id"])
    jsonschema.validate(body, CAST_RESPONSE)
    casted = body["casted_entity"]
    assert casted["payload"]["new_field_in_v1_1"] == "some_value"
    assert casted["type"] == case["to_type_id"]
    assert casted["id"] == case["to_type_id"] + "x.y.some.instance.v1.0"
    assert casted["payload"]["items"] == case["entities"][3]["payload"]["items"]
    # Schema verdicts are reported apart from the cast: the const identity field differs.
    assert _verdicts(body) == dict.fromkeys(("backward", "forward", "full"), "incompatible")
    assert "added /payload/new_field_in_v1_1: the target's default" in body["cast_operations"]
    # The suite's instance has a GTS id where its type demands a uuid: that predates the cast.
    assert any("/id" in w for w in body["cast_warnings"])
    assert "error" not in body


@pytest.mark.parametrize("name", ["minor_version_downcast", "schema_to_schema_not_allowed"])
def test_op9_refuses_a_type_schema_as_source(name: str) -> None:
    case = OP9[name]
    with pytest.raises(GtsCastError, match="must be an instance"):
        cast(_op9_store(name), case["instance_id"], case["to_type_id"])


def test_op9_downcast_of_an_instance_keeps_what_an_open_level_admits() -> None:
    case = OP9["minor_version_downcast"]
    instance = case["entities"][3]
    body = cast(_op9_store(case["name"]), instance["id"], case["to_type_id"])
    jsonschema.validate(body, CAST_RESPONSE)
    casted = body["casted_entity"]
    assert casted["type"] == case["to_type_id"]
    assert casted["payload"] == {"field1": "value1", "field2": "value2"}  # v1.0 payload is open
    assert body["backward_compatibility"] == "incompatible"  # const "type" differs


def _versions(v0: dict[str, Any], v1: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"$id": "gts://gts.x.a.b.doc.v1.0~", "$schema": D7, **v0},
        {"$id": "gts://gts.x.a.b.doc.v1.1~", "$schema": D7, **v1},
    ]


_CLOSED = {"additionalProperties": False}


def test_op9_drops_what_a_closed_target_does_not_admit() -> None:
    store = _store(
        *_versions(
            {
                "properties": {"type": {}, "id": {}, "a": {}, "legacy": {"type": "string"}},
                **_CLOSED,
            },
            {
                "properties": {
                    "type": {},
                    "id": {},
                    "a": {},
                    "n": {"type": "integer", "default": 3},
                },
                **_CLOSED,
            },
        ),
        {
            "type": "gts.x.a.b.doc.v1.0~",
            "id": "7a1d2f34-5678-49ab-9012-abcdef123456",
            "a": 1,
            "legacy": "x",
        },
    )
    body = cast(store, "7a1d2f34-5678-49ab-9012-abcdef123456", "gts://gts.x.a.b.doc.v1.1~")
    assert body["casted_entity"] == {
        "type": "gts.x.a.b.doc.v1.1~",
        "id": "7a1d2f34-5678-49ab-9012-abcdef123456",
        "a": 1,
        "n": 3,
    }
    assert "removed /legacy: not admitted by the target" in body["cast_operations"]
    assert "cast_warnings" not in body


def test_op9_reports_an_impossible_cast_with_the_verdicts() -> None:
    store = _store(
        *_versions(
            {"properties": {"type": {}, "a": {}}},
            {"required": ["must"], "properties": {"type": {}, "a": {}, "must": {"type": "string"}}},
        ),
        {"type": "gts.x.a.b.doc.v1.0~", "id": "7a1d2f34-5678-49ab-9012-abcdef123456", "a": 1},
    )
    body = cast(store, "7a1d2f34-5678-49ab-9012-abcdef123456", "gts.x.a.b.doc.v1.1~")
    jsonschema.validate(body, CAST_RESPONSE)
    assert "casted_entity" not in body
    assert "'must' is a required property" in body["error"]
    assert "no default" in body["error"]
    assert body["backward_compatibility"] == "incompatible"
    assert body["forward_compatibility"] == "compatible"


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("7a1d2f34-5678-49ab-9012-abcdef123456", "gts.x.test9.version.type.v2.0~", "MAJOR"),
        (
            "7a1d2f34-5678-49ab-9012-abcdef123456",
            "gts.x.test9.version.type.v1.5~",
            "not registered",
        ),
        (
            "7a1d2f34-5678-49ab-9012-abcdef123456",
            "gts.x.test9.version.other.v1.0~",
            "different types",
        ),
        (
            "7a1d2f34-5678-49ab-9012-abcdef123456",
            "gts.x.test9.version.type.v1.0~x.a.b.c.v1",
            "not a GTS Type",
        ),
        (
            "00000000-0000-4000-8000-00000000beef",
            "gts.x.test9.version.type.v1.0~",
            "no such entity",
        ),
        ("untyped", "gts.x.test9.version.type.v1.0~", "declares no GTS type"),
    ],
)
def test_op9_refuses_requests_it_cannot_serve(source: str, target: str, message: str) -> None:
    store = _op9_store("incompatible_major_version")
    store.put(
        GtsEntity.from_content(
            {"type": "gts.x.test9.version.type.v1.0~", "id": "7a1d2f34-5678-49ab-9012-abcdef123456"}
        )
    )
    store.put(GtsEntity(id="untyped", content={"id": "untyped"}, is_type=False, type_id=None))
    with pytest.raises(GtsCastError, match=message):
        cast(store, source, target)


# -- properties ----------------------------------------------------------------------------------

_LEAF_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["", "a", "ab", "abc"])
)


def _leaf() -> st.SearchStrategy[Any]:
    bounds = st.one_of(st.none(), st.integers(-3, 3))
    lengths = st.one_of(st.none(), st.integers(0, 3))

    def integer(lo: int | None, hi: int | None) -> dict[str, Any]:
        return {
            "type": "integer",
            **({} if lo is None else {"minimum": lo}),
            **({} if hi is None else {"maximum": hi}),
        }

    def string(lo: int | None, hi: int | None) -> dict[str, Any]:
        return {
            "type": "string",
            **({} if lo is None else {"minLength": lo}),
            **({} if hi is None else {"maxLength": hi}),
        }

    simple = st.one_of(
        st.builds(integer, bounds, bounds),
        st.builds(
            lambda lo: {"type": "number", **({} if lo is None else {"exclusiveMinimum": lo})},
            bounds,
        ),
        st.builds(string, lengths, lengths),
        st.lists(_LEAF_VALUES, min_size=1, max_size=3).map(lambda vs: {"enum": vs}),
        _LEAF_VALUES.map(lambda v: {"const": v}),
        st.sampled_from([{}, {"type": ["string", "null"]}, {"type": "boolean"}, False]),
    )
    return st.one_of(simple, st.lists(simple, min_size=1, max_size=2).map(lambda a: {"anyOf": a}))


@st.composite
def _object_schemas(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=3))
    schema: dict[str, Any] = {"$schema": D7, "type": "object"}
    schema["properties"] = {n: draw(_leaf()) for n in names}
    required = draw(st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=2))
    if required:
        schema["required"] = required
    extra = draw(st.sampled_from(["absent", True, False, "leaf"]))
    if extra == "leaf":
        schema["additionalProperties"] = draw(_leaf())
    elif extra != "absent":
        schema["additionalProperties"] = extra
    return schema


_INSTANCES = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _LEAF_VALUES, max_size=4)
_PROPERTY_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@_PROPERTY_SETTINGS
@given(_object_schemas())
def test_every_schema_is_fully_compatible_with_itself(schema: dict[str, Any]) -> None:
    report = compare_schemas(schema, copy.deepcopy(schema))
    assert (report.backward.verdict, report.forward.verdict) == ("compatible", "compatible")


@_PROPERTY_SETTINGS
@given(_object_schemas(), _object_schemas())
def test_backward_is_forward_with_the_roles_swapped(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    there, back = compare_schemas(old, new), compare_schemas(new, old)
    for one, other in ((there.backward, back.forward), (there.forward, back.backward)):
        assert one.verdict == other.verdict
        assert one.counterexample == other.counterexample
    assert there.full == back.full


@_PROPERTY_SETTINGS
@given(_object_schemas(), _object_schemas(), st.lists(_INSTANCES, max_size=25))
def test_verdicts_agree_with_validation(
    old: dict[str, Any], new: dict[str, Any], instances: list[dict[str, Any]]
) -> None:
    report = compare_schemas(old, new)
    check_old = jsonschema.Draft7Validator(old)
    check_new = jsonschema.Draft7Validator(new)
    if report.backward.verdict == "compatible":
        # Valid(old) ⊆ Valid(new): no instance may tell them apart.
        for instance in instances:
            assert not check_old.is_valid(instance) or check_new.is_valid(instance), instance
    if report.backward.verdict == "incompatible":
        assert report.backward.counterexample is not None
        (instance,) = report.backward.counterexample
        assert check_old.is_valid(instance)
        assert not check_new.is_valid(instance)
