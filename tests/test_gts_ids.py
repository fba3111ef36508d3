"""GTS identifiers (spec §2, §3.7, §8, §9.1, §10, §11.1): parsing, OP#1-OP#5, extraction, store.

The identifier examples come from the specification text and from the cases of its conformance
suite (tests/test_op1..op4 of GlobalTypeSystem/gts-spec), here checked against the library.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperspot.platform.gts import (
    GTS_NAMESPACE,
    GtsEntity,
    GtsError,
    GtsId,
    GtsIdError,
    GtsStore,
    extract_id,
    gts_uuid,
    id_to_uuid,
    is_valid_id,
    is_valid_pattern,
    match_id_pattern,
    match_pattern,
    parse_id,
    permits,
    strip_gts_uri,
    validate_id,
)

FIXTURES = Path(__file__).parent / "fixtures" / "gts"
ANON_UUID = "7a1d2f34-5678-49ab-9012-abcdef123456"
DEEP_CHAIN = "gts.x.core.events.type.v1~x.core.audit.event.v1~x.marketplace.orders.purchase.v1"
COMBINED = f"gts.x.core.events.type.v1~x.commerce.orders.order_placed.v1.0~{ANON_UUID}"

VALID_IDS = [
    # §2.1 / §2.2 / §3.7 / §9.1 examples
    "gts.x.idp.users.user.v1.0~",
    "gts.x.mq.events.topic.v1~",
    "gts.x.core.events.type.v1~",
    "gts.x.core.events.type.v1.2~",
    "gts.x.core.events.type.v1~ven.app._.custom_event.v1~",
    "gts.x.core.events.topic.v1~ven.app._.custom_event_topic.v1.2",
    "gts.x.some.base.type.v1~vendor.app.some.derived.v1~",
    "gts.x.core.events.topic.v1~x.commerce._.orders.v1.0",
    "gts.x.core.events.topic.v1~x.commerce.orders.orders.v1.0",
    "gts.x.core.events.type.v1~x.commerce.orders.order_placed.v1.0~",
    "gts.x.core.events.type.v1~x.core.audit.event.v1~abc.app.store.purchase_audit_event.v1.2~",
    "gts.x.core.db.connection_config.v1.0~",
    "gts.a.b.c.d.v1~w.x.y.z.v1",
    COMBINED,
    # conformance OP#1: valid
    "gts.x.test1.events.type.v1~",
    "gts.abc.commerce.orders.order.v2.15~",
    "gts.vendor.pkg.ns.type.v0~",
    "gts.v123.p456.n789.t000.v999.888~",
    "gts.x.pkg._.type.v1~",
    "gts.myvendor.mypackage.mynamespace.mytype.v1.0~",
    "gts.x.test1.events.type.v1~abc.app._.custom_event.v1~",
    "gts.x.test1.events.type.v1~abc.app._.custom_event.v1.2",
    "gts.a.b.c.d.v1~e.f.g.h.v2~i.j.k.l.v3~",
    "gts.vendor_name.pkg_123.ns_abc.type_xyz.v10.5~",
    "gts.a1.b2.c3.d4.v100.200~",
    "gts.x.test1.events.type.v1~vendor.app.derived.event.v2~vendor.app._.event.v2.0",
    "gts.longvendorname.longpackagename.longnamespacename.longtypename.v1~",
    "gts._a.b2.c3._d4.v1~",
    "gts.x.test1.events.type.v1~a.b.c.d.v1~e.f.g.h.v1~i.j.k.l.v1.0",
    "gts.v.v.v.v.v1~",
    "gts.a.b.c.d.v0~",
    "gts._._._._.v1~",
    "gts.x.y.z.a.v999999.888888~",
    "gts.verylongvendorname123456789.pkg.ns.type.v1~",
    "gts.vendor_with_many_underscores_123.package_with_many_underscores_456."
    "namespace_with_many_underscores_789.type_with_many_underscores_000.v1~",
    "gts.x.pkg.ns.type.v999999~",
    "gts.x.pkg.ns.type.v1.999999~",
    "gts.x.pkg.ns.type.v0.0~",
    "gts.x.pkg.ns.type.v0.1~",
    "gts._.pkg.ns.type.v1~",
    "gts.vendor._.ns.type.v1~",
    "gts.vendor.pkg.ns._.v1~",
    "gts.x.test1.events.type.v1~vendor.app.derived.event.v2.0",
    "gts.a.b.c.d.v1~e.f.g.h.v2~i.j.k.l.v3.0",
    "gts.x.test10.zero.event.v0~x.test10._.instance.v0",
]

INVALID_IDS = [
    # conformance OP#1: invalid
    "GTS.x.test1.events.type.v1~",
    "gts.X.core.events.type.v1~",
    "gts.x.test1.events.type.V1~",
    "x.test1.events.type.v1~",
    "gts.x.test1.events.type.1~",
    "gts.x.test1.events.type.v1.2.3~",
    "gts.x.test1.events.type.v-1~",
    "gts.x.test1.events.type.v1.~",
    "gts.x.test1.events.type.v01~",
    "gts.x.test1.events.type.v1.01~",
    "gts.x.mq.messages._._.v1",
    "gts.1vendor.core.events.type.v1~",
    "gts.x.core-events.events.type.v1~",
    "gts.x.test1.events..event.v1~",
    "gts.x.test1.events.type.v1.0~~",
    "gts.x.test1.events.type.v1~gts.abc.app._.custom.v1~",
    "gts.x.test1.events.type.v1.abc.app.namespace.custom.v1",
    "gts.x.test1.events.event~",
    "gts.x.test1.events.v1~",
    "gts.x.test1.namespace.type.v1~a.b.c.v1",
    "gts.x.test1.events.type.v1.0.0~",
    "gts.x.core.events.type.v1~x.commerce.orders.order_placed.v1.0~not-a-uuid",
    "gts.x.pkg.ns.type.v001.001~",
    "gts.x.pkg.ns.type.v1.-1~",
    "gts.x.pkg.ns.type.~",
    "gts.x.pkg.ns.type.version1~",
    "gts.vendor.2pkg.ns.type.v1~",
    "gts.vendor.pkg.3ns.type.v1~",
    "gts.vendor.pkg.ns.4type.v1~",
    "gts.vendor-name.pkg.ns.type.v1~",
    "gts.vendor.pkg.name.space.type.v1~",
    "gts.vendor.pkg.ns.type@name.v1~",
    "gts..pkg.ns.type.v1~",
    "gts.vendor..ns.type.v1~",
    "gts.Vendor.pkg.ns.type.v1~",
    "gts.vendor.pkg.Ns.type.v1~",
    # §3.7 / issue #37: single-segment instance identifiers are prohibited
    "gts.x.test1.events.type.v1",
    "gts.x.test1.objects_registry.object_a.v1.0",
    "gts.abc.commerce.orders.order.v2.15",
    "gts.vendor.pkg.ns.type.v0",
    "gts.x.pkg._.type.v1",
    "gts.x.test1.api.endpoint.v0.1",
    "gts.acme.core.models.user.v1.0",
    # §2.3: normalisation, no whitespace, lowercase only
    " gts.x.core.events.type.v1~",
    "gts.x.core.events.type.v1~ ",
    "gts.x.core.events.type.v1~" + ANON_UUID.upper(),
    # a UUID tail needs a type segment before it; only the tail may be a UUID
    "gts." + ANON_UUID,
    f"gts.x.core.events.type.v1~{ANON_UUID}~",
    # the gts:// URI form is not canonical (OP#1)
    "gts://gts.x.test1.events.type.v1~",
    "gts://gts.x.test1.events.type.v1~x.vendor._.item.v1.0",
    "gts://gts://gts.x.test1.events.type.v1~",
    "",
    "gts.",
    "gts.~",
]


@pytest.mark.parametrize("text", VALID_IDS)
def test_valid_identifiers_parse_and_validate(text: str) -> None:
    assert is_valid_id(text)
    parsed = GtsId.parse(text)
    assert parsed.id == text
    assert str(parsed) == text
    body = validate_id(text)
    assert body == {"id": text, "valid": True, "is_wildcard": False, "is_type": text.endswith("~")}


@pytest.mark.parametrize("text", INVALID_IDS)
def test_invalid_identifiers_are_rejected_with_a_one_line_reason(text: str) -> None:
    assert not is_valid_id(text)
    with pytest.raises(GtsIdError) as caught:
        GtsId.parse(text)
    message = str(caught.value)
    assert message and "\n" not in message
    body = validate_id(text)
    assert body["id"] == text
    assert body["valid"] is False
    assert body["error"]


def test_length_limit_is_1024_characters() -> None:
    base = "gts.x.core.events.type.v1~"
    segment = "a.b.c.d.v1~"
    fitting = base + segment * ((1024 - len(base)) // len(segment))
    assert len(fitting) <= 1024 and is_valid_id(fitting)
    too_long = fitting + segment
    assert len(too_long) > 1024
    with pytest.raises(GtsIdError, match="1024"):
        GtsId.parse(too_long)


@pytest.mark.parametrize("value", [None, 42, b"gts.x.core.events.type.v1~"])
def test_non_strings_are_not_identifiers(value: Any) -> None:
    assert not is_valid_id(value)
    assert not is_valid_pattern(value)
    with pytest.raises(GtsIdError, match="string"):
        GtsId.parse(value)


# --- structure: segments, type / instance, chains ------------------------------------------------


def test_segments_of_a_chained_instance() -> None:
    parsed = GtsId.parse("gts.x.test3.events.type.v1~abc.app._.custom.v1~abc.app._.instance.v1.0")
    first, second, third = parsed.segments
    assert (first.vendor, first.package, first.namespace, first.type) == (
        "x",
        "test3",
        "events",
        "type",
    )
    assert (first.ver_major, first.ver_minor, first.is_type) == (1, None, True)
    assert (second.vendor, second.namespace, second.ver_minor, second.is_type) == (
        "abc",
        "_",
        None,
        True,
    )
    assert (third.type, third.ver_major, third.ver_minor, third.is_type) == (
        "instance",
        1,
        0,
        False,
    )
    assert third.text == "abc.app._.instance.v1.0"
    assert not any(segment.is_wildcard for segment in parsed.segments)
    assert not parsed.is_type
    assert parsed.type_id == "gts.x.test3.events.type.v1~abc.app._.custom.v1~"
    assert parsed.parent_type_id == parsed.type_id


@pytest.mark.parametrize(
    ("text", "is_type", "parent", "type_id"),
    [
        ("gts.x.core.events.type.v1~", True, None, "gts.x.core.events.type.v1~"),
        (
            "gts.x.core.events.type.v1~abc.app._.custom.v1~",
            True,
            "gts.x.core.events.type.v1~",
            "gts.x.core.events.type.v1~abc.app._.custom.v1~",
        ),
        (
            "gts.a.b.c.d.v1~e.f.g.h.v2~i.j.k.l.v3~",
            True,
            "gts.a.b.c.d.v1~e.f.g.h.v2~",
            "gts.a.b.c.d.v1~e.f.g.h.v2~i.j.k.l.v3~",
        ),
        (
            "gts.x.core.events.topic.v1~x.commerce._.orders.v1.0",
            False,
            "gts.x.core.events.topic.v1~",
            "gts.x.core.events.topic.v1~",
        ),
        (
            COMBINED,
            False,
            "gts.x.core.events.type.v1~x.commerce.orders.order_placed.v1.0~",
            "gts.x.core.events.type.v1~x.commerce.orders.order_placed.v1.0~",
        ),
    ],
)
def test_type_and_parent_of_chains(
    text: str, is_type: bool, parent: str | None, type_id: str
) -> None:
    parsed = GtsId.parse(text)
    assert parsed.is_type is is_type
    assert parsed.parent_type_id == parent
    assert parsed.type_id == type_id


def test_combined_anonymous_instance_keeps_its_uuid_apart_from_the_segments() -> None:
    parsed = GtsId.parse(COMBINED)
    assert parsed.uuid_tail == ANON_UUID
    assert [segment.type for segment in parsed.segments] == ["type", "order_placed"]
    assert all(segment.is_type for segment in parsed.segments)


def test_parse_results_are_cached() -> None:
    text = "gts.x.cache.events.type.v1~a.b.c.d.v1"
    assert GtsId.parse(text) is GtsId.parse(text)


# --- OP#3 ---------------------------------------------------------------------------------------


def test_op3_parse_body_for_type_instance_and_anonymous() -> None:
    body = parse_id("gts.x.test3.events.type.v1~")
    assert body["ok"] is True and body["is_type"] is True and body["is_wildcard"] is False
    assert body["segments"][-1]["is_type"] is True and body["segments"][-1]["ver_minor"] is None

    body = parse_id("gts.x.test3.events.type.v1~abc.app._.custom_event.v1.2")
    assert body["segments"][-1] | {} == {
        "vendor": "abc",
        "package": "app",
        "namespace": "_",
        "type": "custom_event",
        "ver_major": 1,
        "ver_minor": 2,
        "is_type": False,
        "is_wildcard": False,
    }
    assert body["is_type"] is False

    body = parse_id("gts.x.test3.events.type.v1~a.b.c.d.v1~e.f.g.h.v1~i.j.k.l.v1.0")
    assert body["segments"][-1]["ver_minor"] == 0 and len(body["segments"]) == 4

    body = parse_id(COMBINED)
    assert body["ok"] is True and body["is_type"] is False and body["uuid"] == ANON_UUID

    for text, major, minor in [
        ("gts.x.pkg.ns.type.v1~", 1, None),
        ("gts.x.pkg.ns.type.v2.5~", 2, 5),
        ("gts.x.pkg.ns.type.v0~", 0, None),
    ]:
        segment = parse_id(text)["segments"][0]
        assert (segment["ver_major"], segment["ver_minor"]) == (major, minor)
    assert parse_id("gts.vendor.pkg._.type.v1~")["segments"][0]["namespace"] == "_"
    assert parse_id("gts.vendor.pkg.events.type.v1~")["segments"][0]["namespace"] == "events"


@pytest.mark.parametrize("text", ["gts.a.b.c.d.v1~a.*~", "gts.a.b.c.d.v1~a*", "gts.a.b.c.*.v1~a.*"])
def test_op1_op3_misplaced_wildcards_are_invalid_patterns(text: str) -> None:
    validated = validate_id(text)
    assert validated["valid"] is False and validated["is_wildcard"] is True and validated["error"]
    parsed = parse_id(text)
    assert parsed["ok"] is False and parsed["is_wildcard"] is True and parsed["error"]


@pytest.mark.parametrize(
    "text", ["gts.a.b.c.d.v1~a.*", "gts.x.pkg.ns.*", "gts.x.core.events.type.v1~*", "gts.x.core.*"]
)
def test_op1_op3_wildcard_at_a_token_boundary_is_a_valid_pattern(text: str) -> None:
    assert validate_id(text)["valid"] is True
    assert validate_id(text)["is_wildcard"] is True
    body = parse_id(text)
    assert body["ok"] is True and body["is_wildcard"] is True
    assert body["segments"][-1]["is_wildcard"] is True
    assert not is_valid_id(text)
    assert is_valid_pattern(text)


def test_op3_reports_errors_in_the_body() -> None:
    body = parse_id("gts.x.pkg.ns.type")
    assert body["ok"] is False and body["segments"] == [] and body["error"]


# --- patterns (§10) -----------------------------------------------------------------------------

VALID_PATTERNS = [
    "gts.*",
    "gts.x.*",
    "gts.x.llm.*",
    "gts.x.llm.chat.*",
    "gts.x.llm.chat.message.*",
    "gts.x.llm.chat.message.v*",
    "gts.x.llm.chat.message.v1.*",
    "gts.x.llm.chat.message.v1~*",
    "gts.x.llm.chat.message.v1.0~*",
    "gts.x.core.events.type.v1~x.core._.audit_event.v1~xyz.*",
    "gts.a.b.c.d.v1~a.*",
]
INVALID_PATTERNS = [
    "gts.x.llm.chat.msg*",
    "gts.x.llm.chat.message.v*~*",
    "gts.*.pkg.ns.*",
    "gts.x.*.events.type.v1~",
    "gts.vendor*",
    "gts.x.test4.events.type.v1*abc",
    "GTS.vendor.pkg.ns.type.v0.*",
    "gts.x.test4.events.type",
    "gts.a.b.c.d~",
    "gts.x.llm.chat.message.v1.0.*",
    "gts.x.llm.chat.message.v1x*",
    "gts.x.y.z.t.v1~a-b.*",
    "*",
]


@pytest.mark.parametrize("pattern", VALID_PATTERNS)
def test_valid_patterns(pattern: str) -> None:
    assert is_valid_pattern(pattern)
    assert GtsId.parse(pattern, allow_wildcard=True).is_wildcard


@pytest.mark.parametrize("pattern", INVALID_PATTERNS)
def test_invalid_patterns(pattern: str) -> None:
    assert not is_valid_pattern(pattern)
    with pytest.raises(GtsIdError):
        GtsId.parse(pattern, allow_wildcard=True)


# §10's example list, with the namespace the spec text omits ("x.llm.system_message.v1.0" has
# only three name tokens; the conformance suite uses "x.test10_llm._.system_message.v1.0").
LLM_IDS = [
    "gts.x.llm.chat.message.v1.0~",
    "gts.x.llm.chat.message.v1.0~x.llm._.system_message.v1.0~",
    "gts.x.llm.chat.message.v1.1~",
    "gts.x.llm.chat.message.v1.1~x.llm._.user_message.v1.1~",
]


def test_section_10_example_ids_as_printed_are_malformed() -> None:
    assert not is_valid_id("gts.x.llm.chat.message.v1.0~x.llm.system_message.v1.0~")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("gts.x.llm.chat.message.*", LLM_IDS),
        ("gts.x.llm.chat.message.v1.*", LLM_IDS),
        ("gts.x.llm.chat.message.v*", LLM_IDS),
        ("gts.x.llm.chat.message.v2.*", []),
        # "~*" matches the type itself too (§10: the wildcard matches the empty sequence)
        ("gts.x.llm.chat.message.v1~*", LLM_IDS),
        ("gts.x.llm.chat.message.v1.0~*", LLM_IDS[:2]),
        ("gts.x.llm.chat.message.v1.0~x.*", [LLM_IDS[1]]),
        ("gts.x.llm.chat.message.v1.1~x.llm._.user_message.*", [LLM_IDS[3]]),
    ],
)
def test_section_10_examples(pattern: str, expected: list[str]) -> None:
    assert [candidate for candidate in LLM_IDS if match_pattern(pattern, candidate)] == expected


MATCHES = [
    # §10 minor version examples
    ("gts.vendor.pkg.ns.type.v0~*", "gts.vendor.pkg.ns.type.v0.1~", True),
    ("gts.vendor.pkg.ns.type.v0~*", "gts.vendor.pkg.ns.type.v0~", True),
    ("gts.vendor.pkg.ns.type.v0.1~*", "gts.vendor.pkg.ns.type.v0.1~", True),
    ("gts.vendor.pkg.ns.type.v0~abc.*", "gts.vendor.pkg.ns.type.v0.1~", False),
    ("gts.vendor.pkg.ns.type.v0.1~*", "gts.vendor.pkg.ns.type.v0.2~", False),
    ("gts.vendor.pkg.ns.type.v0~*", "gts.vendor.pkg.ns.type.v1.0~", False),
    # §3.6 implicit derived-type coverage
    ("gts.a.b.c.d.v1~", "gts.a.b.c.d.v1~w.x.y.z.v1", True),
    ("gts.a.b.c.d.v1~*", "gts.a.b.c.d.v1~w.x.y.z.v1", True),
    ("gts.a.b.c.d.v1~w.*", "gts.a.b.c.d.v1~w.x.y.z.v1", True),
    ("gts.a.b.c.d.v1~x.*", "gts.a.b.c.d.v1~w.x.y.z.v1", False),
    # conformance OP#4
    (
        "gts.x.test4.events.type.v1~abc.*",
        "gts.x.test4.events.type.v1~abc.app._.custom_event.v1.2",
        True,
    ),
    ("gts.x.pkg.ns.type.v1~", "gts.x.pkg.ns.type.v1.5~", True),
    ("gts.x.pkg.ns.type.v1~a.b.c.*", "gts.x.pkg.ns.type.v1.5~a.b.c.d.v1", True),
    ("gts.x.pkg.ns.type.v1~a.b.c.d.v1", "gts.x.pkg.ns.type.v1.5~a.b.c.d.v1.2", True),
    ("gts.x.pkg.ns.type.v1.2~", "gts.x.pkg.ns.type.v1.2~", True),
    ("gts.x.pkg.ns.type.v0.*", "gts.x.pkg.ns.type.v0.2~", True),
    ("gts.x.pkg.ns.type.v0.*", "gts.x.pkg.ns.type.v1.2~", False),
    ("gts.x.pkg.ns.type.v1~", "gts.x.pkg.ns.type.v2~", False),
    ("gts.x.test4.events.type.v1~abc.*", "gts.x.test4.events.type.v1~abc.app._.custom.v1~", True),
    ("gts.myvendor.*", "gts.myvendor.pkg.ns.type.v1.0~", True),
    ("gts.x.pkg.events.*", "gts.x.pkg.events.order_placed.v1~", True),
    ("gts.*", "gts.vendor.pkg.ns.type.v1~", True),
    ("gts.vendor.*", "gts.vendor.pkg.ns.type.v1~", True),
    ("gts.vendor.*", "gts.vendor.pkg.*", True),
    ("gts.vendor.pkg.*", "gts.vendor.*", False),
    ("gts.a.b.c.d.v1~*", "gts.a.b.c.d.v1.0~a.b.*", True),
    ("gts.a.b.c.d.v1~*", "gts.a.b.c.d.v1.0~a.b.c.d.v1", True),
    ("gts.a.b.c.d.v1.1~", "gts.a.b.c.d.v1.1~a.b.*", True),
    ("gts.a.b.c.d.v1~", "gts.a.b.c.d.v1.0~a.b.*", True),
    ("gts.a.b.c.d.v1~", "gts.a.b.c.d.v1.0~a.b.c.d.v1", True),
    ("gts.w.x.y.z.v1~", "gts.w.x.y.z.v1.0~a.*", True),
    ("gts.a.b.c.d.v1.1~*", "gts.a.b.c.d.v1~a.b.c.d.*", False),
    ("gts.a.b.c.d.v1.1~*", "gts.a.b.c.d.v1.0~a.b.c.d.*", False),
    ("gts.vendor.pkg.ns.type.v0~*", "gts.vendor.pkg.ns.type.v0~a.b.c.d.v1", True),
    ("gts.vendor.pkg.ns.type.v0~*", "gts.vendor.pkg.ns.type.v0.1~a.b.c.d.v1", True),
    (
        "gts.x.test4.events.type.v2~abc.*",
        "gts.x.test4.events.type.v1~abc.app._.custom_event.v1.3",
        False,
    ),
    ("gts.vendor.pkg.ns.type.v0~*", "gts.vendor.pkg.ns.type.v1.1~", False),
    # an instance pattern names one instance; a type pattern never matches a bare instance shape
    ("gts.a.b.c.d.v1~w.x.y.z.v1", "gts.a.b.c.d.v1~w.x.y.z.v1~", False),
    ("gts.a.b.c.d.v1~w.x.y.z.v1~", "gts.a.b.c.d.v1~w.x.y.z.v1", False),
    ("gts.a.b.c.d.v1~w.x.y.z.v1.0", "gts.a.b.c.d.v1~w.x.y.z.v1", False),
    # combined anonymous instances fall under their type
    ("gts.x.core.events.type.v1~", COMBINED, True),
    ("gts.x.core.events.type.v1~x.commerce.*", COMBINED, True),
    ("gts.x.core.events.type.v1~x.commerce.orders.order_placed.v1.0~*", COMBINED, True),
    (COMBINED, COMBINED, True),
    (COMBINED, COMBINED[:-1] + "7", False),
    ("gts.x.core.events.type.v1~y.*", COMBINED, False),
]


@pytest.mark.parametrize(("pattern", "candidate", "expected"), MATCHES)
def test_match_pattern(pattern: str, candidate: str, expected: bool) -> None:
    assert match_pattern(pattern, candidate) is expected
    body = match_id_pattern(candidate, pattern)
    assert body == {"candidate": candidate, "pattern": pattern, "match": expected}


@pytest.mark.parametrize(
    ("pattern", "candidate"),
    [
        ("gts.x.*.events.type.v1~", "gts.x.test4.events.type.v1~"),
        ("gts.*.pkg.ns.*", "gts.vendor.pkg.ns.type.v1~"),
        ("gts.vendor*", "gts.vendor.pkg.ns.type.v1~a.*"),
        ("gts.vendor*", "gts.vendor.pkg.ns.type.v1~"),
        ("gts.vendor.*", "gts.vendor.pkg.ns.type.v1~a*"),
        ("gts.vendor.*", "gts.vendor.pkg.ns.type.v1~a-b.*"),
        ("gts.a.b.c.d~", "gts.a.b.c.d~a.b.c.d.*"),
        ("gts.a.b.c.d.v1~", "gts.a.b.c.d~a.b.c.d.*"),
        ("GTS.vendor.pkg.ns.type.v0.*", "gts.x.test4.events.type.v1~abc.app._.custom_event.v1.2"),
        ("gts.x.test4.events.type.v1*abc", "gts.vendor.pkg.ns.type.v0~"),
        ("gts.x.test4.events.type", "gts.vendor.pkg.ns.type.v0~"),
        (
            "gts.x.test4.events.type.v1~abc",
            "gts.x.test4.events.type.v1~abc.app._.custom_event.v1.2",
        ),
    ],
)
def test_match_rejects_malformed_input(pattern: str, candidate: str) -> None:
    with pytest.raises(GtsIdError):
        match_pattern(pattern, candidate)
    body = match_id_pattern(candidate, pattern)
    assert body["match"] is False
    assert body["error"].startswith("Invalid")


# --- RBAC (§3.5, §3.6) --------------------------------------------------------------------------


def test_permits_grants_families_of_identifiers() -> None:
    auditor = ["gts.x.core.events.type.v1~x.core._.audit_event.v1~xyz.*"]
    assert permits(auditor, "gts.x.core.events.type.v1~x.core._.audit_event.v1~xyz.app._.login.v1~")
    assert not permits(auditor, "gts.x.core.events.type.v1~x.core._.audit_event.v1~abc.app._.x.v1~")
    assert not permits(auditor, "gts.x.core.events.type.v1~")
    base_grant = ["gts.a.b.c.d.v1~"]
    assert permits(base_grant, "gts.a.b.c.d.v1~w.x.y.z.v1")
    assert permits(base_grant, "gts.a.b.c.d.v1.3~w.x.y.z.v1")
    assert not permits(base_grant, "gts.a.b.c.d.v2~w.x.y.z.v1")
    assert not permits([], "gts.a.b.c.d.v1~")


def test_permits_ignores_malformed_grants_and_refuses_malformed_ids() -> None:
    assert permits(["gts.vendor*", "gts.*"], "gts.a.b.c.d.v1~")
    assert not permits(["gts.vendor*"], "gts.vendor.pkg.ns.type.v1~")
    assert not permits(["gts.*"], "not-a-gts-id")
    # a grant list may be any iterable, consumed once
    assert permits(iter(["gts.a.*"]), "gts.a.b.c.d.v1~")


# --- OP#5 UUIDs (§9.10) -------------------------------------------------------------------------


def test_uuid_is_v5_in_the_gts_namespace() -> None:
    text = "gts.x.core.events.type.v1~"
    assert uuid.uuid5(uuid.NAMESPACE_URL, "gts") == GTS_NAMESPACE
    value = gts_uuid(text)
    assert value == uuid.uuid5(GTS_NAMESPACE, text)
    assert value.version == 5
    assert id_to_uuid(text) == {"id": text, "uuid": str(value)}


def test_uuid_of_a_combined_anonymous_instance_is_its_own_uuid() -> None:
    assert gts_uuid(COMBINED) == uuid.UUID(ANON_UUID)


def test_uuid_of_an_invalid_identifier() -> None:
    with pytest.raises(GtsIdError):
        gts_uuid("gts.x.core.events.type.v1")
    body = id_to_uuid("gts.x.core.events.type.v1")
    assert body["uuid"] is None and body["error"]


# --- property tests -----------------------------------------------------------------------------

_token = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
_number = st.integers(min_value=0, max_value=10**6)


@st.composite
def _segments(draw: st.DrawFn) -> str:
    names = [draw(_token) for _ in range(4)]
    minor = draw(st.none() | _number)
    version = f"v{draw(_number)}" + ("" if minor is None else f".{minor}")
    return ".".join([*names, version])


@st.composite
def _identifiers(draw: st.DrawFn) -> str:
    chain = draw(st.lists(_segments(), min_size=1, max_size=4))
    tail = draw(st.sampled_from(["type", "instance", "anonymous"]))
    text = "gts." + "~".join(chain) + "~"
    if tail == "instance":
        return text + draw(_segments())
    if tail == "anonymous":
        return text + str(draw(st.uuids()))
    return text


@settings(max_examples=200, deadline=None)
@given(_identifiers())
def test_generated_identifiers_round_trip(text: str) -> None:
    parsed = GtsId.parse(text)
    assert str(parsed) == text
    rebuilt = "gts." + "~".join(segment.text for segment in parsed.segments)
    if parsed.uuid_tail is not None:
        rebuilt += "~" + parsed.uuid_tail
    elif parsed.is_type:
        rebuilt += "~"
    assert rebuilt == text
    assert GtsId.parse(rebuilt) == parsed
    # the identifier is covered by itself, by its type, and by "gts.*"
    assert match_pattern(text, text)
    assert parsed.type_id is not None and match_pattern(parsed.type_id, text)
    assert match_pattern("gts.*", text)
    # UUIDs are deterministic and distinct from another identifier's
    assert gts_uuid(text) == gts_uuid(text)


@settings(max_examples=100, deadline=None)
@given(_identifiers(), _identifiers())
def test_distinct_identifiers_have_distinct_uuids(first: str, second: str) -> None:
    # A combined anonymous instance's UUID is its own tail, so only named ids are compared.
    named = GtsId.parse(first).uuid_tail is None and GtsId.parse(second).uuid_tail is None
    if named and first != second:
        assert gts_uuid(first) != gts_uuid(second)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="gts.~*_-abcxyzv0123456789ABC@ ", max_size=40))
def test_arbitrary_text_never_crashes_the_parser(text: str) -> None:
    body = validate_id(text)
    assert body["valid"] in (True, False)
    if body["valid"] and not body["is_wildcard"]:
        assert is_valid_id(text)
    parse_id(text)


# --- §9.1 gts:// --------------------------------------------------------------------------------


def test_strip_gts_uri() -> None:
    assert strip_gts_uri("gts://gts.x.core.events.type.v1~") == "gts.x.core.events.type.v1~"
    assert strip_gts_uri("gts.x.core.events.type.v1~") == "gts.x.core.events.type.v1~"
    assert strip_gts_uri("gts://gts://gts.x.a.b.v1~") == "gts://gts.x.a.b.v1~"
    assert strip_gts_uri("#/definitions/Foo") == "#/definitions/Foo"


# --- OP#2 extraction (§9.1, §11.1) --------------------------------------------------------------

EXTRACTIONS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"id": "gts.x.test2.api.endpoint.v0.1", "schema": "gts.x.test2.api.endpoint.v0~"},
        {
            "id": "gts.x.test2.api.endpoint.v0.1",
            "type_id": "gts.x.test2.api.endpoint.v0~",
            "selected_entity_field": "id",
            "selected_type_id_field": "schema",
            "is_type": False,
        },
    ),
    (
        {"id": "gts.x.test2.events.type.v1~abc.app._.custom_event.v1.2"},
        {
            "id": "gts.x.test2.events.type.v1~abc.app._.custom_event.v1.2",
            "type_id": "gts.x.test2.events.type.v1~",
            "selected_entity_field": "id",
            "selected_type_id_field": "id",
            "is_type": False,
        },
    ),
    (
        {"id": ANON_UUID, "type": "gts.x.core.events.type.v1~x.commerce.orders.order_placed.v1.0~"},
        {
            "id": ANON_UUID,
            "type_id": "gts.x.core.events.type.v1~x.commerce.orders.order_placed.v1.0~",
            "selected_entity_field": "id",
            "selected_type_id_field": "type",
            "is_type": False,
        },
    ),
    (
        {"id": COMBINED, "occurredAt": "2025-09-20T18:35:00Z", "type": "gts.other.a.b.c.v1~"},
        {
            "id": COMBINED,
            "type_id": "gts.x.core.events.type.v1~x.commerce.orders.order_placed.v1.0~",
            "selected_entity_field": "id",
            "selected_type_id_field": "id",
            "is_type": False,
        },
    ),
    (
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "$id": "gts://gts.x.core.events.type.v1~",
        },
        {
            "id": "gts.x.core.events.type.v1~",
            "type_id": None,
            "selected_entity_field": "$id",
            "selected_type_id_field": None,
            "is_type": True,
        },
    ),
    (
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "$id": "gts://gts.x.core.events.type.v1~x.commerce.orders.order_placed.v1.0~",
            "type": "object",
        },
        {
            "id": "gts.x.core.events.type.v1~x.commerce.orders.order_placed.v1.0~",
            "type_id": "gts.x.core.events.type.v1~",
            "selected_entity_field": "$id",
            "selected_type_id_field": "$id",
            "is_type": True,
        },
    ),
    (
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
        {
            "id": None,
            "type_id": None,
            "selected_entity_field": None,
            "selected_type_id_field": None,
            "is_type": True,
        },
    ),
    (
        {"$schema": "http://json-schema.org/draft-07/schema#", "$id": "https://example.com/o.json"},
        {
            "id": "https://example.com/o.json",
            "type_id": None,
            "selected_entity_field": "$id",
            "selected_type_id_field": None,
            "is_type": True,
        },
    ),
    (
        {"id": ANON_UUID, "$id": "gts://gts.x.core.events.test_type.v10~"},
        {
            "id": "gts.x.core.events.test_type.v10~",
            "type_id": None,
            "selected_entity_field": "$id",
            "selected_type_id_field": None,
            "is_type": False,
        },
    ),
    (
        {"id": ANON_UUID},
        {
            "id": ANON_UUID,
            "type_id": None,
            "selected_entity_field": "id",
            "selected_type_id_field": None,
            "is_type": False,
        },
    ),
    (
        {"id": "not-a-gts-id", "type": "object"},
        {
            "id": "not-a-gts-id",
            "type_id": None,
            "selected_entity_field": "id",
            "selected_type_id_field": None,
            "is_type": False,
        },
    ),
    # the chain in the id wins over an explicit type field
    (
        {
            "id": "gts.acme.core.models.user.v1~acme.core.instances.user1.v1",
            "type": "gts.acme.core.models.product.v1~",
        },
        {
            "id": "gts.acme.core.models.user.v1~acme.core.instances.user1.v1",
            "type_id": "gts.acme.core.models.user.v1~",
            "selected_entity_field": "id",
            "selected_type_id_field": "id",
            "is_type": False,
        },
    ),
    (
        {
            "id": DEEP_CHAIN,
            "type": "gts.different.schema.type.v1~",
        },
        {
            "id": DEEP_CHAIN,
            "type_id": "gts.x.core.events.type.v1~x.core.audit.event.v1~",
            "selected_entity_field": "id",
            "selected_type_id_field": "id",
            "is_type": False,
        },
    ),
    (
        {"id": ANON_UUID, "gtsTid": "gts.acme.core.models.order.v1~"},
        {
            "id": ANON_UUID,
            "type_id": "gts.acme.core.models.order.v1~",
            "selected_entity_field": "id",
            "selected_type_id_field": "gtsTid",
            "is_type": False,
        },
    ),
    (
        {"id": "gts.acme.core.models.user.v1.0", "type": "gts.acme.core.models.base.v1~"},
        {
            "id": "gts.acme.core.models.user.v1.0",
            "type_id": "gts.acme.core.models.base.v1~",
            "selected_entity_field": "id",
            "selected_type_id_field": "type",
            "is_type": False,
        },
    ),
    # aliases from §9.1 / the events README
    (
        {"gtsId": "gts.x.core.events.topic.v1~x.commerce._.orders.v1.0", "name": "orders"},
        {
            "id": "gts.x.core.events.topic.v1~x.commerce._.orders.v1.0",
            "type_id": "gts.x.core.events.topic.v1~",
            "selected_entity_field": "gtsId",
            "selected_type_id_field": "gtsId",
            "is_type": False,
        },
    ),
    (
        {"gts_id": "e81307e5", "gts_type": "gts://gts.x.core.events.type.v1~abc.app.a.b.v1~"},
        {
            "id": "e81307e5",
            "type_id": "gts.x.core.events.type.v1~abc.app.a.b.v1~",
            "selected_entity_field": "gts_id",
            "selected_type_id_field": "gts_type",
            "is_type": False,
        },
    ),
    # a type field naming an instance is not a GTS Type reference
    (
        {"id": "123", "type": "gts.x.core.events.topic.v1~x.core._.default.v1"},
        {
            "id": "123",
            "type_id": None,
            "selected_entity_field": "id",
            "selected_type_id_field": None,
            "is_type": False,
        },
    ),
]


@pytest.mark.parametrize(("content", "expected"), EXTRACTIONS)
def test_op2_extract_id(content: dict[str, Any], expected: dict[str, Any]) -> None:
    assert extract_id(content) == expected


def test_op2_rejects_non_objects() -> None:
    with pytest.raises(GtsError, match="JSON object"):
        extract_id([1, 2])  # type: ignore[arg-type]


# --- entities and the store ---------------------------------------------------------------------


def _fixture_documents() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(FIXTURES.glob("events/*/*.json")):
        loaded = json.loads(path.read_text(encoding="utf-8"))
        documents.extend(loaded if isinstance(loaded, list) else [loaded])
    return documents


def test_spec_examples_become_entities() -> None:
    entities = {entity.id: entity for entity in map(GtsEntity.from_content, _fixture_documents())}
    assert len(entities) == 10
    base = entities["gts.x.core.events.type.v1~"]
    assert base.is_type and base.type_id is None
    audit = entities["gts.x.core.events.type.v1~x.core.audit.type.v1~"]
    assert audit.is_type and audit.type_id == "gts.x.core.events.type.v1~"
    topic = entities["gts.x.core.events.topic.v1~x.core.audit.events.v1"]
    assert not topic.is_type and topic.type_id == "gts.x.core.events.topic.v1~"
    event = entities["a1b2c3d4-e5f6-7890-abcd-ef1234567890"]
    assert not event.is_type
    assert event.type_id == (
        "gts.x.core.events.type.v1~x.core.audit.type.v1~x.core.iam.settings_changed.v1~"
    )
    assert event.gts_id is None and topic.gts_id == GtsId.parse(topic.id)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "no \\$id"),
        (
            {"$schema": "http://json-schema.org/draft-07/schema#", "$id": "gts.x.a.b.c.v1~"},
            "gts:// form",
        ),
        (
            {"$schema": "http://json-schema.org/draft-07/schema#", "$id": "gts://gts.x.a.b.c.v1"},
            "GTS Type Identifier",
        ),
        (
            {"$schema": "http://json-schema.org/draft-07/schema#", "$id": "gts://gts.x.a.*"},
            "GTS Type Identifier",
        ),
        ({"name": "no identifier"}, "no identifier"),
    ],
)
def test_from_content_refuses_documents_without_a_usable_id(
    content: dict[str, Any], message: str
) -> None:
    with pytest.raises(GtsError, match=message):
        GtsEntity.from_content(content)


def test_from_content_copies_the_document() -> None:
    content = {"id": "gts.x.a.b.c.v1~x.a.b.d.v1", "n": 1}
    entity = GtsEntity.from_content(content)
    content["n"] = 2
    assert entity.content["n"] == 1


def test_store_put_get_remove_order_and_snapshot() -> None:
    store = GtsStore()
    entities = [GtsEntity.from_content(document) for document in _fixture_documents()]
    for entity in entities:
        store.put(entity)
    assert len(store) == len(entities)
    assert [entity.id for entity in store.entities()] == [entity.id for entity in entities]
    assert store.ids() == [entity.id for entity in entities]
    first = entities[0]
    assert first.id in store and store.get(first.id) is first
    assert 42 not in store and store.get("gts.nope.a.b.c.v1~") is None

    replacement = GtsEntity(id=first.id, content={}, is_type=first.is_type, type_id=first.type_id)
    store.put(replacement)
    assert store.entities()[0] is replacement and len(store) == len(entities)

    copy = store.snapshot()
    assert copy.remove(first.id) and not copy.remove(first.id)
    assert first.id not in copy and first.id in store
    assert len(copy) == len(store) - 1
    assert repr(store) == f"GtsStore({len(store)} entities)"


def test_store_reads_while_one_writer_writes() -> None:
    store = GtsStore()
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                for entity in store.entities():
                    assert store.get(entity.id) in (entity, None)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    for number in range(3000):
        gts_id = f"gts.x.load.events.type.v1~x.load._.e{number}.v1"
        store.put(GtsEntity(id=gts_id, content={"id": gts_id}, is_type=False, type_id=None))
        if number % 3 == 0:
            store.remove(gts_id)
    stop.set()
    for reader in readers:
        reader.join()
    assert not errors
    assert len(store) == 2000


def test_parsing_and_lookup_are_fast_for_10000_entities() -> None:
    store = GtsStore()
    ids = [
        f"gts.x.perf.events.type.v1~x.perf._.item{number}.v1.{number}" for number in range(10000)
    ]
    for gts_id in ids:
        store.put(GtsEntity.from_content({"id": gts_id, "value": 1}))
    samples: list[float] = []
    for gts_id in ids[::10]:
        started = time.perf_counter()
        assert is_valid_id(gts_id)
        entity = store.get(gts_id)
        assert entity is not None and entity.type_id == "gts.x.perf.events.type.v1~"
        samples.append(time.perf_counter() - started)
    samples.sort()
    assert samples[int(len(samples) * 0.99)] < 0.010
