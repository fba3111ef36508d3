"""``hyperspot onboard``: a guided tour for a newcomer, in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def onboard(
    directory: Annotated[
        Path,
        typer.Option(
            "--dir",
            help="The project folder (default: the current one; created if missing).",
            file_okay=False,
        ),
    ] = Path("."),
) -> None:
    """Guided setup: check the environment, write a config, create a module, check it, run it."""
    from hyperspot.onboarding.app import OnboardingApp

    directory.mkdir(parents=True, exist_ok=True)
    OnboardingApp(directory).run()
