"""``hyperspot onboard``: a guided tour from an empty folder to a running server."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.events import Click
from textual.widgets import Button, Footer, Header, Input, Label, RichLog, Static

from hyperspot.onboarding.steps import (
    DEFAULT_MODULE,
    STEP_IDS,
    TITLES,
    Context,
    Progress,
    Runners,
    Server,
    Status,
    StepError,
    StepId,
)

MARKS: dict[Status, tuple[str, str]] = {
    "pending": ("·", "dim"),
    "running": ("…", "yellow"),
    "done": ("✔", "green"),
    "failed": ("✘", "red"),
}


class StepRow(Static):
    """One line of the step list; a click shows that step's output."""

    def __init__(self, step: StepId, number: int) -> None:
        super().__init__(id=f"step-{step}", classes="step")
        self.step = step
        self.number = number

    def show(self, status: Status, selected: bool) -> None:
        mark, style = MARKS[status]
        self.update(
            Text.assemble(
                (f"{mark} ", style), f"{self.number}. {TITLES[self.step]:<23}", (status, style)
            )
        )
        self.set_class(selected, "selected")

    def on_click(self, event: Click) -> None:
        if isinstance(self.app, OnboardingApp):
            self.app.select(self.step)


class OnboardingApp(App[None]):
    """Runs the steps one at a time; progress survives in PROJECT/.hyperspot/onboarding.json."""

    TITLE = "HyperSpot onboarding"
    # Nothing focused at first: enter reaches the app's "run next step" (and the footer shows it).
    AUTO_FOCUS = None
    CSS = """
    #steps { width: 44; border: round $primary; padding: 0 1; }
    .step { height: 1; }
    .step.selected { background: $boost; text-style: bold; }
    #module-row { height: auto; margin-top: 1; }
    #module-row Label { padding: 1 0 0 0; }
    #module { width: 1fr; }
    #detail { width: 1fr; }
    #heading { height: auto; padding: 0 1; text-style: bold; }
    #message { height: auto; padding: 0 1; }
    #log { height: 1fr; border: round $secondary; }
    #buttons { height: auto; }
    #buttons Button { margin-right: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "run_next", "Run next step"),
        Binding("r", "retry", "Retry failed step"),
        Binding("x", "start_over", "Start over"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, project: Path, runners: Runners | None = None) -> None:
        super().__init__()
        self.project = project.resolve()
        self.runners = runners or Runners()
        self.progress = Progress.load(self.project)
        self.server = Server()
        self.logs: dict[StepId, list[str]] = {step: [] for step in STEP_IDS}
        self.selected: StepId = self.progress.next_step() or STEP_IDS[-1]
        self.running: StepId | None = None

    @property
    def statuses(self) -> dict[StepId, Status]:
        return self.progress.statuses

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="steps"):
                for number, step in enumerate(STEP_IDS, start=1):
                    yield StepRow(step, number)
                with Vertical(id="module-row"):
                    yield Label("Module name (step 3):")
                    yield Input(self.progress.module, placeholder=DEFAULT_MODULE, id="module")
            with Vertical(id="detail"):
                yield Static(id="heading")
                yield Static(id="message")
                yield RichLog(id="log", max_lines=5000, wrap=False, markup=False)
                with Horizontal(id="buttons"):
                    yield Button("Run next step", id="run", variant="primary")
                    yield Button("Retry", id="retry", variant="warning")
                    yield Button("Start over", id="start-over")
                    yield Button("Quit", id="quit", variant="error")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.project)
        done = [s for s in STEP_IDS if self.statuses[s] == "done"]
        if done:
            numbers = ", ".join(str(STEP_IDS.index(s) + 1) for s in done)
            self._say(
                f"Resuming: step(s) {numbers} done in an earlier session. Enter runs the next "
                "one; x starts over from scratch."
            )
        else:
            self._say("Welcome! Enter (or Run next step) runs each step; q quits.")
        self._refresh()

    async def on_unmount(self) -> None:
        # The server is a child of this session: it must not outlive it.
        await self.server.stop()

    # --- actions ----------------------------------------------------------------------------

    def action_run_next(self) -> None:
        step = self.progress.next_step()
        if step is None:
            self._say("All steps are done. q quits (and stops the server); x starts over.")
            return
        self._start(step)

    def action_retry(self) -> None:
        failed = next((s for s in STEP_IDS if self.statuses[s] == "failed"), None)
        if failed is None:
            self._say("No failed step to retry.")
            return
        self._start(failed)

    async def action_start_over(self) -> None:
        if self.running is not None:
            self._say("Wait for the running step to finish first.")
            return
        await self.server.stop()
        for step in STEP_IDS:
            self.statuses[step] = "pending"
            self.logs[step].clear()
        self.progress.save(self.project)
        self.selected = STEP_IDS[0]
        self._say("Starting over: files already written (config, module) are kept.")
        self._refresh()

    @on(Button.Pressed, "#run")
    def _run_pressed(self) -> None:
        self.action_run_next()

    @on(Button.Pressed, "#retry")
    def _retry_pressed(self) -> None:
        self.action_retry()

    @on(Button.Pressed, "#start-over")
    async def _start_over_pressed(self) -> None:
        await self.action_start_over()

    @on(Button.Pressed, "#quit")
    async def _quit_pressed(self) -> None:
        await self.action_quit()

    @on(Input.Submitted, "#module")
    def _module_submitted(self) -> None:
        # Enter in the name field means "go on", as everywhere else.
        self.action_run_next()

    def select(self, step: StepId) -> None:
        self.selected = step
        self._refresh()

    # --- running a step ---------------------------------------------------------------------

    def _start(self, step: StepId) -> None:
        if self.running is not None:
            self._say(f"Step {STEP_IDS.index(self.running) + 1} is still running.")
            return
        earlier = [s for s in STEP_IDS[: STEP_IDS.index(step)] if self.statuses[s] != "done"]
        if earlier:
            self._say(f"Step {STEP_IDS.index(earlier[0]) + 1} must succeed first.")
            return
        self.running = step
        self.selected = step
        self.statuses[step] = "running"
        self.logs[step].clear()
        self._refresh()
        self._say(f"Running step {STEP_IDS.index(step) + 1}: {TITLES[step]}…")
        self.run_worker(self._perform(step), group="step", exclusive=True)

    async def _perform(self, step: StepId) -> None:
        if step == "module":
            self.progress.module = self.query_one("#module", Input).value.strip()
        context = Context(
            project=self.project,
            module=self.progress.module,
            emit=lambda line: self._emit(step, line),
            runners=self.runners,
            server=self.server,
        )
        status: Status = "failed"
        try:
            await self.runners.of(step)(context)
        except StepError as error:
            message = str(error)
        except Exception as error:  # a bug or an OS error: shown, and the step can be retried
            message = f"{type(error).__name__}: {error}"
        else:
            status = "done"
            message = f"Step {STEP_IDS.index(step) + 1} done."
            following = self.progress.next_step()
            if following is not None and following != step:
                message += f" Enter runs step {STEP_IDS.index(following) + 1}: {TITLES[following]}."
        finally:
            self.running = None
        self.statuses[step] = status
        if status == "failed":
            self._emit(step, f"✘ {message}")
            message += "  (r retries)"
        self.progress.save(self.project)
        self._say(message)
        # The finished step stays shown (its output is worth reading); the next one is named.
        self._refresh()
        if status == "done" and self.progress.next_step() == "module":
            self.query_one("#module", Input).focus()
        elif step == "module" and status == "done":
            self.set_focus(None)

    def _emit(self, step: StepId, line: str) -> None:
        self.logs[step].append(line)
        if step == self.selected:
            self.query_one("#log", RichLog).write(Text(line))

    # --- display ----------------------------------------------------------------------------

    def _say(self, message: str) -> None:
        self.query_one("#message", Static).update(Text(message))

    def _refresh(self) -> None:
        for row in self.query(StepRow):
            row.show(self.statuses[row.step], row.step == self.selected)
        step = self.selected
        self.query_one("#heading", Static).update(
            Text(f"{STEP_IDS.index(step) + 1}. {TITLES[step]} — {self.statuses[step]}")
        )
        log = self.query_one("#log", RichLog)
        log.clear()
        for line in self.logs[step]:
            log.write(Text(line))
        self.query_one("#retry", Button).disabled = "failed" not in self.statuses.values()
        self.query_one("#module", Input).disabled = self.statuses["module"] == "done"
