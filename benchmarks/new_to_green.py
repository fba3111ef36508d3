"""How long from ``hyperspot new`` to a green ``hyperspot check``, for one module (on demand).

In a fresh temporary project: ``hyperspot new NAME --kind KIND`` (a subprocess, as a developer runs
it), then ``hyperspot check`` twice: first with cold caches (a new project's first check: mypy
analyses hyperspot, pydantic and the rest from scratch), then again with warm ones (the
edit-check loop). Prints the wall-clock time of each step and the total; the check's static steps
run in parallel, so their times overlap rather than add up. A plugin needs a gateway: with
``--kind plugin`` a gateway is generated first (not timed).

    python benchmarks/new_to_green.py                    # a regular module
    python benchmarks/new_to_green.py --kind gateway --keep
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hyperspot.cli.check import Outcome, detect, run_steps


def hyperspot(*args: str, cwd: Path) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "hyperspot", *args], cwd=cwd, check=True)
    return time.monotonic() - started


def check(project: Path) -> tuple[list[Outcome], float]:
    started = time.monotonic()
    outcomes = run_steps(detect(project), fix=False)
    return outcomes, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=("regular", "gateway", "plugin"), default="regular")
    parser.add_argument("--name", default="inventory")
    parser.add_argument("--keep", action="store_true", help="Keep the project folder.")
    options = parser.parse_args()

    console = Console()
    project = Path(tempfile.mkdtemp(prefix="hyperspot-new-to-green-"))
    # The check below runs in this process: it checks the project it is started in.
    os.chdir(project)
    try:
        extra = []
        if options.kind == "plugin":
            hyperspot("new", "hub", "--kind", "gateway", cwd=project)
            extra = ["--implements", "hub"]
        new_s = hyperspot("new", options.name, "--kind", options.kind, *extra, cwd=project)
        cold, cold_s = check(project)
        warm, warm_s = check(project)
    finally:
        os.chdir(Path(__file__).parent)
        if not options.keep:
            shutil.rmtree(project, ignore_errors=True)

    table = Table(
        title=f"hyperspot new {options.name} --kind {options.kind} -> green hyperspot check",
        caption=(
            f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}"
            + (f"; project kept in {project}" if options.keep else "")
        ),
    )
    for column in ("step", "first check (cold caches)", "again (warm caches)"):
        table.add_column(column, justify="left" if column == "step" else "right")
    table.add_row("hyperspot new", f"{new_s:.2f} s", "")
    for first, again in zip(cold, warm, strict=True):
        table.add_row(
            f"  {first.step}" + ("" if first.status == "passed" else f" ({first.status})"),
            f"{first.seconds:.2f} s",
            f"{again.seconds:.2f} s",
        )
    table.add_row("hyperspot check (wall clock)", f"{cold_s:.2f} s", f"{warm_s:.2f} s")
    table.add_row("new -> green", f"{new_s + cold_s:.2f} s", "", style="bold")
    console.print(table)
    green = all(outcome.status == "passed" for outcome in cold + warm)
    if not green:
        console.print("[red]the check did not pass[/red]")
    return 0 if green else 1


if __name__ == "__main__":
    raise SystemExit(main())
