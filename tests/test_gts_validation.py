"""GTS validation: OP#6 instances, OP#12 derivation, schema rules, /validate-json, registration.

The scenario files under ``fixtures/gts/schemas-cases`` restate the cases of the gts-spec
conformance suite (tests/test_op6*, test_op12*, test_refimpl_x_gts_final_abstract.py,
test_xgts_keyword_placement.py, test_regex_validation.py) as data: each scenario registers
entities into a fresh store and checks operation results. The Python tests below cover what data
cannot express (regex profile tables, formats, caching, performance, atomicity).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from hyperspot.platform.gts import GtsEntity, GtsError, GtsStore
from hyperspot.platform.gts.regexp import RegexError, check_profile, compile_pattern, search
from hyperspot.platform.gts.relationships import resolve_relationships
from hyperspot.platform.gts.validation import (
    check_registration,
    check_schema_basic,
    dialect_of,
    entity_errors,
    validate_entity,
    validate_instance,
    validate_json,
    validate_type_schema,
)

FIXTURES = Path(__file__).parent / "fixtures" / "gts"
CASES = FIXTURES / "schemas-cases"
D7 = "http://json-schema.org/draft-07/schema#"
D20 = "https://json-schema.org/draft/2020-12/schema"


def load_documents(folder: str) -> list[dict[str, Any]]:
    """Every document of a fixture folder (``*.examples.json`` hold arrays of instances)."""
    documents: list[dict[str, Any]] = []
    for path in sorted((FIXTURES / folder).rglob("*.json")):
        data = json.loads(path.read_text())
        documents.extend(data if isinstance(data, list) else [data])
    return documents


def build_store(entities: list[Any]) -> GtsStore:
    store = GtsStore()
    for item in entities:
        for document in load_documents(item[1:]) if isinstance(item, str) else [item]:
            store.put(GtsEntity.from_content(document))
    return store


def run_check(store: GtsStore, check: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    """(ok, error text, response body) of one scenario check."""
    op, mode = check["op"], check.get("mode", "any-valid")
    body: dict[str, Any] = {}
    if op in ("type", "instance", "entity"):
        function = {
            "type": validate_type_schema,
            "instance": validate_instance,
            "entity": validate_entity,
        }[op]
        body = function(store, check["id"], mode)
        return body["ok"], body.get("error") or "", body
    if op == "register":
        errors = check_registration(store, GtsEntity.from_content(check["document"]), mode)
        return not errors, "; ".join(errors), body
    if op == "basic":
        errors = check_schema_basic(check["document"])
        return not errors, "; ".join(errors), body
    if op == "json":
        body = validate_json(store, check["document"], check.get("gts_type"), mode)
        return body["ok"], body["error"] or "", body
    raise AssertionError(f"unknown op {op}")


def scenario_params(*names: str) -> list[Any]:
    params = []
    for name in names:
        for scenario in json.loads((CASES / name).read_text())["cases"]:
            params.append(pytest.param(scenario, id=f"{name[:-5]}: {scenario['name']}"))
    return params


def check_scenario(scenario: dict[str, Any]) -> None:
    store = build_store(scenario["entities"])
    before = {e.id: e for e in store.entities()}
    for check in scenario["checks"]:
        ok, error, body = run_check(store, check)
        label = check.get("id") or check["op"]
        assert ok is check["ok"], f"{label}: expected ok={check['ok']}, got {ok} ({error})"
        if "error" in check:
            assert check["error"] in error, f"{label}: {check['error']!r} not in {error!r}"
        if "entity_type" in check:
            assert body["entity_type"] == check["entity_type"], body
        for key, value in check.get("body", {}).items():
            assert body[key] == value, (label, key, body)
        if ok is False:
            assert error.strip(), f"{label}: a failure needs an error message"
            assert "\n" not in error and "file://" not in error, error
    # §9.3: validation never changes the registry.
    assert {e.id: e for e in store.entities()} == before


@pytest.mark.parametrize(
    "scenario", scenario_params("op6_instances.json", "op12_derivation.json", "schema_rules.json")
)
def test_scenario(scenario: dict[str, Any]) -> None:
    check_scenario(scenario)


# --- ADR-0006 regular expressions ---------------------------------------------------------------

REGEX = json.loads((CASES / "regex_profile.json").read_text())


@pytest.mark.parametrize(
    ("category", "expression"),
    [(c, e) for c, exprs in REGEX["rejected"].items() for e in exprs],
)
def test_regex_outside_the_profile_is_rejected(category: str, expression: str) -> None:
    assert check_profile(expression) is not None, (category, expression)
    with pytest.raises(RegexError, match="Unsupported pattern"):
        compile_pattern(expression)


@pytest.mark.parametrize("expression", REGEX["supported"])
def test_regex_in_the_profile_compiles_and_searches(expression: str) -> None:
    assert check_profile(expression) is None, expression
    assert isinstance(search(expression, "a"), bool)


def _schema(type_id: str, body: dict[str, Any], dialect: str = D7) -> dict[str, Any]:
    return {"$id": f"gts://{type_id}", "$schema": dialect, "type": "object", **body}


def _path_bodies(pattern: str) -> dict[str, tuple[dict[str, Any], str, str]]:
    """Schema bodies evaluating ``pattern`` in each regex path: (body, dialect, probe kind)."""
    value = {"type": "string", "pattern": pattern}
    closed = {"patternProperties": {pattern: {"type": "integer"}}}
    return {
        "pattern": ({"properties": {"value": value}, "required": ["value"]}, D7, "value"),
        "ref_definition": (
            {"definitions": {"v": value}, "properties": {"value": {"$ref": "#/definitions/v"}}},
            D7,
            "value",
        ),
        "property_names": ({"propertyNames": {"pattern": pattern}}, D7, "name"),
        "pattern_properties": (closed, D7, "pattern_property"),
        "additional_properties": ({**closed, "additionalProperties": False}, D7, "name"),
        "unevaluated_properties": ({**closed, "unevaluatedProperties": False}, D20, "name"),
    }


def _probe_instance(kind: str, probe: str) -> dict[str, Any]:
    if kind == "value":
        return {"value": probe}
    if kind == "pattern_property":
        return {probe: "not-an-integer"}  # a matching name applies the failing constraint
    return {probe: 1}  # a non-matching name is rejected by propertyNames or the closed object


def _verdicts(store: GtsStore, name: str, pattern: str, probe: str) -> dict[str, bool]:
    """Whether ``probe`` matches ``pattern`` in every evaluation path (negations included)."""
    verdicts: dict[str, bool] = {}
    for path, (body, dialect, kind) in _path_bodies(pattern).items():
        results = []
        negated = {"not": body}
        if "definitions" in body:  # keep definitions at the root so the reference resolves
            negated = {
                "definitions": body["definitions"],
                "not": {"properties": body["properties"]},
            }
        for suffix, schema_body in (("", body), ("_not", negated)):
            type_id = f"gts.x.regex.{name}.{path}{suffix}.v1~"
            if store.get(type_id) is None:
                store.put(GtsEntity.from_content(_schema(type_id, schema_body, dialect)))
            results.append(validate_json(store, _probe_instance(kind, probe), type_id)["ok"])
        assert results[0] is not results[1], (path, pattern, probe)  # `not` inverts a verdict
        verdicts[path] = not results[0] if kind == "pattern_property" else results[0]
    trait_results = []
    for suffix, value in (
        ("", {"type": "string", "pattern": pattern}),
        ("_not", {"type": "string", "not": {"pattern": pattern}}),
    ):
        base = f"gts.x.regex.{name}.trait{suffix}.v1~"
        if store.get(base) is None:
            store.put(
                GtsEntity.from_content(
                    _schema(
                        base,
                        {"x-gts-traits-schema": {"type": "object", "properties": {"value": value}}},
                    )
                )
            )
        kid = {
            "$id": f"gts://{base}x.regex._.probe.v1~",
            "$schema": D7,
            "allOf": [{"$ref": f"gts://{base}"}],
            "x-gts-traits": {"value": probe},
        }
        store.put(GtsEntity.from_content(kid))
        trait_results.append(validate_type_schema(store, f"{base}x.regex._.probe.v1~")["ok"])
    assert trait_results[0] is not trait_results[1]
    verdicts["trait"] = trait_results[0]
    return verdicts


@pytest.mark.parametrize(("label", "pattern", "matches", "non_matches"), REGEX["matching"])
def test_regex_reference_matching_in_every_path(
    label: str, pattern: str, matches: list[str], non_matches: list[str]
) -> None:
    store = GtsStore()
    for probe, expected in [(p, True) for p in matches] + [(p, False) for p in non_matches]:
        verdicts = _verdicts(store, label, pattern, probe)
        assert set(verdicts.values()) == {expected}, (pattern, probe, verdicts)


def test_regex_format_assertion_agrees_with_pattern_support() -> None:
    store = GtsStore()
    type_id = "gts.x.regex.format.value.v1~"
    store.put(GtsEntity.from_content(_schema(type_id, {"properties": {"r": {"format": "regex"}}})))
    for expression in REGEX["supported"][:20]:
        assert validate_json(store, {"r": expression}, type_id)["ok"], expression
    for expressions in REGEX["rejected"].values():
        for expression in expressions[:4]:
            result = validate_json(store, {"r": expression}, type_id)
            assert not result["ok"] and "is not a 'regex'" in result["error"], expression


@pytest.mark.parametrize(("pattern", "sample"), REGEX["attacks"])
def test_regex_attacks_fail_fast(pattern: str, sample: str) -> None:
    store = GtsStore()
    type_id = "gts.x.regex.attack.value.v1~"
    body = {"properties": {"value": {"type": "string", "pattern": pattern}}}
    store.put(GtsEntity.from_content(_schema(type_id, body)))
    attack = sample[:-1] * 1000 + sample[-1]  # 50,000 repetitions
    started = time.perf_counter()
    result = validate_json(store, {"value": attack}, type_id)
    assert time.perf_counter() - started < 2
    assert not result["ok"] and result["error"]


def test_regex_classification_and_repeated_success_under_stress() -> None:
    ambiguous = r"^(?:(a|aa)+$|a+!$)"
    store = GtsStore()
    for keyword, dialect in (("additionalProperties", D7), ("unevaluatedProperties", D20)):
        type_id = f"gts.x.regex.stress.{keyword.lower()}.v1~"
        body = {keyword: False, "patternProperties": {ambiguous: {"type": "integer"}}}
        store.put(GtsEntity.from_content(_schema(type_id, body, dialect)))
        long_key = "a" * 64 + "!"
        started = time.perf_counter()
        assert validate_json(store, {"aaaa!": 1, long_key: 1}, type_id)["ok"]
        assert not validate_json(store, {long_key: "x"}, type_id)["ok"]
        many = {"a" * n + "!": 1 for n in range(64, 96)}
        assert validate_json(store, many, type_id)["ok"]
        assert time.perf_counter() - started < 2
    items_type = "gts.x.regex.stress.items.v1~"
    body = {"properties": {"values": {"type": "array", "items": {"pattern": ambiguous}}}}
    store.put(GtsEntity.from_content(_schema(items_type, body, D20)))
    started = time.perf_counter()
    assert validate_json(store, {"values": ["a" * 64 + "!"] * 1000}, items_type)["ok"]
    counted = "gts.x.regex.stress.counted.v1~"
    store.put(
        GtsEntity.from_content(
            _schema(counted, {"properties": {"v": {"pattern": "^(?:a?){500}a{500}$"}}})
        )
    )
    assert validate_json(store, {"v": "a" * 500}, counted)["ok"]
    assert not validate_json(store, {"v": "a" * 500 + "!"}, counted)["ok"]
    assert time.perf_counter() - started < 2


def test_unsupported_pattern_reached_at_validation_is_an_error_not_a_verdict() -> None:
    # Registered without validation: instance validation must not treat it as a non-match,
    # or `not` would accept the instance.
    store = GtsStore()
    for name, value in (
        ("direct", {"pattern": "a(?=b)"}),
        ("negated", {"not": {"pattern": "a(?=b)"}}),
    ):
        type_id = f"gts.x.regex.deferred.{name}.v1~"
        store.put(GtsEntity.from_content(_schema(type_id, {"properties": {"value": value}})))
        result = validate_json(store, {"value": "zz"}, type_id)
        assert not result["ok"] and "Unsupported pattern" in result["error"]


# --- formats, dialects, API edges ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        (
            "uuid",
            ["550E8400-e29b-41d4-a716-446655440000"],
            ["550e8400e29b41d4a716446655440000", "{x}"],
        ),
        ("email", ["a.b+c@example.com", "user@localhost"], ["no-at", "a@@b", "a b@c.d"]),
        (
            "date-time",
            ["2024-02-29T23:59:60Z", "2024-01-01t00:00:00.5+23:59"],
            ["2023-02-29T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:00:00+24:00"],
        ),
        ("date", ["2000-02-29"], ["1900-02-29", "2024-1-01", "20240101"]),
        ("time", ["23:59:60z", "00:00:00.000-12:30"], ["00:60:00Z", "1:00:00Z"]),
        (
            "uri",
            ["urn:isbn:0451450523", "https://x.y/p?q=%20"],
            ["relative/path", "https://x y", "https://x/%zz"],
        ),
        ("hostname", ["a-b.example.com.", "localhost"], ["-a.com", "a..b", "x" * 64 + ".com", ""]),
        ("ipv4", ["0.0.0.0"], ["1.2.3", "01.2.3.4"]),
        ("ipv6", ["::1", "fe80::1:2"], ["fe80::1%eth0", "1:2:3:4:5:6:7:8:9"]),
    ],
)
def test_format_assertions(fmt: str, good: list[str], bad: list[str]) -> None:
    store = GtsStore()
    type_id = "gts.x.fmt.check.value.v1~"
    store.put(GtsEntity.from_content(_schema(type_id, {"properties": {"v": {"format": fmt}}})))
    for value in good:
        assert validate_json(store, {"v": value}, type_id)["ok"], (fmt, value)
    for value in bad:
        assert not validate_json(store, {"v": value}, type_id)["ok"], (fmt, value)
    assert validate_json(store, {"v": 42}, type_id)["ok"]  # formats assert strings only


@pytest.mark.parametrize(
    ("uri", "dialect"),
    [
        ("http://json-schema.org/draft-07/schema#", "draft-07"),
        ("https://json-schema.org/draft-07/schema", "draft-07"),
        ("https://json-schema.org/draft/2019-09/schema", "2019-09"),
        ("http://json-schema.org/draft/2020-12/schema#", "2020-12"),
    ],
)
def test_dialect_spellings(uri: str, dialect: str) -> None:
    assert dialect_of({"$schema": uri}) == dialect


@pytest.mark.parametrize(
    "uri",
    [
        None,
        7,
        "",
        "https://json-schema.org/draft-06/schema#",
        "ftp://json-schema.org/draft-07/schema#",
    ],
)
def test_unsupported_dialects(uri: object) -> None:
    with pytest.raises(GtsError):
        dialect_of({"$schema": uri})


def test_validate_json_requires_an_object_and_a_known_mode() -> None:
    with pytest.raises(GtsError):
        validate_json(GtsStore(), ["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(GtsError, match="gts-ref-validation"):
        validate_json(GtsStore(), {"id": "x"}, None, "bogus")


def test_entity_errors_and_registration_never_write_the_store() -> None:
    store = build_store(["@events"])
    before = [(e.id, e) for e in store.entities()]
    assert entity_errors(store, "gts.x.core.events.topic.v1~x.core._.default.v1") == []
    assert entity_errors(store, "gts.x.missing.a.b.v1~x.a.b.c.v1") != []
    replacement = dict(store.get("gts.x.core.events.topic.v1~").content)  # type: ignore[union-attr]
    replacement["required"] = ["id", "name", "retention", "ordering", "brandNew"]
    entity = GtsEntity.from_content(replacement)
    assert check_registration(store, entity, "none") == []
    bad_instance = GtsEntity.from_content(
        {"id": "gts.x.core.events.topic.v1~x.t._.bad.v1", "name": 1}
    )
    assert check_registration(store, bad_instance, "none") != []
    assert [(e.id, e) for e in store.entities()] == before


def test_results_follow_store_changes() -> None:
    store = GtsStore()
    type_id = "gts.x.cache.t.item.v1~"
    instance_id = type_id + "x.cache._.one.v1"
    store.put(GtsEntity.from_content(_schema(type_id, {"properties": {"n": {"type": "integer"}}})))
    store.put(GtsEntity.from_content({"id": instance_id, "n": 1}))
    assert validate_instance(store, instance_id)["ok"]
    assert validate_instance(store, instance_id)["ok"]  # served from the cache
    store.put(GtsEntity.from_content(_schema(type_id, {"properties": {"n": {"type": "string"}}})))
    assert not validate_instance(store, instance_id)["ok"]  # the type changed
    store.put(GtsEntity.from_content({"id": instance_id, "n": "one"}))
    assert validate_instance(store, instance_id)["ok"]  # the instance changed
    store.remove(type_id)
    assert "not found" in validate_instance(store, instance_id)["error"]
    snapshot = store.snapshot()
    snapshot.put(
        GtsEntity.from_content(_schema(type_id, {"properties": {"n": {"type": "string"}}}))
    )
    assert validate_instance(snapshot, instance_id)["ok"]
    assert not validate_instance(store, instance_id)["ok"]


def test_validate_with_10k_entities_p99_under_10ms() -> None:
    store = build_store(["@events"])
    base = "gts.x.perf.load.item.v1~"
    store.put(
        GtsEntity.from_content(
            _schema(
                base,
                {
                    "required": ["id", "n"],
                    "properties": {
                        "id": {"type": "string", "x-gts-ref": "/$id"},
                        "n": {"type": "integer", "minimum": 0},
                        "topic": {"type": "string", "x-gts-ref": "gts.x.core.events.topic.v1~"},
                        "tag": {"type": "string", "pattern": "^[a-z]+[0-9]*$"},
                    },
                },
            )
        )
    )
    for n in range(20):
        derived = f"{base}x.perf._.kind{n}.v1~"
        store.put(
            GtsEntity.from_content(
                _schema(
                    derived,
                    {
                        "allOf": [
                            {"$ref": f"gts://{base}"},
                            {
                                "properties": {
                                    "n": {"type": "integer", "minimum": 0, "maximum": 10**6}
                                }
                            },
                        ]
                    },
                )
            )
        )
    ids = []
    while len(store) < 10_000:
        n = len(store)
        instance_id = f"{base}x.perf._.kind{n % 20}.v1~x.perf._.i{n}.v1"
        topic = "gts.x.core.events.topic.v1~x.core._.default.v1"
        store.put(
            GtsEntity.from_content({"id": instance_id, "n": n, "topic": topic, "tag": f"t{n}"})
        )
        ids.append(instance_id)
    # Types are validated when they are registered (validate=true); instances are then checked
    # one by one against the registry.
    for n in range(20):
        assert validate_type_schema(store, f"{base}x.perf._.kind{n}.v1~")["ok"]
    timings = []
    for instance_id in ids[::25]:
        started = time.perf_counter()
        assert validate_instance(store, instance_id)["ok"]
        timings.append(time.perf_counter() - started)
    p99 = statistics.quantiles(timings, n=100)[98]
    assert p99 < 0.010, f"p99 {p99 * 1000:.2f} ms over {len(timings)} validations"


# --- OP#7 relationship resolution ---------------------------------------------------------------


def test_relationships_of_a_chain_and_its_instances() -> None:
    store = build_store(["@events"])
    leaf = "gts.x.core.events.type.v1~x.core.audit.type.v1~x.core.iam.settings_changed.v1~"
    graph = resolve_relationships(store, leaf)
    assert graph["id"] == leaf and graph["entity_type"] == "schema"
    parent = graph["type_id"]
    assert parent["id"] == "gts.x.core.events.type.v1~x.core.audit.type.v1~"
    assert parent["type_id"]["id"] == "gts.x.core.events.type.v1~"
    # The subjectType x-gts-ref names a type that is not registered: a broken reference.
    assert graph["ok"] is False
    assert {b["to"] for b in graph["broken_references"]} == {
        "gts.x.core.iam.settings.v1~x.core.iam.security_policy.v1~"
    }
    topic = resolve_relationships(store, "gts.x.core.events.topic.v1~x.core._.default.v1")
    assert topic["ok"] is True and topic["entity_type"] == "instance"
    assert topic["type_id"]["id"] == "gts.x.core.events.topic.v1~"


def test_relationships_detect_broken_refs_and_cycles() -> None:
    base = "gts.x.test7.broken.schema.v1.0~"
    store = GtsStore()
    store.put(
        GtsEntity.from_content(
            _schema(base, {"allOf": [{"$ref": "gts://gts.x.nonexistent.base.type.v1~"}]})
        )
    )
    graph = resolve_relationships(store, base)
    assert graph["id"] == base and graph["ok"] is False
    assert graph["refs"]["/allOf/0/$ref"] == {
        "id": "gts.x.nonexistent.base.type.v1~",
        "errors": ["Entity not found"],
    }
    assert graph["broken_references"] == [
        {"from": base, "path": "/allOf/0/$ref", "to": "gts.x.nonexistent.base.type.v1~"}
    ]
    a, b = "gts.x.test7.cyc.a.v1~", "gts.x.test7.cyc.b.v1~"
    store.put(GtsEntity.from_content(_schema(a, {"properties": {"b": {"$ref": f"gts://{b}"}}})))
    store.put(GtsEntity.from_content(_schema(b, {"properties": {"a": {"$ref": f"gts://{a}"}}})))
    graph = resolve_relationships(store, a)
    assert graph["ok"] is True
    assert graph["refs"]["/properties/b/$ref"]["refs"]["/properties/a/$ref"] == {"id": a}
    missing = resolve_relationships(store, "gts.x.test7.none.x.v1~")
    assert missing["ok"] is False and missing["errors"] == ["Entity not found"]


# --- the inclusion test behind OP#12 -------------------------------------------------------------


def _accepts(schema: Any, value: Any) -> bool:
    import jsonschema

    return bool(jsonschema.Draft202012Validator(schema).is_valid(value))


_S = {"type": "string"}
_OBJ = {"type": "object"}


@pytest.mark.parametrize(
    ("sub", "sup", "included"),
    [
        (True, True, True),
        (False, _S, True),
        (_S, False, False),
        ({"type": "integer"}, {"type": "number"}, True),
        ({"type": "number"}, {"type": "integer"}, False),
        ({"minLength": 2}, _S, False),
        ({"type": "string", "minLength": 3}, {"type": "string", "minLength": 2}, True),
        ({"type": "integer", "exclusiveMinimum": 5}, {"type": "integer", "minimum": 5}, True),
        ({"type": "integer", "minimum": 5}, {"type": "integer", "exclusiveMinimum": 5}, False),
        (
            {"type": "number", "maximum": 3, "exclusiveMaximum": 2},
            {"type": "number", "maximum": 2},
            True,
        ),
        ({"type": "number", "maximum": 9}, {"type": "number", "maximum": 8}, False),
        ({"type": "number", "multipleOf": 4}, {"type": "number", "multipleOf": 2}, True),
        ({"type": "number", "multipleOf": 3}, {"type": "number", "multipleOf": 2}, False),
        ({"type": "integer"}, {"type": "integer", "multipleOf": 1}, True),
        ({"type": "integer"}, {"type": "integer", "multipleOf": 0.5}, True),
        ({"type": "number"}, {"type": "number", "multipleOf": 0.5}, False),
        ({"type": "string"}, {"type": ["string", "null"], "minimum": 3}, True),
        ({"type": "string", "format": "email"}, {"type": "string", "format": "email"}, True),
        ({"type": "string"}, {"type": "string", "format": "email"}, False),
        ({"allOf": [_S, {"maxLength": 3}]}, {"type": "string", "maxLength": 4}, True),
        ({"allOf": [_S, {"type": "integer"}]}, {"type": "boolean"}, True),
        ({"anyOf": [{"type": "integer"}, _S]}, {"type": ["integer", "string"]}, True),
        ({"oneOf": [{"type": "integer"}, {"type": "null"}]}, {"type": "integer"}, False),
        ({"type": "integer"}, {"anyOf": [_S, {"type": "number"}]}, True),
        ({"type": "boolean"}, {"anyOf": [_S, {"type": "number"}]}, False),
        ({"type": "integer"}, {"oneOf": [{"type": "integer"}]}, False),
        # Conservative: a base oneOf is only proved by the identical keyword.
        ({"oneOf": [{"type": "integer"}]}, {"oneOf": [{"type": "integer"}]}, False),
        ({"type": "integer", "not": {"const": 1}}, {"type": "integer", "not": {"const": 1}}, True),
        ({"type": "integer", "not": {"const": 1}}, {"not": {"const": 1}}, True),
        ({"enum": [1, 2]}, {"type": "integer", "maximum": 2}, True),
        ({"enum": [1, 3], "maximum": 2}, {"type": "integer", "maximum": 2}, True),
        ({"const": True}, {"type": "integer"}, False),
        (_S, {"enum": ["a"]}, False),
        (
            {"type": "object", "minProperties": 2, "maxProperties": 3},
            {"type": "object", "minProperties": 1, "maxProperties": 4},
            True,
        ),
        ({"type": "object"}, {"type": "object", "maxProperties": 4}, False),
        ({"type": "object", "required": ["a"]}, {"type": "object", "required": ["a", "b"]}, False),
        (
            {"type": "object", "properties": {"a": _S}},
            {"type": "object", "properties": {"a": {"type": "string", "maxLength": 1}}},
            False,
        ),
        (
            {"type": "object", "additionalProperties": False},
            {"type": "object", "properties": {"a": _S}},
            True,
        ),
        (
            {"type": "object", "patternProperties": {"^a": _S}},
            {"type": "object", "properties": {"ab": _S}},
            True,
        ),
        (
            {"type": "object", "patternProperties": {"^a": _S}, "additionalProperties": False},
            {"type": "object", "additionalProperties": False, "patternProperties": {"^a": _S}},
            True,
        ),
        (
            {"type": "object", "patternProperties": {"^b": _S}, "additionalProperties": False},
            {"type": "object", "additionalProperties": False, "patternProperties": {"^a": _S}},
            False,
        ),
        (
            {
                "type": "object",
                "properties": {"ab": {"type": "integer"}},
                "additionalProperties": False,
            },
            {"type": "object", "patternProperties": {"^a": _S}},
            False,
        ),
        (
            {"type": "object", "additionalProperties": _S},
            {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
            True,
        ),
        (
            {"type": "object", "propertyNames": {"maxLength": 2}},
            {"type": "object", "propertyNames": {"maxLength": 3}},
            True,
        ),
        (
            {"type": "object", "properties": {"ab": _S}, "additionalProperties": False},
            {"type": "object", "propertyNames": {"maxLength": 3}},
            True,
        ),
        ({"type": "object"}, {"type": "object", "propertyNames": {"maxLength": 3}}, False),
        (
            {"type": "object", "dependentRequired": {"a": ["b"]}},
            {"type": "object", "dependentRequired": {"a": ["b"]}},
            True,
        ),
        ({"type": "object"}, {"type": "object", "dependentRequired": {"a": ["b"]}}, False),
        (
            {"type": "array", "items": _S, "minItems": 2, "maxItems": 3, "uniqueItems": True},
            {
                "type": "array",
                "items": {"type": ["string"]},
                "minItems": 1,
                "maxItems": 5,
                "uniqueItems": True,
            },
            True,
        ),
        ({"type": "array"}, {"type": "array", "uniqueItems": True}, False),
        ({"type": "array"}, {"type": "array", "maxItems": 2}, False),
        (
            {"type": "array", "prefixItems": [_S], "items": False},
            {"type": "array", "prefixItems": [_S, _S]},
            True,
        ),
        (
            {"type": "array", "items": [_S], "additionalItems": {"type": "integer"}},
            {"type": "array", "items": {"type": ["string", "integer"]}},
            True,
        ),
        ({"type": "array", "contains": _S}, {"type": "array", "contains": _S}, True),
        ({"type": "array"}, {"type": "array", "contains": _S}, False),
        (_S, {"type": "string", "$ref": "#/definitions/x"}, False),
        (_S, {"type": "string", "title": "t", "x-vendor": 1}, True),
        (_S, {"customKeyword": 1}, False),
    ],
)
def test_inclusion(sub: Any, sup: Any, included: bool) -> None:
    from hyperspot.platform.gts.derivation import inclusion_problem

    problem = inclusion_problem(sub, sup, _accepts)
    assert (problem is None) is included, problem


def test_inlining_resolves_local_gts_and_sibling_refs() -> None:
    from hyperspot.platform.gts.derivation import RefCycleError, declared, flatten, inline_refs

    base = {
        "definitions": {"a~/b": {"type": "string"}},
        "items": [{"$ref": "#/definitions/a~0~1b"}],
    }
    docs = {
        "gts.x.a.b.c.v1~": {
            "definitions": {"n": {"type": "integer"}},
            "properties": {"n": {"$ref": "#/definitions/n"}},
        }
    }
    schema = {
        "allOf": [
            {"$ref": "gts://gts.x.a.b.c.v1~"},
            {"$ref": "gts://gts.x.a.b.c.v1~#/definitions/n"},
        ],
        "properties": {
            "s": {"$ref": "#/definitions/s", "maxLength": 2},
            "l": {"$ref": "#/properties/l"},
            "missing": {"$ref": "#/nowhere"},
            "other": {"$ref": "https://example.com/x"},
            "gone": {"$ref": "gts://gts.x.a.b.gone.v1~"},
            "bad": {"$ref": "gts://gts.x.a.b.c.v1~#/definitions/none"},
            "arr": {"$ref": "#/items/0"},
        },
        "dependencies": {"x": {"$ref": "#/definitions/s"}, "y": ["z"]},
        "definitions": {"s": _S},
        "items": [{"$ref": "#/definitions/s"}],
    }
    inlined = inline_refs(schema, docs.get, ref_siblings=True)
    assert inlined["allOf"][0]["properties"]["n"] == {"type": "integer"}
    assert inlined["allOf"][1] == {"type": "integer"}
    assert inlined["properties"]["s"] == {"allOf": [_S, {"maxLength": 2}]}
    assert inlined["properties"]["l"] == {"$ref": "#/properties/l"}  # a local cycle stays a ref
    assert inlined["properties"]["arr"] == _S
    assert inlined["dependencies"] == {"x": _S, "y": ["z"]}
    for name in ("missing", "other", "gone", "bad"):
        assert "$ref" in inlined["properties"][name]
    draft7 = inline_refs(
        {
            "properties": {"s": {"$ref": "#/definitions/s", "maxLength": 2}},
            "definitions": {"s": _S},
        },
        docs.get,
        ref_siblings=False,
    )
    assert draft7["properties"]["s"] == _S
    assert inline_refs(base, docs.get, ref_siblings=False)["items"] == [_S]
    with pytest.raises(RefCycleError):
        inline_refs(
            {"$ref": "gts://gts.x.a.b.c.v1~"},
            {"gts.x.a.b.c.v1~": {"allOf": [{"$ref": "gts://gts.x.a.b.c.v1~"}]}}.get,
            ref_siblings=False,
        )
    folded = declared(
        {
            "allOf": [
                {
                    "properties": {
                        "a": {"type": "string", "maxLength": 3, "properties": {"x": _S}}
                    },
                    "additionalProperties": False,
                },
                {"properties": {"a": {"type": "string"}}, "additionalProperties": True},
            ]
        }
    )
    assert folded == {
        "properties": {"a": {"type": "string", "properties": {"x": _S}}},
        "additionalProperties": False,
    }
    assert flatten(
        {
            "allOf": [
                {"properties": {"a": _S}, "required": ["a"]},
                {"properties": {"a": {"maxLength": 1}}, "required": ["a", "b"]},
            ]
        }
    ) == {
        "properties": {"a": {"type": "string", "maxLength": 1}},
        "required": ["a", "b"],
    }


def test_a_minimum_overlay_on_a_base_number_is_a_refinement() -> None:
    # Reported by the registry: allOf [$ref base, {"minimum": 0}] only accepts numbers.
    base = _schema(
        "gts.x.refine.bill.charge.v1~",
        {"required": ["amount"], "properties": {"amount": {"type": "number"}}},
    )
    derived = _schema(
        "gts.x.refine.bill.charge.v1~x.refine._.positive.v1~",
        {
            "allOf": [
                {"$ref": "gts://gts.x.refine.bill.charge.v1~"},
                {"properties": {"amount": {"minimum": 0}}},
            ]
        },
    )
    store = build_store([base])
    assert check_registration(store, GtsEntity.from_content(derived), "any-valid") == []
    store.put(GtsEntity.from_content(derived))
    assert validate_type_schema(store, "gts.x.refine.bill.charge.v1~x.refine._.positive.v1~")["ok"]


def test_declared_redeclaration_rule() -> None:
    from hyperspot.platform.gts.derivation import declared

    number = {"type": "number", "maximum": 10}
    # Without "type" an overlay refines: the inherited keywords it does not restate stay.
    assert declared(
        {"allOf": [{"properties": {"n": number}}, {"properties": {"n": {"minimum": 0}}}]}
    ) == {"properties": {"n": {"type": "number", "maximum": 10, "minimum": 0}}}
    # A restated keyword replaces the inherited one, so a looser bound stays visible.
    assert declared(
        {"allOf": [{"properties": {"n": number}}, {"properties": {"n": {"maximum": 99}}}]}
    ) == {"properties": {"n": {"type": "number", "maximum": 99}}}
    # With "type" the overlay is a complete declaration: unstated keywords are dropped.
    assert declared(
        {"allOf": [{"properties": {"n": number}}, {"properties": {"n": {"type": "number"}}}]}
    ) == {"properties": {"n": {"type": "number"}}}
    # Items, pattern properties and additionalProperties schemas follow the same rule;
    # true adds nothing.
    tags = {"type": "array", "items": _S}
    assert declared(
        {
            "allOf": [
                {"properties": {"t": tags}, "additionalProperties": _S},
                {
                    "properties": {"t": {"items": {"maxLength": 3}}},
                    "additionalProperties": {"maxLength": 5},
                },
                {"properties": {"t": True}},
            ]
        }
    ) == {
        "properties": {"t": {"type": "array", "items": {"type": "string", "maxLength": 3}}},
        "additionalProperties": {"type": "string", "maxLength": 5},
    }
    assert declared(
        {
            "allOf": [
                {"patternProperties": {"^a": {"type": "integer"}}},
                {"patternProperties": {"^a": {"minimum": 1}, "^b": _S}},
            ]
        }
    ) == {"patternProperties": {"^a": {"type": "integer", "minimum": 1}, "^b": _S}}


@pytest.mark.parametrize(
    ("schema", "empty"),
    [
        (False, True),
        ({"not": {}}, True),
        ({"type": "number", "enum": ["x"]}, True),
        ({"type": "string", "const": "b", "enum": ["a"]}, True),
        ({"type": "integer", "minimum": 5, "maximum": 4}, True),
        ({"type": "integer", "minimum": 5, "exclusiveMaximum": 5}, True),
        ({"type": "integer", "minimum": 5, "maximum": 5}, False),
        ({"type": "string", "minLength": 3, "maxLength": 2}, True),
        ({"type": "array", "minItems": 3, "maxItems": 2}, True),
        ({"type": "object", "maxProperties": -1}, True),
        ({"type": ["string", "number"], "minLength": 3, "maxLength": 2}, False),
        ({"type": "string", "enum": ["a", 1]}, False),
        ({"minimum": 5, "maximum": 4}, False),  # still accepts every non-number
        ({}, False),
        (True, False),
    ],
)
def test_unsatisfiable(schema: Any, empty: bool) -> None:
    from hyperspot.platform.gts.derivation import unsatisfiable

    assert unsatisfiable(schema, _accepts) is empty
