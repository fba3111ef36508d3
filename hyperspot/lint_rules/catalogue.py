"""The rules (stable codes) and the finding every check reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    summary: str


RULES: dict[str, Rule] = {
    rule.code: rule
    for rule in (
        Rule(
            "HS000", "lint-hygiene", "suppressions are well-formed, reasoned and used; files parse"
        ),
        Rule("HS001", "domain-layering", "a module's domain/ imports neither its api/ nor infra/"),
        Rule("HS002", "module-contract", "modules reach other modules only through their contract"),
        Rule("HS003", "kernel-independence", "the kernel (platform/) imports no module"),
        Rule("HS004", "scoped-queries", "module code queries entities only via ScopedSession"),
        Rule("HS005", "sql-from-strings", "no SQL text built from strings; bind parameters"),
        Rule("HS006", "blocking-in-async", "no blocking calls inside async def"),
        Rule("HS007", "operation-auth", "every REST operation declares its access"),
        Rule("HS008", "swallowed-exceptions", "no bare except, no swallowed exceptions"),
        Rule("HS009", "print-in-library", "no print() in library code"),
    )
}


@dataclass(frozen=True, order=True)
class Finding:
    """One problem at one place; ``problem``, ``why`` and ``fix`` make up the printed message."""

    path: Path
    line: int
    col: int  # 1-based, like editors and compilers print it
    code: str
    problem: str = field(compare=False)
    why: str = field(compare=False)
    fix: str = field(compare=False)

    @property
    def message(self) -> str:
        return f"{self.problem}. Why: {self.why}. Fix: {self.fix}."

    @property
    def rule(self) -> Rule:
        return RULES[self.code]
