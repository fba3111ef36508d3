"""The two output formats of ``hyperspot lint``: one line per finding, or JSON."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from hyperspot.lint_rules import LintReport
from hyperspot.lint_rules.catalogue import Finding


def display_path(path: Path, cwd: Path) -> str:
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def as_text(report: LintReport, cwd: Path) -> str:
    lines = [
        f"{display_path(f.path, cwd)}:{f.line}:{f.col}: {f.code} {f.message}"
        for f in report.findings
    ]
    lines.append(summary(report))
    return "\n".join(lines) + "\n"


def summary(report: LintReport) -> str:
    checked = f"{report.files_checked} file{'s' if report.files_checked != 1 else ''} checked"
    if report.ok:
        return f"No findings ({checked})."
    count = len(report.findings)
    files = len({f.path for f in report.findings})
    by_code = ", ".join(f"{code} x{n}" for code, n in sorted(_by_code(report.findings).items()))
    return (
        f"{count} finding{'s' if count != 1 else ''} in {files} file{'s' if files != 1 else ''} "
        f"({checked}): {by_code}."
    )


def as_json(report: LintReport, cwd: Path) -> str:
    document: dict[str, Any] = {
        "findings": [
            {
                "path": display_path(f.path, cwd),
                "line": f.line,
                "col": f.col,
                "code": f.code,
                "rule": f.rule.name,
                "message": f.message,
                "problem": f.problem,
                "why": f.why,
                "fix": f.fix,
            }
            for f in report.findings
        ],
        "summary": {
            "files_checked": report.files_checked,
            "findings": len(report.findings),
            "by_code": dict(sorted(_by_code(report.findings).items())),
        },
    }
    return json.dumps(document, indent=2) + "\n"


def _by_code(findings: list[Finding]) -> Counter[str]:
    return Counter(f.code for f in findings)
