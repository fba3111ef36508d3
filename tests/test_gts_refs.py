"""``x-gts-ref`` (spec §9.6, ADR-0007): operands, matching, reference validation modes.

``fixtures/gts/schemas-cases/x_gts_ref.json`` restates the cases of the gts-spec conformance
suite (tests/test_refimpl_x_gts_ref.py and the x-gts-ref cases of test_op13) as data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hyperspot.platform.gts import GtsEntity, GtsError, GtsStore
from hyperspot.platform.gts.refs import (
    RefContext,
    check_mode,
    keyword,
    operand_error,
    ref_context,
    resolve_operand,
    value_error,
)
from hyperspot.platform.gts.validation import (
    check_registration,
    check_schema_basic,
    validate_instance,
    validate_type_schema,
)

CASES = Path(__file__).parent / "fixtures" / "gts" / "schemas-cases"
D7 = "http://json-schema.org/draft-07/schema#"


def _scenarios() -> list[Any]:
    data = json.loads((CASES / "x_gts_ref.json").read_text())
    return [pytest.param(s, id=s["name"]) for s in data["cases"]]


@pytest.mark.parametrize("scenario", _scenarios())
def test_scenario(scenario: dict[str, Any]) -> None:
    store = GtsStore()
    for document in scenario["entities"]:
        store.put(GtsEntity.from_content(document))
    for check in scenario["checks"]:
        mode = check.get("mode", "any-valid")
        if check["op"] == "basic":
            errors = check_schema_basic(check["document"])
        elif check["op"] == "register":
            errors = check_registration(store, GtsEntity.from_content(check["document"]), mode)
        else:
            validate = validate_type_schema if check["op"] == "type" else validate_instance
            body = validate(store, check["id"], mode)
            errors = [body["error"]] if not body["ok"] else []
        label = check.get("id", check["op"])
        assert (not errors) is check["ok"], (label, errors)
        if "error" in check:
            assert check["error"] in "; ".join(errors), (label, errors)


@pytest.mark.parametrize(
    ("operand", "problem"),
    [
        ("gts.x.core.events.topic.v1~", None),
        ("gts.x.core.events.topic.v1~x.core._.orders.v1", None),
        ("gts.*", None),
        ("gts.x.core.am.*", None),
        ("gts.x.core.events.topic.v1~*", None),
        ("/$id", None),
        ("gts.x.y.z", "Invalid GTS identifier: gts.x.y.z"),
        ("a.b.c", "Invalid GTS identifier: a.b.c"),
        ("gts.x.*.events.v1~", "Invalid GTS identifier"),
        ("/properties/anchor", "unsupported x-gts-ref pointer"),
        ("./$id", "unsupported x-gts-ref pointer"),
        (42, "must be a string"),
    ],
)
def test_operand_syntax(operand: object, problem: str | None) -> None:
    found = operand_error(operand)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize(
    ("pattern", "value", "ok"),
    [
        ("gts.x.a.b.c.v1~", "gts.x.a.b.c.v1~", True),
        ("gts.x.a.b.c.v1~", "gts.x.a.b.c.v1~x.y._.z.v1~", True),
        ("gts.x.a.b.c.v1~", "gts.x.a.b.c.v1~x.y._.z.v1", True),
        ("gts.x.a.b.c.v1~", "gts.x.a.b.d.v1~", False),
        ("gts.x.a.b.c.v1~x.y._.z.v1", "gts.x.a.b.c.v1~x.y._.z.v12", False),
        ("gts.x.a.b.c.v1~x.y._.z.v1", "gts.x.a.b.c.v1~x.y._.z.v1", True),
        ("gts.x.a.*", "gts.x.a.q.r.v2~", True),
        ("gts.x.a.*", "gts.x.b.q.r.v2~", False),
        ("gts.*", "gts.y.a.q.r.v2~", True),
        ("gts.*", "not a gts id", False),
        ("gts.x.a.b.c.v1~", "", False),
    ],
)
def test_value_matching(pattern: str, value: str, ok: bool) -> None:
    problem = value_error(pattern, value)
    assert (problem is None) is ok, problem
    if not ok and value.startswith("gts."):
        assert "does not match pattern" in (problem or "")


def test_self_id_operand_resolves_to_the_selected_type() -> None:
    assert resolve_operand("/$id", "gts.x.a.b.c.v1~") == "gts.x.a.b.c.v1~"
    assert resolve_operand("gts.*", "gts.x.a.b.c.v1~") == "gts.*"
    assert resolve_operand("/$id", None) is None


def test_modes_are_checked() -> None:
    assert [check_mode(m) for m in ("none", "any-present", "any-valid")] == [
        "none",
        "any-present",
        "any-valid",
    ]
    with pytest.raises(GtsError, match="unknown gts-ref-validation mode 'unknown'"):
        check_mode("unknown")
    store = GtsStore()
    with pytest.raises(GtsError):
        validate_instance(store, "gts.x.a.b.c.v1~x.a.b.c.v1", "full")


def test_keyword_without_context_or_for_non_strings_asserts_nothing() -> None:
    assert list(keyword(None, "gts.x.a.b.c.v1~", "not a gts id", {})) == []
    context = RefContext(lambda _: None, "any-present", None)
    with ref_context(context):
        assert list(keyword(None, "gts.x.a.b.c.v1~", 42, {})) == []
        assert list(keyword(None, "/$id", "whatever", {})) == []  # no selected type
        errors = list(keyword(None, "gts.x.a.b.c.v1~", "gts.x.a.b.c.v1~x.a.b.c.v1", {}))
        assert [e.message for e in errors] == [
            "x-gts-ref target 'gts.x.a.b.c.v1~x.a.b.c.v1' is not registered"
        ]
        assert [e.message for e in keyword(None, "./x", "gts.x.a.b.c.v1~", {})] == [
            "unsupported x-gts-ref pointer './x' (only '/$id' is allowed)"
        ]
    assert context.referenced == set()


def test_referenced_targets_are_collected_for_any_valid() -> None:
    store = GtsStore()
    target = {"$id": "gts://gts.x.r.t.target.v1~", "$schema": D7, "type": "object"}
    store.put(GtsEntity.from_content(target))
    context = RefContext(store.get, "any-valid", None)
    with ref_context(context):
        assert list(keyword(None, "gts.x.r.t.target.v1~", "gts.x.r.t.target.v1~", {})) == []
    assert context.referenced == {"gts.x.r.t.target.v1~"}


def test_stored_malformed_operand_is_reported_not_raised() -> None:
    # A schema registered without the basic checks may hold a malformed operand.
    assert "malformed" in (value_error("gts.x.*.b.v1~", "gts.x.a.b.c.v1~") or "")
