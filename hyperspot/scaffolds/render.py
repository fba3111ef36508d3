"""Naming rules and template rendering for ``hyperspot new``: pure functions, no file writes.

Templates live in ``templates/<kind>/`` as ``*.tmpl`` files (package data, so ruff and mypy leave
them alone). ``module/`` becomes ``modules/<name>/``, ``tests/test_NAME*.py.tmpl`` becomes
``tests/test_<name>*.py``. Placeholders are ``${name}``-style only, so templates read like the code
they produce.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from importlib.metadata import entry_points
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from hyperspot.platform.errors import HyperspotError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
# Table, index and class names are built from the module name: keep them (and lines) short.
MAX_NAME_LENGTH = 24
LINE_LENGTH = 100
# Names that would confuse a project's layout or its tools, besides those computed below.
LAYOUT_NAMES = frozenset({"modules", "tests", "test", "conftest", "hyperspot", "setup", "noxfile"})
# What a gateway's contract defines and the plugin templates use; "{}" is the gateway's PascalName.
GATEWAY_CONTRACT = ("PLUGIN_SLOT", "{}Plugin", "{}Request", "{}Answer", "{}RefusedError", "{}Api")
# The platform's own gateways that accept plugins from a project: each with its plugin template.
BUILTIN_GATEWAYS = {"ai": "ai_provider"}


class Kind(StrEnum):
    REGULAR = "regular"
    GATEWAY = "gateway"
    PLUGIN = "plugin"


class ScaffoldError(HyperspotError):
    """A module cannot be generated as asked; nothing was written."""


# Only ${identifier}: a bare $ ($filter, a regular expression's end) is left alone.
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_]+)\}")


def substitute(template: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        try:
            return values[match[1]]
        except KeyError:  # pragma: no cover - a template bug, caught by the tests
            raise ScaffoldError(f"template placeholder {match[0]} has no value") from None

    return _PLACEHOLDER.sub(value, template)


def pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def reserved_names() -> dict[str, str]:
    """Names a new module may not take, each with the reason."""
    reserved = {name: "a name the project layout uses" for name in LAYOUT_NAMES}
    reserved.update(dict.fromkeys(sys.stdlib_module_names, "a standard library module"))
    hyperspot = resources.files("hyperspot")
    for item in hyperspot.iterdir():
        if item.is_dir() and item.joinpath("__init__.py").is_file():
            reserved[item.name] = "a hyperspot package"
    for entry in entry_points(group="hyperspot.modules"):
        reserved[entry.name] = "an installed module"
    return reserved


def check_name(name: str, modules_dir: Path) -> None:
    """Refuse a name that is no lower_snake identifier, is reserved or shadows a package."""
    if not NAME_PATTERN.match(name):
        raise ScaffoldError(
            f"invalid module name {name!r}: use lower_snake_case (a-z, 0-9, single '_' between "
            "words, starting with a letter)"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise ScaffoldError(
            f"module name {name!r} is longer than {MAX_NAME_LENGTH} characters (it prefixes "
            "table and index names)"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise ScaffoldError(f"module name {name!r} is a Python keyword")
    why = reserved_names().get(name)
    if why is not None:
        raise ScaffoldError(f"module name {name!r} is reserved: {why}")
    # The server imports modules/<name> as the top-level package <name>: it must not shadow one.
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # pragma: no cover - a broken package of that name
        spec = None
    if spec is not None and spec.origin and not _inside(Path(spec.origin), modules_dir):
        raise ScaffoldError(
            f"module name {name!r} would shadow the installed package at {spec.origin}"
        )


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


@dataclass(frozen=True)
class Scaffold:
    kind: Kind
    name: str
    gateway: str | None = None
    # A plugin of one of the platform's gateways (BUILTIN_GATEWAYS), not of a project's own.
    builtin_gateway: bool = False

    def __post_init__(self) -> None:
        if self.builtin_gateway and self.gateway not in BUILTIN_GATEWAYS:
            raise ScaffoldError(f"{self.gateway!r} is not a built-in gateway that takes plugins")

    @property
    def template(self) -> str:
        """The folder of ``templates/`` this module is rendered from."""
        if self.builtin_gateway and self.gateway is not None:
            return BUILTIN_GATEWAYS[self.gateway]
        return self.kind.value

    @property
    def values(self) -> dict[str, str]:
        values = {
            "name": self.name,
            "Name": pascal(self.name),
            "NAME": self.name.upper(),
            "title": self.name.replace("_", " ").capitalize(),
            # Model ids take no '_' (MODEL_ID_PATTERN of the ai contract): dashes instead.
            "slug": self.name.replace("_", "-"),
        }
        if self.gateway is not None:
            values |= {"gateway": self.gateway, "Gateway": pascal(self.gateway)}
        return values

    @property
    def first_party(self) -> frozenset[str]:
        # A built-in gateway is imported from the hyperspot package: third-party in a project.
        gateway = None if self.builtin_gateway else self.gateway
        return frozenset(filter(None, (self.name, gateway)))

    def render(self) -> dict[PurePosixPath, str]:
        """Every generated file, by its path relative to the project folder."""
        root = resources.files("hyperspot.scaffolds").joinpath("templates", self.template)
        files: dict[PurePosixPath, str] = {}
        for relative, template in _walk(root, PurePosixPath()):
            target = _target(relative, self.name)
            text = substitute(template.read_text(encoding="utf-8"), self.values)
            files[target] = tidy_imports(text, self.first_party)
        return files


def _walk(
    folder: Traversable, prefix: PurePosixPath
) -> Iterable[tuple[PurePosixPath, Traversable]]:
    for item in sorted(folder.iterdir(), key=lambda i: i.name):
        if item.is_dir():
            yield from _walk(item, prefix / item.name)
        elif item.name.endswith(".tmpl"):
            yield prefix / item.name.removesuffix(".tmpl"), item


def _target(relative: PurePosixPath, name: str) -> PurePosixPath:
    parts = relative.parts
    if parts[0] == "module":
        return PurePosixPath("modules", name, *parts[1:])
    # Folders too: a gateway's tests keep their stand-in plugin module in tests/NAME_stubs/.
    return PurePosixPath(*(part.replace("NAME", name) for part in parts))


def render_project(project_name: str) -> str:
    """The pyproject.toml of a project that has none: the platform's ruff, mypy, pytest rules."""
    template = resources.files("hyperspot.scaffolds").joinpath("templates", "project")
    text = template.joinpath("pyproject.toml.tmpl").read_text(encoding="utf-8")
    return substitute(text, {"project": project_name})


# Import sorting. Which of a project's module packages sorts first depends on their names, so the
# first-party import block cannot be written in a template: it is sorted here the way ruff's isort
# does (order-by-type, case-insensitive natural order), so that generated code is ruff-clean.

_FROM_IMPORT = re.compile(r"^from (?P<module>[\w.]+) import (?P<names>[\w, ]+)$")


def _natural(text: str) -> tuple[tuple[int, int], ...]:
    # Digit runs compare as numbers; any other character by its code point (as natord does).
    return tuple(
        (ord("0"), int(token)) if token.isdigit() else (ord(token), 0)
        for token in re.findall(r"\d+|\D", text)
    )


def _member_key(name: str) -> tuple[int, tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    if len(name) > 1 and name.isupper():
        kind = 0  # CONSTANT
    elif name[:1].isupper():
        kind = 1  # Class
    else:
        kind = 2  # function or variable
    return kind, _natural(name.lower()), _natural(name)


def _from_import(module: str, names: list[str]) -> list[str]:
    line = f"from {module} import {', '.join(names)}"
    if len(line) <= LINE_LENGTH:
        return [line]
    return [f"from {module} import (", *(f"    {name}," for name in names), ")"]


def tidy_imports(text: str, first_party: Iterable[str]) -> str:
    """Sort each run of one-line ``from`` imports of ``first_party`` packages, wrap long ones."""
    packages = set(first_party)
    lines = text.split("\n")
    result: list[str] = []
    run: list[tuple[str, list[str]]] = []

    def flush() -> None:
        for module, names in sorted(run, key=lambda item: _natural(item[0].lower())):
            result.extend(_from_import(module, sorted(names, key=_member_key)))
        run.clear()

    for line in lines:
        match = _FROM_IMPORT.match(line)
        if match and match["module"].split(".")[0] in packages:
            run.append((match["module"], [n.strip() for n in match["names"].split(",")]))
            continue
        flush()
        result.append(line)
    flush()
    return "\n".join(result)


def contract_names(contract: Path) -> set[str]:
    """The top-level class and variable names a contract package's ``__init__.py`` defines."""
    try:
        source = contract.read_text(encoding="utf-8")
    except OSError:
        return set()
    classes = re.findall(r"^class (\w+)\b", source, flags=re.MULTILINE)
    variables = re.findall(r"^(\w+)\s*(?::[^=\n]*)?=", source, flags=re.MULTILINE)
    return {*classes, *variables}


def is_gateway(module_dir: Path) -> bool:
    """Whether a project module offers the plugin contract the plugin templates implement."""
    found = contract_names(module_dir / "contract" / "__init__.py")
    wanted = {name.format(pascal(module_dir.name)) for name in GATEWAY_CONTRACT}
    return (module_dir / "module.py").is_file() and wanted <= found


def find_gateways(modules_dir: Path) -> list[str]:
    if not modules_dir.is_dir():
        return []
    return sorted(p.name for p in modules_dir.iterdir() if p.is_dir() and is_gateway(p))


def gateways_listed(modules_dir: Path) -> str:
    """The gateways a plugin may implement, for messages: the project's, then the built-in ones."""
    found = ", ".join(find_gateways(modules_dir)) or "none yet"
    return f"gateways in {modules_dir}: {found}; built in: {', '.join(BUILTIN_GATEWAYS)}"
