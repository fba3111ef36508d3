"""``hyperspot check``: formatting, lint, types, hyperspot's own rules and the tests, one summary.

Works in the platform repository (``hyperspot`` and ``tests``) and in a project that only depends
on hyperspot (its ``modules`` and ``tests``, as ``hyperspot new`` lays them out). The static steps
are independent and run in parallel; the tests run last, under coverage. With ``--fix`` the two
ruff steps change files, so they run first and one at a time (``ruff check --fix`` before
``ruff format``, so that what the fixes change ends up formatted). Every tool runs with the
interpreter running hyperspot: the project's environment.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table
from rich.text import Text

from hyperspot.cli.common import fail, out

FAIL_UNDER = 90
Status = Literal["passed", "failed", "not available"]
STYLES: dict[Status, str] = {"passed": "green", "failed": "red", "not available": "red"}


@dataclass(frozen=True)
class Project:
    root: Path
    platform: bool  # the hyperspot repository itself
    targets: tuple[str, ...]  # what ruff, mypy and hyperspot lint look at
    tests: str | None  # the test folder


def detect(start: Path, paths: Sequence[Path] = ()) -> Project:
    """The project around ``start`` and what to check in it."""
    start = start.resolve()
    root = next(
        (
            folder
            for folder in (start, *start.parents)
            if (folder / "pyproject.toml").is_file() or (folder / "hyperspot.yaml").is_file()
        ),
        start,
    )
    platform = (root / "hyperspot" / "platform").is_dir() and _name(root) == "hyperspot"
    candidates = ("hyperspot", "tests") if platform else ("modules", "tests")
    if paths:
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise fail(f"no such path: {', '.join(missing)}")
        targets = tuple(os.path.relpath(p.resolve(), root) for p in paths)
    else:
        targets = tuple(c for c in candidates if (root / c).is_dir())
    if not targets:
        raise fail(f"nothing to check in {root}: no {' or '.join(f'{c}/' for c in candidates)}")
    tests = "tests" if (root / "tests").is_dir() else None
    return Project(root, platform, targets, tests)


def _name(root: Path) -> str | None:
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    name = data.get("project", {}).get("name")
    return name if isinstance(name, str) else None


@dataclass
class Outcome:
    step: str
    status: Status
    seconds: float
    summary: str
    output: str = ""


@dataclass(frozen=True)
class Step:
    name: str
    tool: str  # the Python package that must be importable
    run: Callable[[Project], tuple[Status, str, str]]  # -> status, summary, output


def _environment(project: Project, for_mypy: bool = False) -> dict[str, str]:
    # Whoever started `check` (a coverage run, say) must not leak into the tools it starts.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    if for_mypy and not project.platform:
        paths = [str(project.root / "modules")]
        source = Path(__file__).resolve().parents[2]
        if not {"site-packages", "dist-packages"} & set(source.parts):
            # An editable install is found by an import hook, which mypy does not run.
            paths.append(str(source))
        env["MYPYPATH"] = os.pathsep.join([*paths, *filter(None, [env.get("MYPYPATH")])])
    return env


def _run(
    project: Project, *commands: Sequence[str], env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run commands one after the other, stopping at the first failure; their joint output."""
    outputs = []
    code = 0
    for command in commands:
        # No shell, and the interpreter running hyperspot: the tools of its environment.
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-m", *command],
            cwd=project.root,
            env=env or _environment(project),
            capture_output=True,
            text=True,
            check=False,
        )
        outputs.append((done.stdout + done.stderr).strip())
        code = done.returncode
        if code != 0:
            break
    return code, "\n".join(filter(None, outputs))


def _last_line(output: str, default: str = "") -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else default


def _ruff_format(fix: bool) -> Callable[[Project], tuple[Status, str, str]]:
    def run(project: Project) -> tuple[Status, str, str]:
        mode = [] if fix else ["--check"]
        code, output = _run(project, ["ruff", "format", *mode, *project.targets])
        return ("passed" if code == 0 else "failed"), _last_line(output), output

    return run


def _ruff_check(fix: bool) -> Callable[[Project], tuple[Status, str, str]]:
    def run(project: Project) -> tuple[Status, str, str]:
        mode = ["--fix"] if fix else []
        code, output = _run(project, ["ruff", "check", *mode, *project.targets])
        return ("passed" if code == 0 else "failed"), _last_line(output), output

    return run


def _mypy(project: Project) -> tuple[Status, str, str]:
    env = _environment(project, for_mypy=True)
    code, output = _run(project, ["mypy", "--strict", *project.targets], env=env)
    return ("passed" if code == 0 else "failed"), _last_line(output), output


def _hyperspot_lint(project: Project) -> tuple[Status, str, str]:
    code, output = _run(project, ["hyperspot", "lint", *project.targets])
    if code == 2 and "No such command" in output:
        # Not a pass: the rules were not checked.
        return "not available", "this hyperspot has no `hyperspot lint` command", output
    return ("passed" if code == 0 else "failed"), _last_line(output), output


def _tests(project: Project) -> tuple[Status, str, str]:
    if project.tests is None:
        return "failed", f"no tests/ folder in {project.root}", ""
    # The platform's suite is written for two pytest-xdist workers (see noxfile.py).
    workers = ["-n", "2"] if project.platform and importlib.util.find_spec("xdist") else []
    code, output = _run(project, ["coverage", "erase"])
    if code == 0:
        tested, output = _run(project, ["coverage", "run", "-m", "pytest", *workers])
        # Server subprocesses write data files of their own: fold them in even after a failure,
        # so that none is left behind, and report.
        reported, report = _run(
            project,
            ["coverage", "combine", "--quiet"],
            ["coverage", "report", f"--fail-under={FAIL_UNDER}"],
        )
        code, output = tested or reported, f"{output}\n{report}"
    tests = re.findall(r"^=*\s*(\d+ (?:passed|failed|error).*?)\s*=*$", output, re.MULTILINE)
    total = re.findall(r"^TOTAL\s.*?(\d+(?:\.\d+)?%)\s*$", output, re.MULTILINE)
    summary = "; ".join(
        filter(None, [tests[-1] if tests else "", f"coverage {total[-1]}" if total else ""])
    )
    if code != 0 and total and "fail-under" in output:
        summary += f" (at least {FAIL_UNDER}% needed)"
    return ("passed" if code == 0 else "failed"), summary or _last_line(output), output


def _steps(fix: bool) -> list[Step]:
    return [
        Step("ruff format", "ruff", _ruff_format(fix)),
        Step("ruff check", "ruff", _ruff_check(fix)),
        Step("mypy --strict", "mypy", _mypy),
        Step("hyperspot lint", "hyperspot", _hyperspot_lint),
        Step("pytest + coverage", "coverage", _tests),
    ]


def _perform(step: Step, project: Project) -> Outcome:
    started = time.monotonic()
    if importlib.util.find_spec(step.tool) is None:
        summary = f"{step.tool} is not installed (pip install {step.tool})"
        return Outcome(step.name, "not available", 0.0, summary)
    status, summary, output = step.run(project)
    return Outcome(step.name, status, time.monotonic() - started, summary, output)


def _report(outcome: Outcome) -> None:
    mark = "✔" if outcome.status == "passed" else "✘"
    out.print(
        Text.assemble(
            (f"{mark} {outcome.step}", STYLES[outcome.status]),
            f"  {outcome.seconds:.1f} s  {outcome.summary}",
        )
    )


def run_steps(project: Project, fix: bool) -> list[Outcome]:
    """Every step; the independent ones at once. Outcomes come back in the steps' order."""
    steps = _steps(fix)
    static, tests = steps[:-1], steps[-1]
    outcomes: dict[str, Outcome] = {}
    if fix:
        # The fixers rewrite files: one after the other and before anything reads them; the lint
        # fixes first, so that what they change ends up formatted too (ruff's own advice).
        for step in reversed(static[:2]):
            outcomes[step.name] = _perform(step, project)
            _report(outcomes[step.name])
        static = static[2:]
    with ThreadPoolExecutor(max_workers=len(static)) as pool:
        futures = [pool.submit(_perform, step, project) for step in static]
        for future in as_completed(futures):
            outcome = future.result()
            outcomes[outcome.step] = outcome
            _report(outcome)
    outcomes[tests.name] = _perform(tests, project)
    _report(outcomes[tests.name])
    return [outcomes[step.name] for step in steps]


def _summary(outcomes: list[Outcome], seconds: float) -> Table:
    table = Table(title="hyperspot check", title_justify="left")
    for column in ("step", "result", "time", "summary"):
        table.add_column(column, justify="right" if column == "time" else "left")
    for outcome in outcomes:
        table.add_row(
            outcome.step,
            Text(outcome.status, style=STYLES[outcome.status]),
            f"{outcome.seconds:.1f} s",
            Text(outcome.summary),
        )
    failed = sum(outcome.status != "passed" for outcome in outcomes)
    verdict = Text("all passed", "green") if not failed else Text(f"{failed} failed", "red")
    table.add_row("total", verdict, f"{seconds:.1f} s", "")
    return table


def check(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help=(
                "Files or folders for ruff, mypy and hyperspot lint (default: the project's "
                "modules/ and tests/, or hyperspot/ and tests/ in the platform repository). "
                "The tests always run whole: the coverage floor is for the whole."
            ),
            show_default=False,
        ),
    ] = None,
    fix: Annotated[
        bool, typer.Option("--fix", help="Let ruff format the code and fix what it can.")
    ] = False,
) -> None:
    """Check a project: ruff format, ruff check, mypy --strict, hyperspot lint, tests + coverage."""
    project = detect(Path.cwd(), paths or ())
    kind = "the platform" if project.platform else "project"
    out.print(Text(f"checking {kind} {project.root}: {', '.join(project.targets)}"))
    started = time.monotonic()
    outcomes = run_steps(project, fix)
    for outcome in outcomes:
        if outcome.status != "passed" and outcome.output:
            out.rule(Text(f"{outcome.step}: output"), style="red")
            out.print(Text(outcome.output))
    out.print(_summary(outcomes, time.monotonic() - started))
    if any(outcome.status != "passed" for outcome in outcomes):
        raise typer.Exit(code=1)
