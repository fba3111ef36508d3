"""HS001-HS003: the import graph (grimp) against the platform's layering.

grimp resolves relative imports, ``from package import submodule`` and imports inside functions
the same way Python does, and reports each import's line. Imports guarded by ``if TYPE_CHECKING:``
count: a type-only import still ties the importer to the imported layer's types (mypy, readers
and refactorings follow it), and the fix is the same either way.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grimp
from grimp.exceptions import SourceSyntaxError

from hyperspot.lint_rules.catalogue import Finding
from hyperspot.lint_rules.project import (
    DOMAIN_MUST_NOT_IMPORT,
    Layout,
    LintUsageError,
    Place,
    SourceFile,
)

PLATFORM_PACKAGE = "hyperspot"
PLATFORM_DIR = Path(__file__).resolve().parents[1]


def import_findings(files: Iterable[SourceFile], lines: LineCache) -> list[Finding]:
    by_root: dict[Path, list[SourceFile]] = defaultdict(list)
    for file in files:
        if file.root is not None and file.name is not None:
            by_root[file.root].append(file)
    findings: list[Finding] = []
    # One graph per sys.path root: two roots may hold packages of the same name (fixtures do).
    for root, linted in sorted(by_root.items()):
        tops = {f.name.split(".")[0] for f in linted if f.name}
        layout = Layout({top: root / top for top in tops})
        # The platform's own packages join every graph, so that a project module reaching into
        # hyperspot.modules.<name> internals is seen too.
        layout.tops.setdefault(PLATFORM_PACKAGE, PLATFORM_DIR)
        graph = _build_graph(root, layout)
        if graph is None:
            continue
        for file in linted:
            assert file.name is not None
            findings.extend(_check_importer(graph, layout, file, lines))
    return findings


def _check_importer(
    graph: grimp.ImportGraph, layout: Layout, file: SourceFile, lines: LineCache
) -> Iterator[Finding]:
    assert file.name is not None
    importer = layout.place(file.name)
    for imported_name in sorted(graph.find_modules_directly_imported_by(file.name)):
        imported = layout.place(imported_name)
        verdict = _verdict(importer, imported, layout.in_modules_namespace(imported_name))
        if verdict is None:
            continue
        code, problem, why, fix = verdict
        details = graph.get_import_details(importer=file.name, imported=imported_name)
        for line in sorted({int(detail["line_number"]) for detail in details}):
            col = lines.indent(file.path, line) + 1
            yield Finding(file.path, line, col, code, problem, why, fix)


def _verdict(
    importer: Place, imported: Place, in_modules_namespace: bool
) -> tuple[str, str, str, str] | None:
    if importer.test:
        return None  # test code is exempt from every rule
    if importer.kernel and (imported.module_package is not None or in_modules_namespace):
        return (
            "HS003",
            f"the kernel module `{importer.name}` imports `{imported.name}`, module code",
            "the kernel must work with any set of modules (modules are optional, disabled, or "
            "written later) and modules depend on the kernel, never the reverse",
            "move what the kernel needs into the kernel, or invert the dependency: the kernel "
            "defines a hook or protocol and the module registers its implementation (e.g. via "
            "ctx.clients.register in its init hook)",
        )
    same_module = importer.module_package == imported.module_package
    if (
        same_module
        and importer.layer == "domain"
        and imported.module_package is not None
        and imported.layer in DOMAIN_MUST_NOT_IMPORT
    ):
        return (
            "HS001",
            f"domain code `{importer.name}` imports `{imported.name}`, the module's "
            f"{imported.layer}{'/' if imported.layer != 'module' else '.py'} layer",
            "the domain holds the rules and must stay free of HTTP and storage, so that it can "
            "be tested and changed without them; api/ and infra/ depend on the domain, not the "
            "reverse",
            "define what the domain needs in domain/ or contract/ (a data type, or a Protocol "
            "that infra/ implements) and let module.py pass the infra implementation in",
        )
    if (
        imported.module_package is not None
        and not same_module
        and imported.layer != "contract"
        and not (importer.cli or importer.kernel)
    ):
        target = imported.module_package
        return (
            "HS002",
            f"`{importer.name}` imports `{imported.name}`, an internal part of module "
            f"'{imported.module_name}'",
            "a module's contract is its only public face: its domain, api and infra may change "
            "at any release, and reaching into them couples two modules' internals",
            f"import types and the client protocol from `{target}.contract` and get the "
            "implementation at run time with ctx.clients.get(TheProtocol); if the contract "
            "lacks something, add it there (the CLI and tests are exempt)",
        )
    return None


def _build_graph(root: Path, layout: Layout) -> grimp.ImportGraph | None:
    with _on_sys_path(root):
        for top, folder in layout.tops.items():
            _check_resolves(top, folder)
        try:
            # cache_dir=None: never write a cache folder into the project being linted.
            return grimp.build_graph(*sorted(layout.tops), cache_dir=None)
        except SourceSyntaxError:
            # The file-level checks report the unparsable file (HS000); nothing to add here.
            return None


def _check_resolves(top: str, folder: Path) -> None:
    try:
        spec = importlib.util.find_spec(top)
    except ValueError:  # a module in sys.modules without a spec (e.g. __main__)
        spec = None
    locations = [Path(p).resolve() for p in (spec.submodule_search_locations or [])] if spec else []
    if folder.resolve() not in locations:
        where = ", ".join(map(str, locations)) or (spec.origin if spec else None) or "nowhere"
        raise LintUsageError(
            f"cannot analyse the imports of package '{top}' at {folder}: Python resolves that "
            f"name to {where} (already imported, or earlier on sys.path); run hyperspot lint "
            f"from an environment where '{top}' is this project's package"
        )


@contextmanager
def _on_sys_path(root: Path) -> Iterator[None]:
    entry = str(root)
    sys.path.insert(0, entry)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(entry)  # the first occurrence: ours


class LineCache:
    """Source lines of the linted files, read once."""

    def __init__(self) -> None:
        self._lines: dict[Path, list[str]] = {}

    def lines(self, path: Path) -> list[str]:
        if path not in self._lines:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                text = ""
            self._lines[path] = text.splitlines()
        return self._lines[path]

    def indent(self, path: Path, line: int) -> int:
        lines = self.lines(path)
        if not 1 <= line <= len(lines):
            return 0
        text = lines[line - 1]
        return len(text) - len(text.lstrip())
