"""``hyperspot gts``: the GTS operations (spec §9.4) on local files, for development and CI.

Each command loads GTS type schemas and instances from files and folders (JSON, JSONC with
comments, YAML; one document or a list of documents per file) into an in-memory registry and runs
one operation on it. ``get`` and ``query`` may ask a running server instead (``--url``). A failed
validation, an incompatibility, a missing entity or invalid input exits non-zero with one line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from hyperspot.cli.common import fail

if TYPE_CHECKING:
    from hyperspot.platform.gts import GtsStore

gts_app = typer.Typer(
    help="GTS identifiers, type schemas and instances: validate, parse, match, cast, query.",
    no_args_is_help=True,
)

SUFFIXES = (".json", ".jsonc", ".yaml", ".yml")
RefPolicy = Literal["none", "any-present", "any-valid"]

PathsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--path",
        "-p",
        help="A file or folder of type schemas and instances (repeatable).",
        exists=True,
        show_default=False,
    ),
]
RefOption = Annotated[
    str,
    typer.Option(
        "--ref-validation",
        help="x-gts-ref policy (spec §9.6): none, any-present or any-valid.",
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Ask a running server instead, e.g. http://127.0.0.1:8080/gts.",
        show_default=False,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="HYPERSPOT_TOKEN",
        help="Bearer credential for --url (not needed in development mode).",
        show_default=False,
    ),
]


# -- reading files ----------------------------------------------------------------------------


def strip_jsonc(text: str) -> str:
    """JSON with ``//`` and ``/* */`` comments and trailing commas made plain JSON."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        char = text[i]
        if in_string:
            out.append(char)
            if char == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if char == '"':
                in_string = False
            i += 1
        elif char == '"':
            in_string = True
            out.append(char)
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ValueError(f"unterminated block comment at offset {i}")
            i = end + 2
        else:
            out.append(char)
            i += 1
    return _drop_trailing_commas("".join(out))


def _drop_trailing_commas(text: str) -> str:
    out: list[str] = []
    in_string = False
    escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            out.append(char)
            continue
        if char == '"':
            in_string = True
        elif char in "]}":
            # A comma followed only by white space before a closing bracket goes.
            j = len(out) - 1
            while j >= 0 and out[j].isspace():
                j -= 1
            if j >= 0 and out[j] == ",":
                del out[j]
        out.append(char)
    return "".join(out)


def read_documents(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of one file; raises ValueError naming what is wrong."""
    import yaml

    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            loaded: Any = list(yaml.safe_load_all(text))
            if len(loaded) == 1:
                loaded = loaded[0]
        else:
            loaded = json.loads(strip_jsonc(text) if path.suffix == ".jsonc" else text)
    except (ValueError, yaml.YAMLError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: not valid {path.suffix[1:].upper()}: {first}") from None
    documents = loaded if isinstance(loaded, list) else [loaded]
    for document in documents:
        if not isinstance(document, dict):
            raise ValueError(f"{path}: a GTS entity must be a JSON object")
    return documents


def files_under(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES))
        else:
            found.append(path)
    return found


def load_store(paths: list[Path]) -> GtsStore:
    """Every entity of ``paths`` in one registry; a file or entity that cannot be read fails."""
    from hyperspot.platform.gts import GtsEntity, GtsError, GtsStore

    store = GtsStore()
    for file in files_under(paths):
        try:
            documents = read_documents(file)
        except (OSError, ValueError) as error:
            raise fail(str(error)) from None
        for index, document in enumerate(documents):
            try:
                entity = GtsEntity.from_content(document)
            except GtsError as error:
                where = f"{file}" if len(documents) == 1 else f"{file} (document {index + 1})"
                raise fail(f"{where}: {error}") from None
            store.put(entity)
    return store


def _policy(value: str) -> RefPolicy:
    if value not in ("none", "any-present", "any-valid"):
        raise fail(f"--ref-validation must be none, any-present or any-valid, not {value!r}")
    return value  # type: ignore[return-value]


def _emit(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


# -- commands ---------------------------------------------------------------------------------


@gts_app.command()
def validate(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Files and folders to load and validate.", exists=True),
    ],
    entity_id: Annotated[
        list[str] | None,
        typer.Option("--id", help="Validate only this entity (repeatable).", show_default=False),
    ] = None,
    ref_validation: RefOption = "any-valid",
) -> None:
    """Validate every loaded type schema and instance (or those named with --id)."""
    from hyperspot.platform.gts.validation import validate_entity

    policy = _policy(ref_validation)
    store = load_store(paths)
    wanted = entity_id or store.ids()
    if not wanted:
        raise fail("no GTS entities found in " + ", ".join(map(str, paths)))
    failures = 0
    for gts_id in wanted:
        if gts_id not in store:
            raise fail(f"no entity {gts_id!r} in the loaded files")
        result = validate_entity(store, gts_id, policy)
        if result.get("ok"):
            typer.echo(f"ok       {gts_id}")
        else:
            failures += 1
            typer.echo(f"invalid  {gts_id}: {result.get('error', '')}")
    if failures:
        raise fail(f"{failures} of {len(wanted)} entities failed validation")


@gts_app.command()
def parse(gts_id: Annotated[str, typer.Argument(help="A GTS identifier or pattern.")]) -> None:
    """Parse an identifier into its segments (OP#3)."""
    from hyperspot.platform.gts import parse_id

    body = parse_id(gts_id)
    _emit(body)
    if not body.get("ok"):
        raise fail(f"invalid GTS identifier: {body.get('error')}")


@gts_app.command()
def match(
    pattern: Annotated[str, typer.Argument(help="A GTS wildcard pattern, e.g. gts.x.core.*")],
    candidate: Annotated[str, typer.Argument(help="The identifier to test.")],
) -> None:
    """Does CANDIDATE match PATTERN (OP#4)? Exits 1 when it does not."""
    from hyperspot.platform.gts import match_id_pattern

    body = match_id_pattern(candidate, pattern)
    _emit(body)
    if body.get("error"):
        raise fail(str(body["error"]))
    if not body.get("match"):
        raise typer.Exit(code=1)


@gts_app.command()
def uuid(gts_id: Annotated[str, typer.Argument(help="A GTS identifier.")]) -> None:
    """Print the identifier's deterministic UUID (OP#5)."""
    from hyperspot.platform.gts import GtsError, gts_uuid

    try:
        typer.echo(str(gts_uuid(gts_id)))
    except GtsError as error:
        raise fail(f"invalid GTS identifier: {error}") from None


@gts_app.command()
def compat(
    old_type_id: Annotated[str, typer.Argument(help="The earlier type schema's id.")],
    new_type_id: Annotated[str, typer.Argument(help="The later type schema's id.")],
    paths: PathsOption = None,
    mode: Annotated[
        str, typer.Option(help="The relation that must hold: backward, forward or full.")
    ] = "backward",
) -> None:
    """Check two type schemas' evolution compatibility (OP#8); exits 1 unless MODE holds."""
    from hyperspot.platform.gts import GtsError
    from hyperspot.platform.gts.compat import check_compatibility

    if mode not in ("backward", "forward", "full"):
        raise fail(f"--mode must be backward, forward or full, not {mode!r}")
    store = load_store(paths or [])
    try:
        body = check_compatibility(store, old_type_id, new_type_id)
    except GtsError as error:
        raise fail(str(error)) from None
    _emit(body)
    verdict = body.get(f"{mode}_compatibility")
    if verdict != "compatible":
        reason = body.get("error") or f"{mode} compatibility is {verdict}"
        raise fail(f"{old_type_id} -> {new_type_id}: {reason}")


@gts_app.command()
def cast(
    instance_id: Annotated[str, typer.Argument(help="The instance to cast.")],
    to_type_id: Annotated[str, typer.Argument(help="The type schema to cast it to.")],
    paths: PathsOption = None,
) -> None:
    """Cast an instance to another minor version of its type (OP#9) and print it."""
    from hyperspot.platform.gts import GtsError
    from hyperspot.platform.gts.cast import cast as cast_instance

    store = load_store(paths or [])
    try:
        body = cast_instance(store, instance_id, to_type_id)
    except GtsError as error:
        raise fail(str(error)) from None
    if body.get("error") or body.get("casted_entity") is None:
        raise fail(f"cannot cast {instance_id} to {to_type_id}: {body.get('error', 'refused')}")
    _emit(body)


@gts_app.command()
def query(
    expr: Annotated[str, typer.Argument(help='A GTS query, e.g. gts.x.core.*[status="on"].')],
    paths: PathsOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many results.")] = 100,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Run a GTS query (OP#10) over the loaded files, or a server's registry with --url."""
    if url is not None:
        body = _remote(url, "/query", {"expr": expr, "limit": str(limit)}, token)
    else:
        from hyperspot.platform.gts.query import query as run_query

        body = run_query(load_store(paths or []), expr, limit)
    _emit(body)
    if body.get("error"):
        raise fail(f"invalid query: {body['error']}")


@gts_app.command()
def get(
    gts_id: Annotated[str, typer.Argument(help="The entity's GTS identifier.")],
    paths: PathsOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Print an entity's document, from the loaded files or a server's registry (--url)."""
    if url is not None:
        from urllib.parse import quote

        body = _remote(url, f"/entities/{quote(gts_id, safe='')}", {}, token, missing_ok=True)
        if not body.get("ok"):
            raise fail(str(body.get("error") or f"no entity {gts_id!r}"))
        _emit(body.get("content"))
        return
    entity = load_store(paths or []).get(gts_id)
    if entity is None:
        raise fail(f"no entity {gts_id!r} in the loaded files")
    _emit(entity.content)


def _remote(
    url: str, path: str, params: dict[str, str], token: str | None, *, missing_ok: bool = False
) -> dict[str, Any]:
    """GET a /gts operation of a running server; a transport error or refusal fails."""
    import httpx

    headers = {"Accept": "application/json"}
    credential = token or os.environ.get("HYPERSPOT_TOKEN")
    if credential:
        headers["Authorization"] = f"Bearer {credential}"
    try:
        response = httpx.get(url.rstrip("/") + path, params=params, headers=headers, timeout=30)
    except httpx.HTTPError as error:
        raise fail(f"cannot reach {url}: {error}") from None
    if response.status_code == 404 and missing_ok:
        return dict(response.json())
    if response.status_code != 200:
        try:
            detail = response.json().get("detail") or response.text
        except ValueError:
            detail = response.text
        raise fail(f"{url}{path}: {response.status_code} {str(detail).strip()[:200]}")
    return dict(response.json())
