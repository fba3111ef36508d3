"""``hyperspot gts``: the GTS operations on local files (JSON, JSONC, YAML), and on a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import Launcher
from typer.testing import CliRunner

from hyperspot.cli.gts import read_documents, strip_jsonc
from hyperspot.cli.main import app
from hyperspot.platform.gts import gts_uuid

SCHEMA = "http://json-schema.org/draft-07/schema#"
BASE = "gts.x.cli.events.type.v1~"
DERIVED = f"{BASE}x.cli._.order.v1.0~"
GOOD = f"{DERIVED}x.cli._.first.v1"
BAD = f"{DERIVED}x.cli._.second.v1"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["gts", *args])
    return result.exit_code, result.output


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A base type in JSONC, a derived type in YAML, an instance in JSON."""
    (tmp_path / "types").mkdir()
    (tmp_path / "types" / "base.schema.jsonc").write_text(
        "// the base event\n{\n"
        f'  "$schema": "{SCHEMA}", /* dialect */\n'
        f'  "$id": "gts://{BASE}",\n'
        '  "type": "object",\n'
        '  "required": ["id", "amount"],\n'
        '  "properties": {"id": {"type": "string"}, "amount": {"type": "number"},\n'
        '                 "url": {"type": "string", "default": "http://x//y"},},\n'
        "}\n",
        encoding="utf-8",
    )
    derived = {
        "$schema": SCHEMA,
        "$id": f"gts://{DERIVED}",
        "type": "object",
        "allOf": [
            {"$ref": f"gts://{BASE}"},
            {"properties": {"amount": {"type": "number", "minimum": 0}}},
        ],
    }
    (tmp_path / "types" / "order.yaml").write_text(yaml.safe_dump(derived), encoding="utf-8")
    (tmp_path / "first.json").write_text(json.dumps({"id": GOOD, "amount": 3}), encoding="utf-8")
    return tmp_path


def test_strip_jsonc_keeps_strings_and_drops_comments_and_trailing_commas() -> None:
    text = '{"a": "x // not a comment /* nor this */", // yes\n "b": [1, 2,], /* c */ "c": "\\"",}'
    assert json.loads(strip_jsonc(text)) == {
        "a": "x // not a comment /* nor this */",
        "b": [1, 2],
        "c": '"',
    }
    with pytest.raises(ValueError, match="unterminated"):
        strip_jsonc('{"a": 1 /* open')


def test_read_documents_refuses_what_is_not_an_entity(tmp_path: Path) -> None:
    listed = tmp_path / "many.json"
    listed.write_text('[{"id": "a"}, {"id": "b"}]', encoding="utf-8")
    assert [d["id"] for d in read_documents(listed)] == ["a", "b"]
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("- 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must be a JSON object"):
        read_documents(scalar)


def test_validate_files_and_folders(folder: Path) -> None:
    code, output = run("validate", str(folder))
    assert code == 0, output
    assert sorted(line.split()[1] for line in output.splitlines()) == sorted([BASE, DERIVED, GOOD])
    (folder / "second.json").write_text(json.dumps({"id": BAD, "amount": -1}), encoding="utf-8")
    code, output = run("validate", str(folder))
    assert code == 1
    assert f"invalid  {BAD}:" in output
    assert "1 of 4 entities failed validation" in output
    # Only the entity asked for.
    code, output = run("validate", str(folder), "--id", GOOD)
    assert code == 0 and output.count("ok") == 1
    code, output = run("validate", str(folder), "--id", "gts.x.none.such.thing.v1~")
    assert code == 1 and "no entity" in output


def test_invalid_input_fails_with_one_line(folder: Path) -> None:
    (folder / "broken.json").write_text('{"id": ', encoding="utf-8")
    code, output = run("validate", str(folder))
    assert code == 1
    assert output.strip().count("\n") == 0 and "broken.json: not valid JSON" in output
    (folder / "broken.json").write_text('{"name": "no id"}', encoding="utf-8")
    code, output = run("validate", str(folder))
    assert code == 1 and "broken.json" in output
    code, output = run("validate", str(folder / "missing.json"))
    assert code != 0
    code, output = run("validate", str(folder), "--ref-validation", "strict")
    assert code == 1 and "--ref-validation" in output


def test_parse_match_and_uuid() -> None:
    code, output = run("parse", GOOD)
    assert code == 0 and json.loads(output)["segments"][1]["ver_minor"] == 0
    code, output = run("parse", "gts.X.bad")
    assert code == 1 and "invalid GTS identifier" in output
    assert run("match", "gts.x.cli.*", GOOD)[0] == 0
    code, output = run("match", "gts.y.*", GOOD)
    assert code == 1 and json.loads(output)["match"] is False
    code, output = run("match", "gts.x*", GOOD)
    assert code == 1 and "error" in output
    code, output = run("uuid", BASE)
    assert code == 0 and output.strip() == str(gts_uuid(BASE))
    assert run("uuid", "not-gts")[0] == 1


def test_compat_and_cast(tmp_path: Path) -> None:
    v10, v11 = "gts.x.cli.users.user.v1.0~", "gts.x.cli.users.user.v1.1~"
    props = {"id": {"type": "string"}, "name": {"type": "string"}}
    closed = {"$schema": SCHEMA, "type": "object", "additionalProperties": False}
    newer = {**props, "locale": {"type": "string", "default": "en"}}
    documents = [
        {**closed, "$id": f"gts://{v10}", "required": ["id", "name"], "properties": props},
        {**closed, "$id": f"gts://{v11}", "required": ["id", "name"], "properties": newer},
        {"id": f"{v10}x.cli._.ann.v1", "name": "Ann"},
    ]
    (tmp_path / "users.json").write_text(json.dumps(documents), encoding="utf-8")
    path = ["--path", str(tmp_path)]
    code, output = run("compat", v10, v11, *path)
    assert code == 0, output
    assert json.loads(output)["backward_compatibility"] == "compatible"
    code, output = run("compat", v10, v11, *path, "--mode", "full")
    assert code == 1 and "full compatibility is incompatible" in output
    code, output = run("cast", f"{v10}x.cli._.ann.v1", v11, *path)
    assert code == 0, output
    assert json.loads(output)["casted_entity"]["locale"] == "en"
    code, output = run("cast", f"{v10}x.cli._.nobody.v1", v11, *path)
    assert code == 1


def test_query_and_get_on_files(folder: Path) -> None:
    code, output = run("query", f"{BASE}*", "--path", str(folder))
    assert code == 0
    found = {d.get("id") or d["$id"] for d in json.loads(output)["results"]}
    assert found == {GOOD, f"gts://{DERIVED}"}
    code, output = run("query", "gts.x.cli", "--path", str(folder))
    assert code == 1 and "invalid query" in output
    code, output = run("get", GOOD, "--path", str(folder))
    assert code == 0 and json.loads(output) == {"id": GOOD, "amount": 3}
    code, output = run("get", BAD, "--path", str(folder))
    assert code == 1 and "no entity" in output


def test_get_and_query_on_a_server(launcher: Launcher, folder: Path) -> None:
    server = launcher.start({"auth": {"mode": "dev"}})
    for document in [*read_documents(folder / "types" / "base.schema.jsonc")]:
        assert server.client.post("/gts/entities", json=document).status_code == 200
    url = f"{server.url}/gts"
    code, output = run("get", BASE, "--url", url)
    assert code == 0 and json.loads(output)["$id"] == f"gts://{BASE}"
    code, output = run("get", GOOD, "--url", url)
    assert code == 1 and "not found" in output
    code, output = run("query", "gts.x.cli.*", "--url", url)
    assert code == 0 and len(json.loads(output)["results"]) == 1
    code, output = run("query", "gts.x.cli.*", "--url", "http://127.0.0.1:9/gts")
    assert code == 1 and "cannot reach" in output
