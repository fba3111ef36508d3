"""Put a rendered module into a project: plan everything first, then write it all or nothing.

Every check (name, kind, gateway, existing files, the config file's YAML) runs before anything is
written. The files are then written to a staging folder inside the project and renamed into place,
so an error leaves the project as it was.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from hyperspot.scaffolds.render import (
    BUILTIN_GATEWAYS,
    Kind,
    Scaffold,
    ScaffoldError,
    check_name,
    gateways_listed,
    is_gateway,
    render_project,
)

CONFIG_FILE = "hyperspot.yaml"
MODULES_DIR = "modules"
MODULES_ENTRY = "./modules"  # relative to the folder the server runs in: the project's
CONFIG_HEADER = (
    "# HyperSpot configuration of this project: `hyperspot up --config hyperspot.yaml`.\n"
    "# Keys and defaults: README.md of hyperspot; any value can also come from HYPERSPOT_... "
    "variables.\n"
)


@dataclass
class Plan:
    """What ``apply`` will write, all checked already."""

    project: Path
    scaffold: Scaffold
    files: dict[PurePosixPath, str]
    config: str | None  # the new hyperspot.yaml text; None when it needs no change
    pyproject: str | None  # a new pyproject.toml; None when the project has one
    replacing: list[PurePosixPath] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def module_dir(self) -> PurePosixPath:
        return PurePosixPath(MODULES_DIR, self.scaffold.name)

    def targets(self) -> list[PurePosixPath]:
        """What is put in place, in order: the module folder, the other files."""
        others = [p for p in self.files if not p.is_relative_to(self.module_dir)]
        if self.config is not None:
            others.append(PurePosixPath(CONFIG_FILE))
        if self.pyproject is not None:
            others.append(PurePosixPath("pyproject.toml"))
        return [self.module_dir, *others]


def plan(
    project: Path, kind: Kind, name: str, gateway: str | None = None, *, force: bool = False
) -> Plan:
    """Check the request against the project and render the files; writes nothing."""
    if project.exists() and not project.is_dir():
        raise ScaffoldError(f"{project} is not a folder")
    modules_dir = project / MODULES_DIR
    check_name(name, modules_dir)
    builtin = False
    if kind is Kind.PLUGIN:
        gateway, builtin = _checked_gateway(modules_dir, name, gateway)
    elif gateway is not None:
        raise ScaffoldError(f"--implements is for --kind plugin, not --kind {kind.value}")
    scaffold = Scaffold(kind, name, gateway, builtin_gateway=builtin)
    files = scaffold.render()
    result = Plan(project, scaffold, files, _config_text(project), _pyproject_text(project))
    existing = [t for t in result.targets()[:1] + _test_files(files) if (project / t).exists()]
    if existing and not force:
        shown = ", ".join(str(p) for p in existing)
        verb = "exists" if len(existing) == 1 else "exist"
        raise ScaffoldError(f"{shown} already {verb} in {project}: pass --force to replace it")
    result.replacing = existing
    if result.pyproject is None:
        result.notes.extend(_pyproject_notes(project / "pyproject.toml"))
    return result


def _test_files(files: dict[PurePosixPath, str]) -> list[PurePosixPath]:
    return [p for p in files if p.parts[0] == "tests"]


def _checked_gateway(modules_dir: Path, name: str, gateway: str | None) -> tuple[str, bool]:
    """The gateway a plugin implements, and whether it is one of the platform's own."""
    if gateway is None:
        raise ScaffoldError(
            f"--kind plugin needs --implements GATEWAY ({gateways_listed(modules_dir)})"
        )
    if gateway == name:
        raise ScaffoldError(f"plugin {name!r} cannot implement itself")
    if not (modules_dir / gateway).is_dir():
        # No module of that name in the project (whose own would come first): a built-in one?
        if gateway in BUILTIN_GATEWAYS:
            return gateway, True
        raise ScaffoldError(f"no gateway module {gateway!r} ({gateways_listed(modules_dir)})")
    if not is_gateway(modules_dir / gateway):
        raise ScaffoldError(
            f"module {gateway!r} in {modules_dir} is not a gateway made by `hyperspot new "
            "--kind gateway`: its contract lacks the plugin contract (PLUGIN_SLOT and its Protocol)"
        )
    return gateway, False


# The project's files.


def _config_text(project: Path) -> str | None:
    path = project / CONFIG_FILE
    if not path.exists():
        return f"{CONFIG_HEADER}modules_path: [{MODULES_ENTRY}]\n"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ScaffoldError(f"cannot read {path}: {error}") from None
    return with_modules_path(text, project, path)


def with_modules_path(text: str, project: Path, source: Path) -> str | None:
    """``text`` with ``./modules`` added to ``modules_path``, or None when it is listed already.

    PyYAML cannot write a document back with its comments, so the text is edited in place at the
    positions the parser reports, and the result is parsed again to prove nothing else changed.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else str(source)
        problem = getattr(error, "problem", None) or "cannot be parsed"
        raise ScaffoldError(f"{where}: invalid YAML: {problem}") from None
    if node is None or data is None:
        return text + ("" if not text or text.endswith("\n") else "\n") + _entry_line([])
    if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
        raise ScaffoldError(f"{source}: the config file must hold a mapping of sections")
    current = data.get("modules_path")
    entries = current if isinstance(current, list) else ([] if current is None else [current])
    wanted = (project / MODULES_DIR).resolve()
    if any((project / str(entry)).resolve() == wanted for entry in entries):
        return None
    edited = _edit(text, node, entries)
    if _same_apart_from_modules_path(data, edited, [*entries, MODULES_ENTRY]):
        return edited
    # The in-place edit did not hold (anchors, odd layouts): rewrite the document as data.
    rewritten = yaml.safe_dump({**data, "modules_path": [*entries, MODULES_ENTRY]}, sort_keys=False)
    return (
        f"# Rewritten by `hyperspot new` to add {MODULES_ENTRY}: comments were lost.\n{rewritten}"
    )


def _entry_line(entries: list[Any]) -> str:
    listed = yaml.safe_dump([*entries, MODULES_ENTRY], default_flow_style=True, width=1000)
    return f"modules_path: {listed.strip()}\n"


def _edit(text: str, root: yaml.MappingNode, entries: list[Any]) -> str:
    pair = next(((k, v) for k, v in root.value if k.value == "modules_path"), None)
    if pair is None:
        return text + ("" if text.endswith("\n") else "\n") + _entry_line([])
    key, value = pair
    if isinstance(value, yaml.SequenceNode) and value.value and not value.flow_style:
        # Block style: a new "- ./modules" line after the last item, indented like the first.
        first, last = value.value[0], value.value[-1]
        line_start = text.rfind("\n", 0, first.start_mark.index) + 1
        prefix = text[line_start : first.start_mark.index]
        end = text.find("\n", last.end_mark.index)
        end = len(text) if end == -1 else end
        return f"{text[:end]}\n{prefix}{MODULES_ENTRY}{text[end:]}"
    if isinstance(value, yaml.SequenceNode) and value.flow_style:
        closing = text.rindex("]", 0, value.end_mark.index)
        inner = text[value.start_mark.index + 1 : closing].strip()
        separator = "" if not inner else (" " if inner.endswith(",") else ", ")
        return f"{text[:closing]}{separator}{MODULES_ENTRY}{text[closing:]}"
    # A single value or nothing: the whole entry becomes one flow list.
    return (
        text[: key.start_mark.index]
        + _entry_line(entries).rstrip("\n")
        + text[value.end_mark.index :]
    )


def _same_apart_from_modules_path(before: dict[str, Any], text: str, entries: list[Any]) -> bool:
    try:
        after = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    if not isinstance(after, dict):
        return False
    return after.get("modules_path") == entries and {
        k: v for k, v in after.items() if k != "modules_path"
    } == {k: v for k, v in before.items() if k != "modules_path"}


def _pyproject_text(project: Path) -> str | None:
    if (project / "pyproject.toml").exists():
        return None
    name = re.sub(r"[^a-z0-9]+", "-", project.resolve().name.lower()).strip("-")
    return render_project(name or "hyperspot-project")


def _pyproject_notes(path: Path) -> list[str]:
    try:
        tools = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return [f"{path} could not be read: check its pytest and mypy settings by hand"]
    pythonpath = tools.get("pytest", {}).get("ini_options", {}).get("pythonpath", [])
    if MODULES_DIR in pythonpath:
        return []
    return [
        f'kept {path}: for the generated tests, add pythonpath = ["{MODULES_DIR}"] to '
        f'[tool.pytest.ini_options] and mypy_path = "{MODULES_DIR}" to [tool.mypy]'
    ]


# Writing.


def apply(plan: Plan) -> list[PurePosixPath]:
    """Write the plan: staged in the project, then renamed into place; all or nothing."""
    project = plan.project
    made = [p for p in (project, *project.parents) if not p.exists()]  # a new project's folders
    staging: Path | None = None
    undo: list[Callable[[], None]] = []
    try:
        project.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".hyperspot-new-", dir=project))
        for relative, text in plan.files.items():
            _write(staging / relative, text)
        if plan.config is not None:
            _write(staging / CONFIG_FILE, plan.config)
        if plan.pyproject is not None:
            _write(staging / "pyproject.toml", plan.pyproject)
        aside = staging / ".replaced"
        for relative in plan.replacing:
            _move(project / relative, aside / relative, undo)
        for relative in plan.targets():
            _move(staging / relative, project / relative, undo)
    except OSError as error:
        for step in reversed(undo):
            step()
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        _remove_empty(made)
        raise ScaffoldError(f"cannot write the module into {project}: {error}") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return sorted(plan.files)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders (innermost first) that are empty: those a failed write created."""
    for folder in folders:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _move(source: Path, target: Path, undo: list[Callable[[], None]]) -> None:
    made = [p for p in target.parents if not p.exists()]  # innermost first
    target.parent.mkdir(parents=True, exist_ok=True)
    undo.append(lambda: _remove_empty(made))
    backup = None
    if target.is_file():
        # Files already there (hyperspot.yaml) are replaced; keep the old one for an undo.
        backup = source.with_name(source.name + ".old")
        shutil.copy2(target, backup)
    os.replace(source, target)

    def back() -> None:
        if backup is not None:
            os.replace(backup, target)
        else:
            os.replace(target, source)

    undo.append(back)
