"""GTS identifiers: parsing, validation, wildcard matching and UUID mapping (spec §2, §8, §10).

A GTS identifier is ``gts.`` followed by ``~``-separated segments
``vendor.package.namespace.type.vMAJOR[.MINOR]``. Every segment but the last is a type (it is
followed by ``~``); the identifier names a type when it ends with ``~`` and an instance otherwise.
An instance is either a well-known one (its last segment is a named segment) or a combined
anonymous one (its tail after the last ``~`` is a lowercase UUID). A single-segment instance id is
prohibited (§3.7). Patterns (§10) may end with one ``*`` at a token boundary.

Parsing is memoised: registries look the same identifiers up again and again.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

GTS_PREFIX = "gts."
GTS_URI_PREFIX = "gts://"
MAX_ID_LENGTH = 1024
# §9.10 / reference implementations: UUIDv5 in a namespace derived from the URL namespace.
GTS_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "gts")

_NAME_RE = re.compile(r"[a-z_][a-z0-9_]*")
_MAJOR_RE = re.compile(r"v(0|[1-9][0-9]*)")
_NUM_RE = re.compile(r"0|[1-9][0-9]*")
_SEGMENT_RE = re.compile(
    r"([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)"
    r"\.v(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?"
)
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NAME_FIELDS = ("vendor", "package", "namespace", "type")


class GtsError(ValueError):
    """Base of every GTS library error; ``str()`` is a one-line message."""


class GtsIdError(GtsError):
    """An identifier or wildcard pattern is malformed."""


@dataclass(frozen=True, slots=True)
class GtsSegment:
    """One ``vendor.package.namespace.type.vMAJOR[.MINOR]`` segment of an identifier.

    ``text`` is the segment as written, without the ``gts.`` prefix and the ``~`` separator.
    In a wildcard segment (``is_wildcard``) the fields after the ``*`` are empty strings, and
    ``ver_major`` is 0 unless the pattern fixed it (``wildcard_tokens`` says how many tokens did).
    """

    vendor: str
    package: str
    namespace: str
    type: str
    ver_major: int
    ver_minor: int | None
    is_type: bool
    is_wildcard: bool
    text: str
    wildcard_tokens: int = 6

    def to_dict(self) -> dict[str, Any]:
        """The OP#3 JSON form of the segment."""
        return {
            "vendor": self.vendor,
            "package": self.package,
            "namespace": self.namespace,
            "type": self.type,
            "ver_major": self.ver_major,
            "ver_minor": self.ver_minor,
            "is_type": self.is_type,
            "is_wildcard": self.is_wildcard,
        }


@dataclass(frozen=True, slots=True)
class GtsId:
    """A parsed GTS identifier (or, with ``is_wildcard``, a wildcard pattern).

    ``segments`` holds the named segments; a combined anonymous instance keeps its UUID tail in
    ``uuid_tail`` instead.
    """

    id: str
    segments: tuple[GtsSegment, ...]
    uuid_tail: str | None = None

    @classmethod
    def parse(cls, text: str, *, allow_wildcard: bool = False) -> GtsId:
        """Parse a canonical identifier; raise :class:`GtsIdError` when it is malformed.

        The ``gts://`` URI form is refused: callers holding a ``$id``/``$ref`` value strip it
        with :func:`strip_gts_uri` first. Wildcards are accepted only with ``allow_wildcard``.
        """
        if not isinstance(text, str):
            raise GtsIdError(f"GTS identifier must be a string, not {type(text).__name__}")
        if allow_wildcard:
            return _parse_pattern(text)
        return _parse_id(text)

    @property
    def is_type(self) -> bool:
        """True for a GTS Type Identifier (the identifier ends with ``~``)."""
        return self.id.endswith("~")

    @property
    def is_wildcard(self) -> bool:
        return "*" in self.id

    @property
    def parent_type_id(self) -> str | None:
        """The chain without its last element (``a~b~``/``a~b`` -> ``a~``); None for ``a~``."""
        body = self.id[:-1] if self.is_type else self.id
        cut = body.rfind("~")
        return body[: cut + 1] if cut >= 0 else None

    @property
    def type_id(self) -> str | None:
        """The GTS Type the identifier names or belongs to: itself for a type, else its chain."""
        if self.is_type:
            return self.id
        cut = self.id.rfind("~")
        return self.id[: cut + 1] if cut >= 0 else None

    def to_uuid(self) -> uuid.UUID:
        """OP#5: the anonymous instance's own UUID, otherwise UUIDv5 of the identifier."""
        if self.uuid_tail is not None:
            return uuid.UUID(self.uuid_tail)
        return uuid.uuid5(GTS_NAMESPACE, self.id)

    def __str__(self) -> str:
        return self.id


def _segment(text: str, *, is_type: bool, number: int) -> GtsSegment:
    match = _SEGMENT_RE.fullmatch(text)
    if match is None:
        raise GtsIdError(
            f"segment #{number} {text!r} is not 'vendor.package.namespace.type.vMAJOR[.MINOR]'"
            + _segment_hint(text)
        )
    vendor, package, namespace, type_, major, minor = match.groups()
    return GtsSegment(
        vendor=vendor,
        package=package,
        namespace=namespace,
        type=type_,
        ver_major=int(major),
        ver_minor=None if minor is None else int(minor),
        is_type=is_type,
        is_wildcard=False,
        text=text,
    )


def _segment_hint(text: str) -> str:
    """A short reason why ``text`` is not a segment, for the one-line error message."""
    tokens = text.split(".")
    if len(tokens) < 5:
        return f": {len(tokens)} tokens, expected 5 or 6"
    if len(tokens) > 6:
        return f": {len(tokens)} tokens, expected 5 or 6"
    for name, token in zip(_NAME_FIELDS, tokens[:4], strict=False):
        if not _NAME_RE.fullmatch(token):
            return f": bad {name} token {token!r} (expected [a-z_][a-z0-9_]*)"
    if not _MAJOR_RE.fullmatch(tokens[4]):
        return f": bad version {tokens[4]!r} (expected v<MAJOR> without leading zeros)"
    if len(tokens) == 6 and not _NUM_RE.fullmatch(tokens[5]):
        return f": bad minor version {tokens[5]!r}"
    return ""


def _wildcard_segment(text: str, *, number: int) -> GtsSegment:
    """Parse a segment ending with ``*`` (already known to be the last one)."""
    body = text[:-1]
    if "*" in body:
        raise GtsIdError("a wildcard pattern may contain '*' only once")
    if body == "":
        tokens: list[str] = []
    elif body.endswith("."):
        tokens = body[:-1].split(".")
    elif body.endswith("v") and body.count(".") == 4 and (body == "v" or body.endswith(".v")):
        # §10 rule 4: "type.v*" is allowed, 'v' starts the version token.
        tokens = body[:-2].split(".")
        if len(tokens) != 4:
            raise GtsIdError(f"wildcard in segment #{number} {text!r} is not at a token boundary")
    else:
        raise GtsIdError(f"wildcard in segment #{number} {text!r} is not at a token boundary")
    if len(tokens) > 5:
        raise GtsIdError(f"segment #{number} {text!r} has too many tokens before the wildcard")
    names = tokens[:4]
    for name, token in zip(_NAME_FIELDS, names, strict=False):
        if not _NAME_RE.fullmatch(token):
            raise GtsIdError(f"segment #{number} {text!r}: bad {name} token {token!r}")
    major = 0
    if len(tokens) == 5:
        version = _MAJOR_RE.fullmatch(tokens[4])
        if version is None:
            raise GtsIdError(f"segment #{number} {text!r}: bad version {tokens[4]!r}")
        major = int(version.group(1))
    padded = names + [""] * (4 - len(names))
    return GtsSegment(
        vendor=padded[0],
        package=padded[1],
        namespace=padded[2],
        type=padded[3],
        ver_major=major,
        ver_minor=None,
        is_type=False,
        is_wildcard=True,
        text=text,
        wildcard_tokens=len(tokens),
    )


def _split(text: str) -> list[str]:
    if len(text) > MAX_ID_LENGTH:
        raise GtsIdError(f"GTS identifier is longer than {MAX_ID_LENGTH} characters")
    if text.startswith(GTS_URI_PREFIX):
        raise GtsIdError("the gts:// URI form is not a canonical GTS identifier")
    if not text.startswith(GTS_PREFIX):
        raise GtsIdError(f"GTS identifier must start with {GTS_PREFIX!r}: {text[:80]!r}")
    return text[len(GTS_PREFIX) :].split("~")


def _build(text: str, parts: list[str], *, allow_wildcard: bool) -> GtsId:
    segments: list[GtsSegment] = []
    last = len(parts) - 1
    for number, part in enumerate(parts[:-1], start=1):
        if part == "":
            raise GtsIdError(f"segment #{number} of the GTS identifier is empty")
        if "*" in part:
            raise GtsIdError("a wildcard '*' may appear only at the end of a pattern")
        segments.append(_segment(part, is_type=True, number=number))
    tail = parts[last]
    uuid_tail: str | None = None
    if tail == "":
        if last == 0:
            raise GtsIdError("GTS identifier has no segment")
    elif tail.endswith("*") and allow_wildcard:
        segments.append(_wildcard_segment(tail, number=last + 1))
    elif "*" in tail:
        if allow_wildcard:
            raise GtsIdError("a wildcard '*' may appear only at the end of a pattern")
        raise GtsIdError("wildcards are not allowed in a GTS identifier")
    elif last >= 1 and _UUID_RE.fullmatch(tail):
        uuid_tail = tail
    else:
        if last == 0:
            if _SEGMENT_RE.fullmatch(tail):
                raise GtsIdError(
                    "single-segment instance identifiers are prohibited: "
                    "a type segment must precede the instance (type~instance)"
                )
            raise GtsIdError(
                "GTS identifier must end with '~' (type) or have an instance segment after '~'"
                + _segment_hint(tail)
            )
        segments.append(_segment(tail, is_type=False, number=last + 1))
    return GtsId(id=text, segments=tuple(segments), uuid_tail=uuid_tail)


@lru_cache(maxsize=65536)
def _parse_id(text: str) -> GtsId:
    parts = _split(text)
    if "*" in text:
        raise GtsIdError("wildcards are not allowed in a GTS identifier")
    return _build(text, parts, allow_wildcard=False)


@lru_cache(maxsize=4096)
def _parse_pattern(text: str) -> GtsId:
    parts = _split(text)
    if text.count("*") > 1:
        raise GtsIdError("a wildcard pattern may contain '*' only once")
    if "*" in text and not text.endswith("*"):
        raise GtsIdError("a wildcard '*' may appear only at the end of a pattern")
    return _build(text, parts, allow_wildcard=True)


def is_valid_id(text: str) -> bool:
    """True when ``text`` is a canonical, wildcard-free GTS identifier (no ``gts://``)."""
    if not isinstance(text, str):
        return False
    try:
        _parse_id(text)
    except GtsIdError:
        return False
    return True


def is_valid_pattern(text: str) -> bool:
    """True when ``text`` is a GTS identifier or a well-formed wildcard pattern (§10)."""
    if not isinstance(text, str):
        return False
    try:
        _parse_pattern(text)
    except GtsIdError:
        return False
    return True


def strip_gts_uri(text: str) -> str:
    """``gts://gts.x...`` -> ``gts.x...``; anything else is returned unchanged."""
    if text.startswith(GTS_URI_PREFIX):
        return text[len(GTS_URI_PREFIX) :]
    return text


def gts_uuid(text: str) -> uuid.UUID:
    """OP#5: the deterministic UUID of a GTS identifier; raises :class:`GtsIdError`."""
    return _parse_id(text).to_uuid()


# --- wildcard matching (OP#4, §3.5, §10) -------------------------------------------------------


def _segment_covers(pattern: GtsSegment, candidate: GtsSegment) -> bool:
    """Every identifier the candidate segment denotes is denoted by the pattern segment.

    Both are concrete (non-wildcard) segments here. A pattern without a minor version means any
    minor version of its major (§10 rule 5).
    """
    if (
        pattern.vendor != candidate.vendor
        or pattern.package != candidate.package
        or pattern.namespace != candidate.namespace
        or pattern.type != candidate.type
        or pattern.ver_major != candidate.ver_major
    ):
        return False
    return pattern.ver_minor is None or pattern.ver_minor == candidate.ver_minor


def _wildcard_covers(pattern: GtsSegment, candidate: GtsSegment) -> bool:
    """The wildcard pattern segment's fixed tokens accept the candidate segment.

    When the candidate is itself a wildcard it must fix at least the tokens the pattern fixes,
    otherwise it denotes identifiers the pattern does not cover.
    """
    fixed = pattern.wildcard_tokens
    if candidate.is_wildcard and candidate.wildcard_tokens < fixed:
        return False
    for name in _NAME_FIELDS[: min(fixed, 4)]:
        if getattr(pattern, name) != getattr(candidate, name):
            return False
    return fixed < 5 or pattern.ver_major == candidate.ver_major


def covers(pattern: GtsId, candidate: GtsId) -> bool:
    """The set of identifiers ``candidate`` denotes lies within the set ``pattern`` denotes."""
    p_segs, c_segs = pattern.segments, candidate.segments
    for index, p_seg in enumerate(p_segs):
        if p_seg.is_wildcard:
            if p_seg.wildcard_tokens == 0:
                # A bare "~*" (or "gts.*") covers the rest of the chain, including nothing.
                return True
            if index >= len(c_segs):
                return False
            return _wildcard_covers(p_seg, c_segs[index])
        if index >= len(c_segs):
            return False
        c_seg = c_segs[index]
        if c_seg.is_wildcard or not _segment_covers(p_seg, c_seg):
            return False
        if (
            p_seg.is_type != c_seg.is_type
            and index == len(c_segs) - 1
            and candidate.uuid_tail is None
        ):
            # The candidate ends at this segment as an instance while the pattern needs a type.
            return False
    if pattern.uuid_tail is not None:
        return candidate.uuid_tail == pattern.uuid_tail and len(c_segs) == len(p_segs)
    if pattern.is_type:
        # §3.6: a type grants all its derived types and instances.
        return True
    return len(c_segs) == len(p_segs) and candidate.uuid_tail is None and not candidate.is_type


def match_pattern(pattern: str, candidate: str) -> bool:
    """OP#4: does ``candidate`` (an identifier, or a narrower pattern) fall under ``pattern``?

    Raises :class:`GtsIdError` when either string is malformed. A concrete type identifier as
    pattern also covers everything derived from it (§3.6 implicit derived-type coverage).
    """
    return covers(_parse_pattern(pattern), _parse_pattern(candidate))


def permits(granted_patterns: Iterable[str], gts_id: str) -> bool:
    """RBAC helper (§3.5): True when any granted pattern covers ``gts_id``.

    Malformed grants are ignored (they grant nothing); a malformed ``gts_id`` is never permitted.
    """
    try:
        candidate = _parse_pattern(gts_id)
    except GtsIdError:
        return False
    for granted in granted_patterns:
        try:
            if covers(_parse_pattern(granted), candidate):
                return True
        except GtsIdError:
            continue
    return False


# --- OP#1, OP#3, OP#4, OP#5 response bodies ------------------------------------------------------


def validate_id(gts_id: str) -> dict[str, Any]:
    """OP#1 body: ``{"id", "valid", "is_wildcard", "is_type"?, "error"?}``.

    A well-formed wildcard pattern is reported valid with ``is_wildcard`` true.
    """
    is_wildcard = "*" in gts_id
    try:
        parsed = _parse_pattern(gts_id) if is_wildcard else _parse_id(gts_id)
    except GtsIdError as exc:
        return {"id": gts_id, "valid": False, "is_wildcard": is_wildcard, "error": str(exc)}
    return {"id": gts_id, "valid": True, "is_wildcard": is_wildcard, "is_type": parsed.is_type}


def parse_id(gts_id: str) -> dict[str, Any]:
    """OP#3 body: ``{"id", "ok", "segments", "is_wildcard", "is_type"?, "uuid"?, "error"?}``."""
    is_wildcard = "*" in gts_id
    try:
        parsed = _parse_pattern(gts_id) if is_wildcard else _parse_id(gts_id)
    except GtsIdError as exc:
        return {
            "id": gts_id,
            "ok": False,
            "segments": [],
            "is_wildcard": is_wildcard,
            "error": str(exc),
        }
    body: dict[str, Any] = {
        "id": gts_id,
        "ok": True,
        "segments": [segment.to_dict() for segment in parsed.segments],
        "is_wildcard": is_wildcard,
        "is_type": parsed.is_type,
        "type_id": parsed.type_id,
    }
    if parsed.uuid_tail is not None:
        body["uuid"] = parsed.uuid_tail
    return body


def match_id_pattern(candidate: str, pattern: str) -> dict[str, Any]:
    """OP#4 body: ``{"candidate", "pattern", "match", "error"?}``."""
    try:
        parsed_pattern = _parse_pattern(pattern)
    except GtsIdError as exc:
        return _match_error(candidate, pattern, f"Invalid pattern: {exc}")
    try:
        parsed_candidate = _parse_pattern(candidate)
    except GtsIdError as exc:
        return _match_error(candidate, pattern, f"Invalid candidate: {exc}")
    return {
        "candidate": candidate,
        "pattern": pattern,
        "match": covers(parsed_pattern, parsed_candidate),
    }


def _match_error(candidate: str, pattern: str, error: str) -> dict[str, Any]:
    return {"candidate": candidate, "pattern": pattern, "match": False, "error": error}


def id_to_uuid(gts_id: str) -> dict[str, Any]:
    """OP#5 body: ``{"id", "uuid"}``, or ``{"id", "uuid": None, "error"}`` for a bad id."""
    try:
        value = gts_uuid(gts_id)
    except GtsIdError as exc:
        return {"id": gts_id, "uuid": None, "error": str(exc)}
    return {"id": gts_id, "uuid": str(value)}
