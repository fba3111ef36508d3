"""Which files are linted, and what each one is: kernel, module layer, CLI, test or script.

Everything here is read from the file system, never imported: linting a project must not run its
code. A *module package* is a package whose ``module.py`` declares ``module = ...`` (the entry
point convention); its *layer* is the first segment below it (``domain``, ``api``, ``infra``,
``contract``, ``module``, ...). A *platform-shaped* package has ``platform/`` and ``modules/``
subpackages, like ``hyperspot``: its ``platform`` is a kernel that imports no module.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# Test code may do what library code must not (adversarial queries, sleeps, prints): it is not
# linted. A folder inside a test folder, passed explicitly, is (the lint's own fixtures are).
_TEST_FOLDERS = ("tests", "test")
# Folders never walked into: tools' caches, virtual environments, build output, and tests.
_SKIPPED = {"__pycache__", "node_modules", "build", "dist", "site-packages", *_TEST_FOLDERS}
_DECLARES_MODULE = re.compile(r"^module\s*(?::[^=\n]*)?=(?!=)", re.MULTILINE)
DOMAIN_MUST_NOT_IMPORT = ("api", "infra", "module")


class LintUsageError(Exception):
    """The lint cannot run as asked (a missing path, an unanalysable package)."""


@dataclass(frozen=True)
class Place:
    """What a dotted module (or a script) is, as far as the rules care."""

    name: str | None  # dotted module name; None for a file outside any package (a script)
    module_package: str | None = None  # e.g. "hyperspot.modules.notes"
    layer: str | None = None  # first segment below the module package; None for its __init__
    kernel: bool = False
    cli: bool = False
    test: bool = False
    script: bool = False

    @property
    def module_name(self) -> str:
        """The module's own name (the last segment of its package), for messages."""
        return (self.module_package or "").rsplit(".", 1)[-1]


@dataclass(frozen=True)
class SourceFile:
    path: Path  # resolved
    name: str | None
    root: Path | None  # the folder that goes on sys.path to import ``name``


@cache
def is_package_dir(folder: Path) -> bool:
    return folder.name.isidentifier() and (folder / "__init__.py").is_file()


@cache
def is_module_package_dir(folder: Path) -> bool:
    declaration = folder / "module.py"
    if not declaration.is_file() or is_kernel_dir(folder):
        return False
    try:
        return bool(_DECLARES_MODULE.search(declaration.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError):
        return False


@cache
def is_platform_shaped(top: Path) -> bool:
    return is_package_dir(top / "platform") and (top / "modules").is_dir()


def is_kernel_dir(folder: Path) -> bool:
    return folder.name == "platform" and is_platform_shaped(folder.parent)


def dotted_name(path: Path) -> tuple[str | None, Path | None]:
    """The importable name of ``path`` and the folder it is importable from."""
    folder = path.parent
    parts = [] if path.name == "__init__.py" else [path.stem]
    if not is_package_dir(folder) or not path.stem.isidentifier():
        return None, None
    while is_package_dir(folder):
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts), folder


def collect(paths: Iterable[Path]) -> list[SourceFile]:
    """Every Python file under ``paths`` (files given explicitly are always included)."""
    seen: dict[Path, SourceFile] = {}
    for given in paths:
        if not given.exists():
            raise LintUsageError(f"no such file or folder: {given}")
        if given.is_dir() and given.resolve().name in _TEST_FOLDERS:
            continue  # a whole test folder (as `hyperspot check` passes it): test code is exempt
        candidates = [given] if given.is_file() else _walk(given)
        for candidate in candidates:
            path = candidate.resolve()
            if path.suffix == ".py" and path not in seen:
                name, root = dotted_name(path)
                seen[path] = SourceFile(path, name, root)
    return sorted(seen.values(), key=lambda f: f.path)


def _walk(folder: Path) -> Iterator[Path]:
    for current, folders, files in os.walk(folder):
        folders[:] = sorted(
            d
            for d in folders
            if not d.startswith(".")
            and d not in _SKIPPED
            and not d.endswith(".egg-info")
            # A folder with its own interpreter is a virtual environment, whatever its name.
            and not (Path(current) / d / "pyvenv.cfg").is_file()
        )
        for file in sorted(files):
            if file.endswith(".py") and not _is_test_file(file):
                yield Path(current) / file


def _is_test_file(file: str) -> bool:
    return file.startswith("test_") or file.endswith("_test.py") or file == "conftest.py"


class Layout:
    """Places of dotted names, given the folders of their top-level packages."""

    def __init__(self, tops: dict[str, Path]) -> None:
        self.tops = tops

    def place(self, name: str) -> Place:
        parts = name.split(".")
        top = self.tops.get(parts[0])
        test = any(p in _TEST_FOLDERS for p in parts) or _is_test_file(parts[-1] + ".py")
        script = parts[-1] == "__main__" or "scripts" in parts
        cli = "cli" in parts
        if top is None:
            return Place(name, test=test, script=script, cli=cli)
        kernel = len(parts) > 1 and parts[1] == "platform" and is_platform_shaped(top)
        for end in range(len(parts), 0, -1):
            if is_module_package_dir(top.joinpath(*parts[1:end])):
                layer = parts[end] if end < len(parts) else None
                package = ".".join(parts[:end])
                return Place(name, package, layer, kernel, cli, test, script)
        return Place(name, kernel=kernel, cli=cli, test=test, script=script)

    def in_modules_namespace(self, name: str) -> bool:
        """``<top>.modules`` of a platform-shaped package, or anything below it."""
        parts = name.split(".")
        top = self.tops.get(parts[0])
        return (
            top is not None
            and len(parts) > 1
            and parts[1] == "modules"
            and (is_platform_shaped(top))
        )


def script_place(path: Path) -> Place:
    return Place(None, test=_is_test_file(path.name), script=True)
