"""Safe regular expressions for GTS schemas (ADR-0006: common syntax profile, RE2 matching).

Every regex a GTS schema holds (``pattern``, ``patternProperties`` keys, ``format: regex``
values) must belong to a closed profile: the constructs accepted alike by ECMA-262 ``u`` mode and
RE2, spelled so that every engine reads them the same way, within fixed support bounds (expanded
length, group nesting, repetition counts). :func:`check_profile` is that membership check.
Matching then runs on RE2 (``google-re2``), whose search is linear in the input for a fixed
expression, so hostile inputs such as ``(a+)+$`` against ``"a" * 50_000 + "!"`` stay cheap.

Matching follows the RE2 reference semantics of the ADR without declared deviations: ``.`` is
any code point but LF, ``\\d``/``\\w``/``\\s`` are ASCII (``\\s`` = TAB, LF, FF, CR, SPACE),
``^``/``$`` anchor only at the ends of the input, search is unanchored and case-sensitive.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import re2

from hyperspot.platform.gts.ids import GtsError

MAX_EXPANDED_LENGTH = 4096
MAX_GROUP_NESTING = 32
MAX_REPEAT_COUNT = 1000
MAX_REPEAT_PRODUCT = 1000

# Outside a class these must be escaped to be literal (ADR-0006 "Literals and concatenation").
_SYNTAX_CHARS = frozenset("^$\\.*+?()[]{}|")
_CHAR_ESCAPES = frozenset("nrtfv")
_SHORTHANDS = frozenset("dDwWsS")
_HEX = frozenset("0123456789abcdefABCDEF")
_QUANTIFIER_START = frozenset("*+?{")
# RE2 needs room for Unicode complements repeated up to the bounds (e.g. \S{1000}\W{1000}).
_RE2_MAX_MEM = 256 << 20


class RegexError(GtsError):
    """An expression is outside the GTS regex profile, or the engine could not compile it."""


@dataclass(slots=True)
class _Node:
    """Bounds of a parsed fragment: expanded length and the largest repetition product in it."""

    length: int
    product: int


class _ProfileParser:
    """Recursive-descent check of one expression against the profile grammar and its bounds."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def fail(self, reason: str) -> RegexError:
        return RegexError(f"{reason} at offset {self.pos}")

    def peek(self, offset: int = 0) -> str | None:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else None

    def parse(self) -> _Node:
        node = self.alternation()
        if self.pos < len(self.text):
            # Only an unmatched ')' stops a top-level alternation early.
            raise self.fail("unmatched ')'")
        return node

    def alternation(self) -> _Node:
        node = self.sequence()
        while self.peek() == "|":
            self.pos += 1
            branch = self.sequence()
            node = _Node(node.length + 1 + branch.length, max(node.product, branch.product))
        return node

    def sequence(self) -> _Node:
        length, product = 0, 1
        while (char := self.peek()) is not None and char not in "|)":
            item = self.quantified()
            length += item.length
            product = max(product, item.product)
        return _Node(length, product)

    def quantified(self) -> _Node:
        char = self.peek()
        if char is not None and char in _QUANTIFIER_START:
            raise self.fail(f"quantifier {char!r} has nothing to repeat")
        anchor = char in ("^", "$")
        atom = self.atom()
        char = self.peek()
        if char is None or char not in _QUANTIFIER_START:
            return atom
        if anchor:
            raise self.fail("an anchor cannot be repeated")
        start = self.pos
        copies, factor = self.quantifier()
        if self.peek() == "?":
            self.pos += 1  # lazy form
        spelling = self.pos - start
        if (nxt := self.peek()) is not None and nxt in _QUANTIFIER_START:
            raise self.fail("stacked quantifiers are not supported")
        if copies is None:
            return _Node(atom.length + spelling, atom.product)
        product = atom.product * factor
        if product > MAX_REPEAT_PRODUCT:
            raise self.fail(f"nested repetition product {product} exceeds {MAX_REPEAT_PRODUCT}")
        return _Node(spelling + copies * atom.length, product)

    def quantifier(self) -> tuple[int | None, int]:
        """Consume one quantifier: (copies for the expanded length or None, product factor)."""
        char = self.peek()
        if char != "{":
            self.pos += 1
            return None, 1
        self.pos += 1
        low = self.count()
        high: int | None = low
        if self.peek() == ",":
            self.pos += 1
            high = self.count() if self.peek() != "}" else None
        if self.peek() != "}":
            raise self.fail("malformed counted repetition")
        self.pos += 1
        if high is not None and high < low:
            raise self.fail("counted repetition {n,m} needs n <= m")
        if high is None:  # {n,}: n + 1 copies, factor n
            return low + 1, max(low, 1)
        return max(high, 1), max(high, 1)

    def count(self) -> int:
        start = self.pos
        while (char := self.peek()) is not None and char.isascii() and char.isdigit():
            self.pos += 1
        digits = self.text[start : self.pos]
        if not digits:
            raise self.fail("counted repetition needs a decimal count")
        if len(digits) > 1 and digits[0] == "0":
            raise self.fail("a repetition count may not have a leading zero")
        value = int(digits)
        if value > MAX_REPEAT_COUNT:
            raise self.fail(f"repetition count {value} exceeds {MAX_REPEAT_COUNT}")
        return value

    def atom(self) -> _Node:
        char = self.peek()
        assert char is not None  # sequence() stops at the end of the text
        if char == "(":
            return self.group()
        if char == "[":
            return self.char_class()
        if char == "\\":
            self.escape(in_class=False)
            return _Node(self.last_escape_length, 1)
        if char in ("^", "$", "."):
            self.pos += 1
            return _Node(1, 1)
        if char in _SYNTAX_CHARS:
            raise self.fail(f"{char!r} must be escaped")
        self.literal(char)
        return _Node(1, 1)

    def literal(self, char: str) -> None:
        if 0xD800 <= ord(char) <= 0xDFFF:
            raise self.fail("unpaired surrogate")
        self.pos += 1

    def group(self) -> _Node:
        self.pos += 1
        opening = 1
        if self.peek() == "?":
            if self.peek(1) != ":":
                raise self.fail("only '(...)' and '(?:...)' groups are supported")
            self.pos += 2
            opening = 3
        self.depth += 1
        if self.depth > MAX_GROUP_NESTING:
            raise self.fail(f"group nesting exceeds {MAX_GROUP_NESTING}")
        inner = self.alternation()
        if self.peek() != ")":
            raise self.fail("unterminated group")
        self.pos += 1
        self.depth -= 1
        return _Node(opening + inner.length + 1, inner.product)

    # The last escape's spelling length (2, or 4 for \xHH); set by escape().
    last_escape_length = 2

    def escape(self, *, in_class: bool) -> str | None:
        """Consume an escape; return its code point, or None for a shorthand class."""
        self.pos += 1
        char = self.peek()
        if char is None:
            raise self.fail("trailing backslash")
        self.pos += 1
        self.last_escape_length = 2
        if char in _CHAR_ESCAPES:
            return {"n": "\n", "r": "\r", "t": "\t", "f": "\f", "v": "\v"}[char]
        if char == "x":
            digits = self.text[self.pos : self.pos + 2]
            if len(digits) != 2 or not set(digits) <= _HEX:
                raise self.fail("\\x needs exactly two hex digits")
            self.pos += 2
            self.last_escape_length = 4
            return chr(int(digits, 16))
        if char in _SHORTHANDS:
            return None
        if char in _SYNTAX_CHARS or char == "/" or (in_class and char == "-"):
            return char
        raise self.fail(f"unsupported escape \\{char}")

    def char_class(self) -> _Node:
        start = self.pos
        self.pos += 1
        if self.peek() == "^":
            self.pos += 1
        if self.peek() == "]":
            raise self.fail("empty character class")
        first = True
        while True:
            char = self.peek()
            if char is None:
                raise self.fail("unterminated character class")
            if char == "]":
                self.pos += 1
                break
            if char == "-":
                # A literal '-' only first or last; anything else reads differently across engines.
                if not first and self.peek(1) != "]":
                    raise self.fail("'-' in a class must be first, last, or part of a range")
                self.pos += 1
                first = False
                continue
            low = self.class_item()
            first = False
            if self.peek() == "-" and self.peek(1) not in ("]", None):
                self.pos += 1
                if low is None:
                    raise self.fail("a shorthand class cannot start a range")
                if self.peek() == "-":
                    raise self.fail("'--' in a class is a set operation in some engines")
                high = self.class_item()
                if high is None:
                    raise self.fail("a shorthand class cannot end a range")
                if ord(high) < ord(low):
                    raise self.fail("character class range out of order")
        return _Node(self.pos - start, 1)

    def class_item(self) -> str | None:
        """One class member: its code point, or None for a shorthand class."""
        char = self.peek()
        assert char is not None
        if char == "\\":
            return self.escape(in_class=True)
        if char == "[":
            raise self.fail("'[' in a class must be escaped")
        if char in "&~" and self.peek(1) == char:
            raise self.fail(f"{char * 2!r} in a class is a set operation in some engines")
        self.literal(char)
        return char


@lru_cache(maxsize=4096)
def check_profile(expression: str) -> str | None:
    """None when ``expression`` is in the GTS profile and bounds, else the one-line reason."""
    parser = _ProfileParser(expression)
    try:
        node = parser.parse()
    except RegexError as error:
        return str(error)
    if node.length > MAX_EXPANDED_LENGTH:
        return f"expanded length {node.length} exceeds {MAX_EXPANDED_LENGTH}"
    return None


def is_supported(expression: str) -> bool:
    """True when ``expression`` is in the profile (the ``format: regex`` assertion)."""
    return check_profile(expression) is None


_compile_lock = threading.Lock()
_compiled: dict[str, re2._Regexp[str]] = {}


def compile_pattern(expression: str) -> re2._Regexp[str]:
    """The RE2 program for a profile expression; raises :class:`RegexError`."""
    program = _compiled.get(expression)
    if program is not None:
        return program
    reason = check_profile(expression)
    if reason is not None:
        raise RegexError(f"Unsupported pattern {expression[:80]!r}: {reason}")
    options = re2.Options()
    options.max_mem = _RE2_MAX_MEM
    options.log_errors = False
    try:
        program = re2.compile(expression, options)
    except re2.error as error:  # an operational limit, not a profile verdict (ADR-0006)
        raise RegexError(f"regex engine could not compile {expression[:80]!r}: {error}") from None
    with _compile_lock:
        if len(_compiled) > 4096:
            _compiled.clear()
        _compiled[expression] = program
    return program


def search(expression: str, text: str) -> bool:
    """Unanchored RE2 search of a profile expression; raises :class:`RegexError`."""
    return compile_pattern(expression).search(text) is not None
