"""Module discovery (entry points and a local modules path) and dependency resolution."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from hyperspot.platform.errors import ModuleGraphError, ModuleLoadError
from hyperspot.platform.module import Module

ENTRY_POINT_GROUP = "hyperspot.modules"


@dataclass(frozen=True)
class Discovered:
    module: Module[Any]
    origin: str  # where it was found, for messages: "entry point hello = pkg.mod:module" or a path


def discover(modules_path: Sequence[Path] = ()) -> list[Discovered]:
    """Every installed module (entry points) and every module package under ``modules_path``."""
    found: list[Discovered] = []
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        origin = f"entry point '{entry.name} = {entry.value}'"
        try:
            declared = entry.load()
        except Exception as error:
            raise ModuleLoadError(f"cannot load module from {origin}: {error}") from error
        found.append(Discovered(_checked(declared, origin), origin))
    for folder in modules_path:
        found.extend(_discover_local(folder))
    _refuse_duplicates(found)
    return found


def _discover_local(folder: Path) -> Iterable[Discovered]:
    folder = folder.resolve()
    if not folder.is_dir():
        raise ModuleLoadError(f"modules_path {folder} is not a folder")
    for package in sorted(p for p in folder.iterdir() if (p / "module.py").is_file()):
        origin = str(package / "module.py")
        try:
            existing = importlib.util.find_spec(package.name)
        except ValueError:  # pragma: no cover - a module without a spec (e.g. __main__)
            existing = None
        if existing is not None and existing.origin and not existing.origin.startswith(str(folder)):
            raise ModuleLoadError(
                f"local module package '{package.name}' ({package}) would shadow the installed "
                f"package at {existing.origin}: rename the folder"
            )
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
        try:
            declared = getattr(importlib.import_module(f"{package.name}.module"), "module", None)
        except Exception as error:
            raise ModuleLoadError(f"cannot import module from {origin}: {error}") from error
        yield Discovered(_checked(declared, origin), origin)


def _checked(declared: object, origin: str) -> Module[Any]:
    if not isinstance(declared, Module):
        raise ModuleLoadError(
            f"{origin} does not name a hyperspot Module (got {type(declared).__name__})"
        )
    return declared


def _refuse_duplicates(found: Sequence[Discovered]) -> None:
    seen: dict[str, Discovered] = {}
    for item in found:
        first = seen.setdefault(item.module.name, item)
        if first is not item:
            raise ModuleLoadError(
                f"two modules are named '{item.module.name}': {first.origin} and {item.origin}"
            )


def resolve(modules: Sequence[Module[Any]], disabled: Iterable[str] = ()) -> list[Module[Any]]:
    """The enabled modules in dependency order (dependencies first, ties by name).

    A dependency that is missing or disabled, or a cycle, raises one ``ModuleGraphError`` that
    names the modules involved.
    """
    by_name = {module.name: module for module in modules}
    off = set(disabled)
    enabled = {name: module for name, module in by_name.items() if name not in off}
    problems = []
    for module in sorted(enabled.values(), key=lambda m: m.name):
        for dependency in module.depends_on:
            if dependency in off:
                problems.append(
                    f"module '{module.name}' depends on '{dependency}', "
                    "which is disabled in config "
                    f"(modules.{dependency}.enabled)"
                )
            elif dependency not in by_name:
                known = ", ".join(sorted(by_name)) or "none"
                problems.append(
                    f"module '{module.name}' depends on '{dependency}', which is not installed "
                    f"(known modules: {known})"
                )
    if problems:
        raise ModuleGraphError("; ".join(problems))
    ordered: list[Module[Any]] = []
    state: dict[str, str] = {}  # name -> "visiting" | "done"

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = [*trail[trail.index(name) :], name]
            raise ModuleGraphError("module dependency cycle: " + " -> ".join(cycle))
        state[name] = "visiting"
        for dependency in sorted(enabled[name].depends_on):
            visit(dependency, [*trail, name])
        state[name] = "done"
        ordered.append(enabled[name])

    for name in sorted(enabled):
        visit(name, [])
    return ordered
