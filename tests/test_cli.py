"""The ``hyperspot`` command's read-only commands, and the committed OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import LIFECYCLE_MODULES, run_cli
from openapi_spec_validator import validate
from typer.testing import CliRunner

from hyperspot import __version__
from hyperspot.cli.main import app

COMMITTED_OPENAPI = Path(__file__).parents[1] / "docs" / "api" / "openapi.json"


def test_committed_openapi_matches_the_code() -> None:
    result = run_cli("openapi")
    assert result.returncode == 0, result.stderr
    live = json.loads(result.stdout)
    validate(live)
    committed = json.loads(COMMITTED_OPENAPI.read_text(encoding="utf-8"))
    assert live == committed, (
        "the API changed: run `hyperspot openapi -o docs/api/openapi.json` and commit the result"
    )


def test_openapi_writes_a_file(tmp_path: Path) -> None:
    target = tmp_path / "api.json"
    result = CliRunner().invoke(app, ["openapi", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text())["paths"]["/hello/v1/languages"]["get"]["operationId"] == (
        "hello.list_languages"
    )


def test_modules_table(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"modules_path: [{LIFECYCLE_MODULES}]\n"
        "modules:\n  alpha: {events_file: /dev/null}\n  beta: {events_file: /dev/null}\n"
        "  gamma: {enabled: false}\n"
    )
    result = CliRunner().invoke(app, ["modules", "--config", str(config)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {
        line.split("│")[1].strip(): line
        for line in result.output.splitlines()
        if line.count("│") > 4
    }
    assert "beta" in rows and "alpha" in rows["beta"] and "enabled" in rows["beta"]
    assert "db, rest, stateful" in rows["alpha"]
    assert "disabled" in rows["gamma"]
    assert "1.0.0" in rows["hello"]


def test_errors_are_one_line_and_exit_nonzero(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("modules:\n  ghost: {}\n")
    for command in (["modules"], ["openapi"], ["config", "show"], ["up"]):
        result = run_cli(*command, "--config", str(config))
        assert result.returncode == 1, command
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (command, result.stderr)


def test_version_and_help() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).output.strip() == f"hyperspot {__version__}"
    help_text = runner.invoke(app, ["--help"]).output
    for command in ("up", "modules", "openapi", "config"):
        assert command in help_text


def test_token_issue_mints_a_verifiable_token_and_needs_a_secret() -> None:
    import jwt

    secret = "cli-test-secret-0123456789abcdef0123"
    result = run_cli(
        "token",
        "issue",
        "--tenant",
        "acme",
        "--subject",
        "ann",
        "--roles",
        "member, editor",
        env={"HYPERSPOT_AUTH__JWT__SECRET": secret},
    )
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"], audience="hyperspot")
    assert (claims["tenant"], claims["sub"]) == ("acme", "ann")
    assert claims["roles"] == ["editor", "member"]
    shown = run_cli("config", "show", "--json", env={"HYPERSPOT_AUTH__JWT__SECRET": secret})
    assert secret not in shown.stdout
    refused = run_cli("token", "issue", "--tenant", "acme", "--subject", "ann")
    assert refused.returncode == 1
    assert "set auth.jwt.secret" in refused.stderr
