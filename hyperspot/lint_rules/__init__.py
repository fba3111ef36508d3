"""Architecture rules for HyperSpot code, run by ``hyperspot lint``.

The rules (codes HS000-HS009, see ``RULES``) check what the platform's design depends on but
Python cannot enforce: layering inside a module, modules talking only through contracts, a kernel
that knows no module, tenant-scoped queries, bound SQL parameters, a non-blocking event loop,
explicit access on every operation, visible errors, and logs instead of prints. Import rules use
grimp's import graph; the others read each file's syntax tree. Nothing linted is imported or run.

The kernel (``hyperspot.platform``) does not import this package: it is a development tool.
"""

from __future__ import annotations

import ast
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hyperspot.lint_rules import project
from hyperspot.lint_rules.catalogue import RULES, Finding, Rule
from hyperspot.lint_rules.checks import check_tree
from hyperspot.lint_rules.imports import LineCache, import_findings
from hyperspot.lint_rules.project import Layout, LintUsageError, SourceFile, collect, script_place
from hyperspot.lint_rules.suppressions import apply, parse

__all__ = ["RULES", "Finding", "LintReport", "LintUsageError", "Rule", "lint"]


@dataclass(frozen=True)
class LintReport:
    findings: list[Finding]
    files_checked: int

    @property
    def ok(self) -> bool:
        return not self.findings


def lint(paths: Sequence[Path]) -> LintReport:
    """Check every Python file under ``paths``; raises LintUsageError if that cannot be done."""
    # The layout caches are per run: files may have changed since the last one.
    for cached in (
        project.is_package_dir,
        project.is_module_package_dir,
        project.is_platform_shaped,
    ):
        cached.cache_clear()
    files = collect(paths)
    lines = LineCache()
    found: dict[Path, list[Finding]] = defaultdict(list)
    for finding in import_findings(files, lines):
        found[finding.path].append(finding)
    findings: list[Finding] = []
    for file in files:
        source = file.path.read_bytes()
        findings.extend(
            apply(file.path, [*found[file.path], *_check_file(file, source)], parse(source))
        )
    return LintReport(sorted(findings), len(files))


def _check_file(file: SourceFile, source: bytes) -> list[Finding]:
    try:
        with warnings.catch_warnings():
            # Invalid escapes and the like are the compiler's business, not an architecture rule.
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(source, filename=str(file.path))
    except (SyntaxError, ValueError) as error:
        line = getattr(error, "lineno", None) or 1
        col = getattr(error, "offset", None) or 1
        return [
            Finding(
                file.path,
                line,
                col,
                "HS000",
                f"the file cannot be parsed ({getattr(error, 'msg', error)}): no rule was checked",
                "unparsable code hides every other finding in it",
                "fix the syntax error (python -m py_compile FILE shows it)",
            )
        ]
    if file.name is None or file.root is None:
        place = script_place(file.path)
    else:
        top = file.name.split(".")[0]
        place = Layout({top: file.root / top}).place(file.name)
    return check_tree(file.path, place, tree)
