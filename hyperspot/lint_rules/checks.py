"""HS004-HS009: checks on one file's syntax tree.

These are static approximations, tuned to flag what the platform's conventions make recognisable
(entities reached as ``entities.X``, Pony imported from ``pony.orm``, builders from
``api.operation``) and to stay quiet where they cannot know. Where a check cannot follow the code
(a builder handed to a helper, SQL text returned by a function) it says nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hyperspot.lint_rules.catalogue import Finding
from hyperspot.lint_rules.project import Place

HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
ACCESS_DECISIONS = frozenset({"public", "authenticated", "require", "internal"})
# pony.orm functions that run a query over entity classes.
PONY_QUERIES = frozenset(
    {"select", "left_join", "get", "exists", "count", "sum", "min", "max", "avg", "delete"}
)
ENTITY_METHODS = frozenset(
    {"select", "select_by_sql", "select_random", "get", "get_by_sql", "get_for_update", "exists"}
)
# A Pony Database (ctx.db.schema) or a DB-API connection or cursor.
DB_METHODS = frozenset({"select", "get", "exists", "execute", "executemany", "insert"})
DB_NAMES = frozenset({"db", "database", "schema", "conn", "connection", "cursor", "cur"})
SQL_METHODS = frozenset(
    {"execute", "executemany", "executescript", "mogrify", "select_by_sql", "get_by_sql"}
)
SQL_DB_METHODS = frozenset({"select", "get", "exists"})
SQL_FUNCTIONS = frozenset(
    {
        "sqlalchemy.text",
        "sqlalchemy.sql.text",
        "sqlalchemy.sql.expression.text",
        "pony.orm.raw_sql",
        "pony.orm.select",
        "pony.orm.get",
        "pony.orm.exists",
    }
)
SQL_KEYWORDS = frozenset({"sql", "query", "statement", "operation"})
NOT_ENTITIES = frozenset({"Path", "PurePath"})

_HTTP = (
    "use an httpx.AsyncClient and await it (traced_http_client() from "
    "hyperspot.platform.observability.instrument also propagates the trace)"
)
_SUBPROCESS = (
    "use `await asyncio.create_subprocess_exec(...)`, or `await asyncio.to_thread(subprocess.run, "
    "...)`"
)
BLOCKING_CALLS: dict[str, str] = {
    "time.sleep": "use `await asyncio.sleep(seconds)`",
    "urllib.request.urlopen": _HTTP,
    "httpx.Client": _HTTP,
    **{f"httpx.{verb}": _HTTP for verb in ("get", "post", "put", "patch", "delete", "head")},
    **{f"httpx.{verb}": _HTTP for verb in ("options", "request", "stream")},
    **{f"subprocess.{name}": _SUBPROCESS for name in ("run", "call", "check_call")},
    "subprocess.check_output": _SUBPROCESS,
    "os.system": _SUBPROCESS,
}
FILE_IO_METHODS = frozenset({"read_text", "write_text", "read_bytes", "write_bytes"})

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


@dataclass
class _Frame:
    node: ast.AST
    is_async: bool
    loops: int = 0
    sql_names: set[str] = field(default_factory=set)  # locals holding SQL built from strings


def check_tree(path: Path, place: Place, tree: ast.Module) -> list[Finding]:
    checker = _Checker(path, place, tree)
    checker.visit(tree)
    return checker.findings


def _short(node: ast.AST, limit: int = 60) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cap_words(name: str) -> bool:
    return name[:1].isupper() and any(c.islower() for c in name)


def _final_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def builds_string(node: ast.AST) -> bool:
    """Text assembled at run time from pieces: an f-string, ``%``, ``.format`` or ``+``."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _is_str(node.left) or builds_string(node.left)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        stringy = any(_is_str(s) or builds_string(s) for s in (node.left, node.right))
        return stringy and not (_is_str(node.left) and _is_str(node.right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format" and (
            _is_str(node.func.value) or builds_string(node.func.value)
        )
    return False


def _scope_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of one scope, not those of the functions and classes nested in it."""
    pending = list(ast.iter_child_nodes(scope))
    while pending:
        node = pending.pop()
        yield node
        if not isinstance(node, _SCOPES):
            pending.extend(ast.iter_child_nodes(node))


def _sql_names(scope: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in _scope_nodes(scope):
        if isinstance(node, ast.Assign) and builds_string(node.value):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
            value = node.value
            if isinstance(node, ast.AugAssign):
                # sql += text: appending anything but a literal builds the text at run time.
                built = isinstance(node.op, ast.Add) and not _is_str(node.value)
            else:
                built = value is not None and builds_string(value)
            if built:
                names.add(node.target.id)
    return names


class _Checker(ast.NodeVisitor):
    def __init__(self, path: Path, place: Place, tree: ast.Module) -> None:
        self.path = path
        self.place = place
        self.findings: list[Finding] = []
        self.parents = {
            child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)
        }
        self.imports = self._imports(tree)
        self.entity_names = self._entity_names(tree)
        self.frames = [_Frame(tree, is_async=False, sql_names=_sql_names(tree))]
        library = not place.test
        self.check_scoped_queries = library and place.module_package is not None
        self.check_handlers = self.check_scoped_queries and place.layer in ("api", "domain")
        self.check_print = library and place.name is not None and not (place.cli or place.script)
        self.check_general = library

    # -- bookkeeping -----------------------------------------------------------------------

    def _imports(self, tree: ast.Module) -> dict[str, str]:
        imports: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    local = alias.asname or alias.name.split(".")[0]
                    imports[local] = alias.name if alias.asname else local
            elif isinstance(node, ast.ImportFrom):
                base = "." * node.level + (node.module or "")
                separator = "." if node.module else ""
                for alias in node.names:
                    imports[alias.asname or alias.name] = f"{base}{separator}{alias.name}"
        return imports

    def _entity_names(self, tree: ast.Module) -> set[str]:
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                (_final_name(base) or "").endswith(("Entity", "TenantScoped", "Global"))
                for base in node.bases
            ):
                names.add(node.name)
            elif isinstance(node, ast.ImportFrom) and "infra" in (node.module or "").split("."):
                names.update(
                    a.asname or a.name for a in node.names if _cap_words(a.asname or a.name)
                )
        # Local aliases (Note = self.entities.Note), two rounds for an alias of an alias.
        for _ in range(2):
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign) and self._entity_like(node.value, names):
                    names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        return names

    def _entity_like(self, node: ast.AST, known: set[str], loose: bool = False) -> bool:
        if isinstance(node, ast.Attribute) and _final_name(node.value) == "entities":
            return True  # the platform's convention: entities travel as an `entities` holder
        if isinstance(node, ast.Name) and node.id in known:
            return True
        final = _final_name(node)
        return loose and final is not None and _cap_words(final) and final not in NOT_ENTITIES

    def qualified(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return self.imports.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def report(self, node: ast.AST, code: str, problem: str, why: str, fix: str) -> None:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0) + 1
        self.findings.append(Finding(self.path, line, col, code, problem, why, fix))

    # -- scopes and loops ------------------------------------------------------------------

    def _visit_scope(self, node: ast.AST, outside: list[ast.AST], body: list[ast.AST]) -> None:
        # Decorators, defaults and bases run in the enclosing scope; only the body runs inside.
        for part in outside:
            self.visit(part)
        self.frames.append(
            _Frame(node, isinstance(node, ast.AsyncFunctionDef), sql_names=_sql_names(node))
        )
        for part in body:
            self.visit(part)
        self.frames.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_scope(node, [*node.decorator_list, node.args], [*node.body])

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_scope(node, [*node.decorator_list, node.args], [*node.body])

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_scope(node, [node.args], [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._visit_scope(node, [*node.decorator_list, *node.bases, *node.keywords], [*node.body])

    def _visit_loop(self, node: ast.AST, once: list[ast.AST]) -> None:
        # `once`: the parts evaluated before the loop starts (the first iterable).
        for part in once:
            self.visit(part)
        self.frames[-1].loops += 1
        for child in ast.iter_child_nodes(node):
            if all(child is not part for part in once):
                self.visit(child)
        self.frames[-1].loops -= 1

    def visit_For(self, node: ast.For) -> None:
        self._visit_loop(node, [node.iter])

    def visit_AsyncFor(self, node: ast.AsyncFor) -> None:
        self._visit_loop(node, [node.iter])

    def visit_While(self, node: ast.While) -> None:
        self._visit_loop(node, [])

    def _visit_comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
    ) -> None:
        first, *others = node.generators
        self.visit(first.iter)  # evaluated once, before the loop
        self.frames[-1].loops += 1
        elements = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        for part in [*elements, first.target, *first.ifs, *others]:
            self.visit(part)
        self.frames[-1].loops -= 1

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._visit_comprehension(node)

    def visit_SetComp(self, node: ast.SetComp) -> None:
        self._visit_comprehension(node)

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._visit_comprehension(node)

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> None:
        self._visit_comprehension(node)

    # -- the checks ------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        if self.check_scoped_queries:
            self._scoped_query(node)
        if self.check_general:
            self._sql_text(node)
            if self.frames[-1].is_async:
                self._blocking(node)
            self._operation_access(node)
        if self.check_print and isinstance(node.func, ast.Name) and node.func.id == "print":
            self.report(
                node,
                "HS009",
                "print() in library code",
                "library code runs inside the server, where stdout is no log: the output has no "
                "level, request id or trace, is not masked for secrets, and may garble the CLI's "
                "output",
                "log instead (ctx.logger in a module, logging.getLogger(__name__) elsewhere); "
                "commands that talk to a person belong in the CLI package",
            )
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if (
            self.check_scoped_queries
            and isinstance(node.ctx, ast.Load)
            and self._entity_like(node.value, self.entity_names)
        ):
            self._unscoped(node, f"`{_short(node)}` reads an entity by key")
        self.generic_visit(node)

    def _scoped_query(self, node: ast.Call) -> None:
        func = node.func
        qualified = self.qualified(func) or ""
        if qualified.startswith("pony.orm.") and qualified.rsplit(".", 1)[-1] in PONY_QUERIES:
            self._unscoped(node, f"`{_short(node)}` runs a Pony query directly")
        elif not isinstance(func, ast.Attribute):
            return
        elif func.attr in ENTITY_METHODS and self._entity_like(
            func.value, self.entity_names, loose=True
        ):
            self._unscoped(node, f"`{_short(node)}` queries an entity class directly")
        elif func.attr in DB_METHODS and self._db_like(func.value):
            self._unscoped(node, f"`{_short(node)}` queries the database directly")

    def _unscoped(self, node: ast.AST, problem: str) -> None:
        self.report(
            node,
            "HS004",
            f"{problem}, outside the scoped session",
            "only ScopedSession filters rows by the caller's visible tenants; this reads or "
            "changes every tenant's rows (on MariaDB and SQLite nothing else stops it)",
            "inside `await ctx.db.run(call.security, work)`, use the session's query/find/get/"
            "count/create/update/delete (e.g. `session.get(entities.Note, key)`); deliberate "
            "cross-tenant work goes through `ctx.db.run_system(reason, work)`",
        )

    @staticmethod
    def _db_like(node: ast.AST) -> bool:
        final = (_final_name(node) or "").lstrip("_").lower()
        return final in DB_NAMES or final.endswith("_db")

    def _sql_text(self, node: ast.Call) -> None:
        func = node.func
        qualified = self.qualified(func) or ""
        sink = (
            qualified in SQL_FUNCTIONS
            or (isinstance(func, ast.Attribute) and func.attr in SQL_METHODS)
            or (
                isinstance(func, ast.Attribute)
                and func.attr in SQL_DB_METHODS
                and self._db_like(func.value)
            )
        )
        if not sink:
            return
        texts = [*node.args[:1], *(k.value for k in node.keywords if k.arg in SQL_KEYWORDS)]
        for text in texts:
            built = builds_string(text) or (
                isinstance(text, ast.Name) and text.id in self.frames[-1].sql_names
            )
            if built:
                self.report(
                    text,
                    "HS005",
                    f"SQL text passed to `{_short(func)}` is built from strings",
                    "values pasted into SQL text are an injection hole (and defeat the "
                    "database's statement cache); even trusted values break on a quote",
                    "keep the SQL a constant and pass values as bound parameters (e.g. "
                    '`cursor.execute("... WHERE id = %s", (key,))`, Pony `$name` / a dict); '
                    "identifiers cannot be bound: quote them with the driver's helper (e.g. "
                    "psycopg2.sql.Identifier) or pick them from a fixed list",
                )

    def _blocking(self, node: ast.Call) -> None:
        qualified = self.qualified(node.func) or ""
        fix = BLOCKING_CALLS.get(qualified)
        if fix is None and qualified.startswith("requests."):
            fix = _HTTP
        if fix is not None:
            self._report_blocking(node, f"`{qualified}(...)` blocks", fix)
            return
        in_loop = self.frames[-1].loops > 0
        file_io = qualified == "open" or (
            isinstance(node.func, ast.Attribute) and node.func.attr in FILE_IO_METHODS
        )
        if in_loop and file_io:
            self._report_blocking(
                node,
                f"file I/O `{_short(node.func)}(...)` in a loop blocks",
                "do the whole loop in a thread (`await asyncio.to_thread(function)`), or read "
                "the file once outside the loop",
            )

    def _report_blocking(self, node: ast.Call, problem: str, fix: str) -> None:
        function = self.frames[-1].node
        name = getattr(function, "name", "?")
        self.report(
            node,
            "HS006",
            f"{problem} inside `async def {name}`",
            "a blocking call stops the event loop: every other request this worker serves "
            "waits until it returns",
            fix,
        )

    def _operation_access(self, node: ast.Call) -> None:
        func = node.func
        if not (isinstance(func, ast.Attribute) and func.attr == "operation" and node.args):
            return
        first = node.args[0]
        by_method = _is_str(first) and str(getattr(first, "value", "")).upper() in HTTP_METHODS
        if not by_method and "api" not in (_final_name(func.value) or "").lower():
            return
        methods = self._builder_methods(node)
        if methods is None or methods & ACCESS_DECISIONS:
            return
        self.report(
            node,
            "HS007",
            f"operation `{_short(node)}` declares no access",
            "an operation's access must be an explicit decision, so that no tenant data is "
            "served to anyone by omission (the gateway also refuses it at start-up)",
            "add `.require('resource:action')` (a permission), `.authenticated()` (any valid "
            "credential) or `.public()` (anyone, no credential) to the builder chain",
        )

    def _builder_methods(self, start: ast.Call) -> set[str] | None:
        """Methods called on the builder; None when it escapes where this cannot follow it."""
        methods, top = self._chain(start)
        parent = self.parents.get(top)
        if isinstance(parent, ast.Expr) or (
            isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef)
            and top in parent.decorator_list
        ):
            return methods
        if not (isinstance(parent, ast.Assign) and parent.value is top):
            return None  # returned, passed on, stored: the decision may be made elsewhere
        if len(parent.targets) != 1 or not isinstance(parent.targets[0], ast.Name):
            return None
        name = parent.targets[0].id
        uses = [
            node
            for node in ast.walk(self._enclosing_scope(parent))
            if isinstance(node, ast.Name) and node.id == name
        ]
        # Uses in source order up to the name's next assignment (no flow analysis beyond that).
        uses.sort(key=lambda n: (n.lineno, n.col_offset))
        for node in uses:
            if (node.lineno, node.col_offset) <= (parent.lineno, parent.col_offset):
                continue
            if not isinstance(node.ctx, ast.Load):
                break
            more, used = self._chain(node)
            if used is node:
                return None  # the builder itself is passed or returned
            methods |= more
        return methods

    def _chain(self, node: ast.AST) -> tuple[set[str], ast.AST]:
        methods: set[str] = set()
        current = node
        while True:
            parent = self.parents.get(current)
            if not (isinstance(parent, ast.Attribute) and parent.value is current):
                return methods, current
            methods.add(parent.attr)
            call = self.parents.get(parent)
            if not (isinstance(call, ast.Call) and call.func is parent):
                return methods, parent
            current = call

    def _enclosing_scope(self, node: ast.AST) -> ast.AST:
        current = self.parents.get(node)
        while current is not None and not isinstance(current, _SCOPES):
            current = self.parents.get(current)
        return current if current is not None else self.frames[0].node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if self.check_handlers:
            swallowed = all(
                isinstance(s, ast.Pass)
                or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
                for s in node.body
            )
            if node.type is None:
                verb = "swallows" if swallowed else "catches"
                self.report(
                    node,
                    "HS008",
                    f"bare `except:` {verb} every exception, cancellation and SystemExit included",
                    "a bare except also catches asyncio.CancelledError and SystemExit, so "
                    "requests cannot be cancelled nor the server stopped cleanly, and bugs "
                    "vanish without a trace",
                    "catch the specific exceptions you expect (`except LookupError:`) and "
                    "handle them, or let them propagate: the gateway answers a 500 "
                    "problem+json and logs it with its trace",
                )
            elif swallowed:
                self.report(
                    node,
                    "HS008",
                    f"`except {_short(node.type)}:` swallows the exception (its body does nothing)",
                    "a silently ignored error turns into wrong data or a confusing failure "
                    "later, with no log line pointing here",
                    "handle it (translate it to a Problem or a domain error, retry, or fall back "
                    "with a log line), or let it propagate",
                )
        self.generic_visit(node)
