"""Errors the platform raises for people to read: each message is one line and names the culprit."""


class HyperspotError(Exception):
    """Base class: the CLI prints ``str(error)`` and exits non-zero, without a traceback."""


class ConfigError(HyperspotError):
    """The configuration is invalid; ``problems`` holds one line per offending key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))


class ModuleLoadError(HyperspotError):
    """A module could not be discovered or imported."""


class ModuleGraphError(HyperspotError):
    """The module dependency graph is unusable (missing, disabled or cyclic dependencies)."""


class OperationError(HyperspotError):
    """A REST operation was declared incompletely or collides with another."""


class StartupError(HyperspotError):
    """A module failed during start-up; the modules already initialized were stopped."""
