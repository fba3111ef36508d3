"""Per-line suppressions: ``# hyperspot: ignore[HS006] reason why``.

The comment ends the line the finding names, or stands alone on the line above it.

The reason is required: a suppression is a decision someone must be able to review. One that is
malformed, gives no reason or names an unknown code has no effect and is itself a finding (HS000),
and so is one that suppresses nothing (the code it excused was fixed or moved).
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hyperspot.lint_rules.catalogue import RULES, Finding

_MARKER = re.compile(r"#\s*hyperspot\s*:\s*ignore\b(?P<rest>.*)$", re.IGNORECASE)
_CODES = re.compile(r"^\[(?P<codes>[^\]]*)\](?P<reason>.*)$")
_SYNTAX = "`# hyperspot: ignore[HS004] why this line is an exception`"


@dataclass
class Suppression:
    line: int  # where the comment is
    col: int
    target: int  # the line it speaks for
    codes: frozenset[str]
    problem: str | None  # why it is invalid; None when it is valid
    used: bool = False


def parse(source: bytes) -> list[Suppression]:
    found: list[Suppression] = []
    try:
        tokens = list(tokenize.tokenize(io.BytesIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return found  # the file does not parse; that is reported on its own
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        marker = _MARKER.search(token.string)
        if marker is None:
            continue
        line, col = token.start[0], token.start[1] + marker.start() + 1
        # A comment on a line of its own speaks for the line below (long lines stay short).
        target = line + 1 if token.line.lstrip().startswith("#") else line
        found.append(_suppression(line, col, target, marker.group("rest").strip()))
    return found


def _suppression(line: int, col: int, target: int, rest: str) -> Suppression:
    parsed = _CODES.match(rest)
    if parsed is None:
        return Suppression(
            line, col, target, frozenset(), f"a suppression must look like {_SYNTAX}"
        )
    codes = frozenset(c.strip().upper() for c in parsed.group("codes").split(",") if c.strip())
    unknown = sorted(c for c in codes if c not in RULES or c == "HS000")
    if not codes:
        return Suppression(
            line, col, target, codes, f"a suppression must name its codes: {_SYNTAX}"
        )
    if unknown:
        return Suppression(
            line,
            col,
            target,
            codes,
            f"the suppression names {', '.join(unknown)}, not a rule it can skip",
        )
    if not any(ch.isalnum() for ch in parsed.group("reason")):
        return Suppression(
            line,
            col,
            target,
            codes,
            f"the suppression of {', '.join(sorted(codes))} gives no reason",
        )
    return Suppression(line, col, target, codes, None)


def apply(
    path: Path, findings: Iterable[Finding], suppressions: list[Suppression]
) -> list[Finding]:
    """The findings left after the file's valid suppressions, plus HS000 for the others."""
    by_line = {s.target: s for s in suppressions}
    kept: list[Finding] = []
    for finding in findings:
        suppression = by_line.get(finding.line)
        if suppression and suppression.problem is None and finding.code in suppression.codes:
            suppression.used = True
        else:
            kept.append(finding)
    for s in suppressions:
        if s.problem is not None:
            kept.append(
                Finding(
                    path,
                    s.line,
                    s.col,
                    "HS000",
                    f"{s.problem}, so it has no effect",
                    "every exception to an architecture rule must say why, so that a reviewer "
                    "(or the next reader) can judge whether it still holds",
                    f"write it as {_SYNTAX} with known codes and a reason after the bracket, "
                    "or fix the line and remove the comment",
                )
            )
        elif not s.used:
            codes = ", ".join(sorted(s.codes))
            kept.append(
                Finding(
                    path,
                    s.line,
                    s.col,
                    "HS000",
                    f"the suppression of {codes} suppresses nothing on the line it speaks for",
                    "a stale suppression would silently excuse a future problem on this line",
                    "remove the comment, or put it at the end of the line the finding names (or "
                    "alone on the line above it)",
                )
            )
    return kept
