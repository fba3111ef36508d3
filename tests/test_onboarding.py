"""``hyperspot onboard``: the wizard's steps, failures and retries, resuming, and the server child.

The fast tests fake ``hyperspot check`` (a real one takes seconds); the slow one runs every step
for real, as a newcomer would.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import yaml
from textual.pilot import Pilot
from textual.widgets import Button, Input, RichLog
from typer.testing import CliRunner

from hyperspot.cli.main import app as cli
from hyperspot.onboarding.app import OnboardingApp
from hyperspot.onboarding.steps import (
    STEP_IDS,
    Context,
    Progress,
    Runners,
    StepError,
    StepId,
)

SIZE = (120, 40)
WAIT_S = 60
PASSING = (sys.executable, "-c", "print('all passed')")
FAILING = (sys.executable, "-c", "import sys; print('3 failed'); sys.exit(1)")


async def until(pilot: Pilot[None], condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


async def run(pilot: Pilot[None], app: OnboardingApp, step: StepId, key: str = "enter") -> str:
    """Press ``key`` and wait until ``step`` has run; its status."""
    await settled(pilot, app)
    await pilot.press(key)
    await until(pilot, lambda: app.running is None and app.statuses[step] != "pending", step)
    await until(pilot, lambda: app.statuses[step] != "running", step)
    return app.statuses[step]


async def settled(pilot: Pilot[None], app: OnboardingApp) -> None:
    # A button ignores presses during its 0.2 s press animation.
    await until(pilot, lambda: not app.query(".-active"), "the buttons")


def log_text(app: OnboardingApp, step: StepId) -> str:
    return "\n".join(app.logs[step])


async def quiet_environment(context: Context) -> None:
    context.emit("  ✔ Python (probes skipped in this test)")


def test_the_first_steps_write_a_config_and_a_module_and_a_failing_check_is_retried(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        app = OnboardingApp(tmp_path, Runners(check_command=FAILING))
        async with app.run_test(size=SIZE) as pilot:
            assert await run(pilot, app, "environment") == "done"
            assert "Python" in log_text(app, "environment")
            assert await run(pilot, app, "config") == "done"
            config = yaml.safe_load((tmp_path / "hyperspot.yaml").read_text())
            assert config["server"]["host"] == "127.0.0.1"
            assert len(config["auth"]["jwt"]["secret"]) == 64
            assert "database" not in config  # embedded SQLite
            assert (tmp_path / "hyperspot.yaml").stat().st_mode & 0o077 == 0
            # The module name field has the focus now: enter in it runs step 3.
            assert isinstance(app.focused, Input)
            assert app.focused.value == "first_module"
            assert await run(pilot, app, "module") == "done"
            assert (tmp_path / "modules" / "first_module" / "module.py").is_file()
            assert app.query_one("#module", Input).disabled

            assert await run(pilot, app, "check") == "failed"
            assert "3 failed" in log_text(app, "check")
            assert not app.query_one("#retry", Button).disabled
            assert "r retries" in str(app.query_one("#message").render())
            # The log pane shows the failed step's output.
            assert any("3 failed" in line.text for line in app.query_one("#log", RichLog).lines)

            app.runners = replace(app.runners, check_command=PASSING)
            assert await run(pilot, app, "check", key="r") == "done"
            assert "all passed" in log_text(app, "check")
            assert app.progress.next_step() == "server"
            assert app.query_one("#retry", Button).disabled

    asyncio.run(scenario())


def test_a_refused_module_name_shows_the_scaffolder_error_and_a_retry_succeeds(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        app = OnboardingApp(tmp_path, Runners(environment=quiet_environment))
        async with app.run_test(size=SIZE) as pilot:
            assert await run(pilot, app, "environment") == "done"
            assert await run(pilot, app, "config") == "done"
            name = app.query_one("#module", Input)
            name.value = "Bad-Name"
            assert await run(pilot, app, "module") == "failed"
            assert "invalid module name 'Bad-Name'" in log_text(app, "module")
            assert not (tmp_path / "modules" / "Bad-Name").exists()
            # Enter does not skip a failed step: it runs it again, still refused.
            await settled(pilot, app)
            await pilot.click("#run")
            await until(pilot, lambda: app.running is None, "the second attempt")
            assert app.statuses["module"] == "failed"

            name.value = "greeter"
            await settled(pilot, app)
            await pilot.click("#retry")
            await until(pilot, lambda: app.statuses["module"] == "done", "the retry")
            assert (tmp_path / "modules" / "greeter" / "module.py").is_file()
            assert "modules_path" in (tmp_path / "hyperspot.yaml").read_text()
            assert app.progress.module == "greeter"

    asyncio.run(scenario())


def test_progress_is_saved_and_a_new_session_resumes_at_the_first_unfinished_step(
    tmp_path: Path,
) -> None:
    fake = Runners(environment=quiet_environment)

    async def first() -> None:
        app = OnboardingApp(tmp_path, fake)
        async with app.run_test(size=SIZE) as pilot:
            for step in ("environment", "config"):
                assert await run(pilot, app, step) == "done"
            app.query_one("#module", Input).value = "resumed"
            assert await run(pilot, app, "module") == "done"

    async def second() -> None:
        app = OnboardingApp(tmp_path, replace(fake, check_command=PASSING))
        async with app.run_test(size=SIZE) as pilot:
            assert app.progress.next_step() == "check"
            assert str(app.query_one("#heading").render()).startswith("4. Run hyperspot check")
            assert "Resuming" in str(app.query_one("#message").render())
            assert app.query_one("#module", Input).value == "resumed"
            assert await run(pilot, app, "check") == "done"
            # Steps 1 to 3 were not run again.
            assert app.logs["environment"] == app.logs["module"] == []
            await pilot.press("x")
            assert set(app.statuses.values()) == {"pending"}
            assert app.selected == "environment"  # the heading follows the first step again

    asyncio.run(first())
    saved = json.loads((tmp_path / ".hyperspot" / "onboarding.json").read_text())
    assert saved["module"] == "resumed"
    assert [saved["steps"][s] for s in STEP_IDS] == ["done"] * 3 + ["pending"] * 3
    config = (tmp_path / "hyperspot.yaml").read_text()

    asyncio.run(second())
    assert Progress.load(tmp_path).next_step() == "environment"  # started over
    assert (tmp_path / "hyperspot.yaml").read_text() == config  # kept, not rewritten


def test_the_server_runs_while_the_wizard_does_and_stops_with_it(tmp_path: Path) -> None:
    pids: list[int] = []
    urls: dict[str, str] = {}

    async def scenario() -> None:
        runners = Runners(environment=quiet_environment, check_command=PASSING)
        app = OnboardingApp(tmp_path, runners)
        async with app.run_test(size=SIZE) as pilot:
            for step in STEP_IDS[:4]:
                assert await run(pilot, app, step) == "done"
            assert await run(pilot, app, "server") == "done", log_text(app, "server")
            assert app.server.process is not None
            pids.append(app.server.process.pid)
            urls.update(app.server.urls)
            async with httpx.AsyncClient() as client:
                assert (await client.get(urls["health"])).status_code == 200
                assert (await client.get(urls["docs"])).status_code == 200
            assert urls["docs"] in log_text(app, "server")
            assert await run(pilot, app, "finish") == "done"
            reading = log_text(app, "finish")
            for document in ("README.md", "modules.md", "data.md", "access.md", "observability"):
                assert document in reading
            assert urls["health"] in reading
            await pilot.press("q")

    asyncio.run(scenario())
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)
    with pytest.raises(httpx.TransportError):
        httpx.get(urls["healthz"], timeout=1)
    # The server lived with the session: a new one does not count it as done.
    assert Progress.load(tmp_path).next_step() == "server"


def test_an_invalid_existing_config_is_kept_and_fails_its_step(tmp_path: Path) -> None:
    (tmp_path / "hyperspot.yaml").write_text("server:\n  port: many\n")

    async def scenario() -> None:
        app = OnboardingApp(tmp_path, Runners(environment=quiet_environment))
        async with app.run_test(size=SIZE) as pilot:
            assert await run(pilot, app, "environment") == "done"
            assert await run(pilot, app, "config") == "failed"
            assert "keeping the existing" in log_text(app, "config")
            assert "server.port" in log_text(app, "config")
            (tmp_path / "hyperspot.yaml").write_text("server:\n  port: 9999\n")
            assert await run(pilot, app, "config", key="r") == "done"
            assert "http://127.0.0.1:9999" in log_text(app, "config")

    asyncio.run(scenario())


def test_a_runner_that_raises_unexpectedly_fails_its_step(tmp_path: Path) -> None:
    async def broken(context: Context) -> None:
        raise OSError("disk full")

    async def refused(context: Context) -> None:
        raise StepError("no")

    async def scenario() -> None:
        app = OnboardingApp(tmp_path, Runners(environment=broken))
        async with app.run_test(size=SIZE) as pilot:
            assert await run(pilot, app, "environment") == "failed"
            assert "OSError: disk full" in log_text(app, "environment")
            await settled(pilot, app)
            await pilot.press("enter")  # not while step 1 has failed: it runs step 1 again
            await until(pilot, lambda: app.running is None, "step 1")
            assert app.statuses["config"] == "pending"
            app.runners = replace(app.runners, environment=refused)
            assert await run(pilot, app, "environment", key="r") == "failed"
            assert log_text(app, "environment").endswith("✘ no")

    asyncio.run(scenario())


def test_the_cli_command_is_registered() -> None:
    result = CliRunner().invoke(cli, ["onboard", "--help"])
    assert result.exit_code == 0
    assert "--dir" in result.output


@pytest.mark.slow
def test_every_step_for_real(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = OnboardingApp(tmp_path / "project")
        async with app.run_test(size=SIZE) as pilot:
            for step in STEP_IDS:
                assert await run(pilot, app, step) == "done", log_text(app, step)
            environment = log_text(app, "environment")
            for probe in ("Python", "PostgreSQL", "MariaDB", "Redis", "Docker"):
                assert probe in environment
            assert "all passed" in log_text(app, "check")
            assert "mypy --strict" in log_text(app, "check")
            assert app.server.running

    asyncio.run(scenario())
    assert (tmp_path / "project" / "modules" / "first_module").is_dir()
    assert Progress.load(tmp_path / "project").statuses["check"] == "done"
