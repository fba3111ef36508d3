"""``hyperspot lint``: each rule on failing and passing examples, suppressions, output, exit codes.

The fixtures under ``fixtures/lint`` mark every line the lint must report with ``# expect: CODE``
(or ``# expect-next: CODE`` on the line above), so a fixture documents its own findings.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections import Counter
from pathlib import Path

import grimp
import pytest
from conftest import run_cli

from hyperspot.lint_rules import RULES, LintReport, LintUsageError, lint

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "lint"
BAD, GOOD, PROJECT = FIXTURES / "bad", FIXTURES / "good", FIXTURES / "project"
EXPECT = re.compile(r"#\s*expect(?P<next>-next)?:\s*(?P<codes>HS\d{3}(?:\s*,\s*HS\d{3})*)")
LINE = re.compile(
    r"^(?P<path>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<code>HS\d{3}) (?P<message>.+)$"
)


Spot = tuple[str, int, str]  # path relative to the fixture, line, code


def expected(folder: Path) -> set[Spot]:
    spots: set[Spot] = set()
    for path in sorted(folder.rglob("*.py")):
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            marker = EXPECT.search(text)
            if marker:
                line = number + 1 if marker["next"] else number
                for code in marker["codes"].split(","):
                    spots.add((path.relative_to(folder).as_posix(), line, code.strip()))
    return spots


def spots(report: LintReport, folder: Path) -> set[Spot]:
    return {(f.path.relative_to(folder).as_posix(), f.line, f.code) for f in report.findings}


@pytest.fixture(scope="module")
def bad() -> LintReport:
    return lint([BAD])


@pytest.fixture(scope="module")
def good() -> LintReport:
    return lint([GOOD])


# -- each rule: a failing and a passing example ------------------------------------------------


@pytest.mark.parametrize("code", sorted(RULES))
def test_rule_flags_the_bad_example_and_passes_the_good_one(
    code: str, bad: LintReport, good: LintReport
) -> None:
    want = {spot for spot in expected(BAD) if spot[2] == code}
    assert want, f"{code} has no failing example in {BAD}"
    assert {spot for spot in spots(bad, BAD) if spot[2] == code} == want
    assert [f for f in good.findings if f.code == code] == []


def test_bad_example_has_exactly_the_marked_findings(bad: LintReport) -> None:
    assert spots(bad, BAD) == expected(BAD)


def test_good_example_is_clean(good: LintReport) -> None:
    assert good.ok, [f"{f.path}:{f.line} {f.code}" for f in good.findings]
    assert good.files_checked == len(list(GOOD.rglob("*.py")))


def test_project_modules_outside_any_package() -> None:
    # modules_path-style modules: a relative import of its own infra (HS001), a reach into a
    # platform module's domain (HS002), a script (may print, must not build SQL); tests skipped.
    report = lint([PROJECT])
    assert spots(report, PROJECT) == expected(PROJECT)
    assert not any(path.startswith("tests/") for path, _, _ in spots(report, PROJECT))


def test_every_finding_says_what_why_and_how(bad: LintReport) -> None:
    for finding in bad.findings:
        assert finding.problem and finding.why and finding.fix
        assert finding.message == f"{finding.problem}. Why: {finding.why}. Fix: {finding.fix}."
        assert "\n" not in finding.message


# -- finer points of the checks, on small files -------------------------------------------------


def lint_files(tmp_path: Path, files: dict[str, str]) -> set[Spot]:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return spots(lint([tmp_path]), tmp_path)


def module_package(name: str) -> dict[str, str]:
    """The files that make ``name`` a module package with the usual layers."""
    return {
        f"{name}/__init__.py": "",
        f"{name}/module.py": "module = None\n",
        **{f"{name}/{layer}/__init__.py": "" for layer in ("contract", "domain", "api", "infra")},
    }


def test_blocking_calls_only_where_they_block_the_loop(tmp_path: Path) -> None:
    found = lint_files(
        tmp_path,
        {
            "snip_async/__init__.py": "",
            "snip_async/jobs.py": """\
                import asyncio
                import subprocess
                import time
                from time import sleep

                import requests


                async def handler(paths):
                    requests.get("http://127.0.0.1:9")
                    sleep(1)
                    await asyncio.to_thread(time.sleep, 1)
                    await asyncio.sleep(1)

                    def work():
                        time.sleep(1)  # runs in a thread, not on the loop

                    with open("once") as file:
                        file.read()
                    data = [open(p).read() for p in paths]
                    for name in open("list"):
                        print(name)
                    while data:
                        subprocess.check_output(["true"])
                    return work, data


                def plain():
                    time.sleep(1)
                """,
        },
    )
    assert {(line, code) for _, line, code in found if code == "HS006"} == {
        (10, "HS006"),
        (11, "HS006"),
        (20, "HS006"),
        (24, "HS006"),
    }


def test_operation_access_follows_the_builder(tmp_path: Path) -> None:
    found = lint_files(
        tmp_path,
        {
            "snip_ops/__init__.py": "",
            "snip_ops/rest.py": """\
                def register(api, calc):
                    calc.operation("add")  # not an operation builder
                    op = api.operation("GET", "/a", "m.a")
                    op.response(200).require("a:read")
                    op = api.operation("GET", "/b", "m.b")
                    op.response(200)
                    api.operation("GET", "/c", "m.c").public().handler(None)
                    return api.operation("GET", "/d", "m.d")  # decided by the caller


                class Routes:
                    def declare(self):
                        self.api.operation("PUT", "/e", "m.e").handler(None)
                """,
        },
    )
    assert {(line, code) for _, line, code in found} == {(5, "HS007"), (13, "HS007")}


def test_scoped_query_heuristics_stay_quiet_on_lookalikes(tmp_path: Path) -> None:
    found = lint_files(
        tmp_path,
        {
            **module_package("snip_scope"),
            "snip_scope/domain/rules.py": """\
                from pathlib import Path

                PHRASES = {"en": "hello"}


                def work(session, ctx, entities, language, key):
                    rows: dict[str, int] = {}
                    session.get(entities.Note, key)
                    session.query(entities.Note).filter(lambda n: n.pinned)
                    ctx.clients.get(object)
                    PHRASES.get(language)
                    Path("x").exists()
                    return rows, entities.Note.select()
                """,
        },
    )
    assert found == {("snip_scope/domain/rules.py", 13, "HS004")}


def test_handlers_and_domain_only_for_swallowed_exceptions(tmp_path: Path) -> None:
    swallow = """\
        def load(read):
            try:
                return read()
            except OSError:
                pass
        """
    found = lint_files(
        tmp_path,
        {
            **module_package("snip_exc"),
            "snip_exc/infra/files.py": swallow,
            "snip_exc/domain/files.py": swallow,
        },
    )
    assert found == {("snip_exc/domain/files.py", 4, "HS008")}


def test_print_is_fine_in_scripts_and_the_cli(tmp_path: Path) -> None:
    found = lint_files(
        tmp_path,
        {
            "snip_print/__init__.py": "",
            "snip_print/__main__.py": "print('usage')\n",
            "snip_print/cli/__init__.py": "print('hello')\n",
            "snip_print/scripts/__init__.py": "",
            "snip_print/scripts/seed.py": "print('seeded')\n",
            "snip_print/core.py": "print('oops')\n",
            "loose_script.py": "print('a script')\n",
        },
    )
    assert found == {("snip_print/core.py", 1, "HS009")}


def test_type_checking_imports_count(tmp_path: Path) -> None:
    found = lint_files(
        tmp_path,
        {
            **module_package("snip_tc"),
            "snip_tc/infra/rows.py": "class Row: ...\n",
            "snip_tc/domain/rules.py": """\
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    from snip_tc.infra.rows import Row
                """,
        },
    )
    assert found == {("snip_tc/domain/rules.py", 4, "HS001")}


def test_unparsable_file_is_a_finding(tmp_path: Path) -> None:
    found = lint_files(tmp_path, {"snip_broken/__init__.py": "", "snip_broken/x.py": "def (:\n"})
    assert found == {("snip_broken/x.py", 1, "HS000")}


# -- suppressions --------------------------------------------------------------------------------


def test_suppression_with_a_reason_silences_only_its_codes(tmp_path: Path) -> None:
    found = lint_files(
        tmp_path,
        {
            "snip_sup/__init__.py": "",
            "snip_sup/db.py": """\
                def run(cursor, name):
                    cursor.execute(f"DROP TABLE {name}")  # hyperspot: ignore[HS005] name is ours
                    # hyperspot: ignore[HS005, HS009] both are fine here: a fixed table list
                    cursor.execute(f"DROP TABLE {name}") or print(name)
                    cursor.execute(f"DROP TABLE {name}")  # hyperspot: ignore[HS009] wrong code
                """,
        },
    )
    assert found == {("snip_sup/db.py", 5, "HS005"), ("snip_sup/db.py", 5, "HS000")}


def test_suppression_without_a_reason_is_a_finding_and_has_no_effect(tmp_path: Path) -> None:
    found = lint_files(
        tmp_path,
        {
            "snip_nor/__init__.py": "",
            "snip_nor/db.py": """\
                def run(cursor, name):
                    cursor.execute(f"DROP TABLE {name}")  # hyperspot: ignore[HS005]
                    cursor.execute(f"DROP TABLE {name}")  # hyperspot: ignore[HS005] --
                """,
        },
    )
    assert found == {
        ("snip_nor/db.py", line, code) for line in (2, 3) for code in ("HS000", "HS005")
    }


# -- the platform's own code ---------------------------------------------------------------------


def test_platform_code_has_no_findings() -> None:
    report = lint([REPO / "hyperspot"])
    assert [f"{f.path}:{f.line}: {f.code}" for f in report.findings] == []


def test_kernel_does_not_import_the_lint_rules() -> None:
    graph = grimp.build_graph("hyperspot", cache_dir=None)
    assert not graph.chain_exists("hyperspot.platform", "hyperspot.lint_rules", as_packages=True)


def test_test_code_is_not_linted() -> None:
    # A whole test folder (as `hyperspot check` passes it) is skipped; so is a project's tests/
    # when walking (test_project_modules_outside_any_package), but not fixtures passed explicitly.
    report = lint([REPO / "tests"])
    assert report.ok
    assert report.files_checked == 0


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(LintUsageError, match="no such file or folder"):
        lint([tmp_path / "nowhere"])


# -- the command ---------------------------------------------------------------------------------


def test_cli_prints_one_finding_per_line_and_a_summary() -> None:
    result = run_cli("lint", ".", cwd=BAD)
    assert result.returncode == 1, result.stderr
    *lines, summary = result.stdout.splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), [line for line, match in zip(lines, parsed, strict=True) if not match]
    assert {(m["path"], int(m["line"]), m["code"]) for m in parsed if m} == expected(BAD)
    assert all(re.search(r"\. Why: .+\. Fix: .+\.$", m["message"]) for m in parsed if m)
    total = len(expected(BAD))
    assert re.fullmatch(
        rf"{total} findings in \d+ files \(\d+ files checked\): HS000 x\d+.*\.", summary
    )


def test_cli_json_output() -> None:
    result = run_cli("lint", "--format", "json", str(BAD))
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    findings = document["findings"]
    assert document["summary"]["findings"] == len(findings) == len(expected(BAD))
    assert document["summary"]["by_code"] == dict(
        sorted(Counter(f["code"] for f in findings).items())
    )
    first = findings[0]
    assert set(first) == {"path", "line", "col", "code", "rule", "message", "problem", "why", "fix"}
    assert first["rule"] == RULES[first["code"]].name


def test_cli_lists_the_rules() -> None:
    result = run_cli("lint", "--list-rules")
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == sorted(RULES)


def test_cli_exits_0_when_clean() -> None:
    result = run_cli("lint", str(GOOD))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"No findings ({len(list(GOOD.rglob('*.py')))} files checked).\n"


def test_cli_exits_2_on_a_missing_path(tmp_path: Path) -> None:
    result = run_cli("lint", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "no such file or folder" in result.stderr


def test_cli_defaults_to_the_project_folder() -> None:
    result = run_cli("lint", "--format", "json", cwd=PROJECT)
    assert result.returncode == 1, result.stderr
    found = {(f["path"], f["line"], f["code"]) for f in json.loads(result.stdout)["findings"]}
    assert found == expected(PROJECT)


def test_cli_defaults_to_the_hyperspot_package_in_the_platform_repo() -> None:
    result = run_cli("lint", "--format", "json", cwd=REPO)
    document = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert document["summary"]["files_checked"] == lint([REPO / "hyperspot"]).files_checked
    assert all(f["path"].startswith("hyperspot/") for f in document["findings"])
