"""How a module declares itself: one ``Module`` value in its ``module.py``, nothing else.

The declaration drives discovery, dependency ordering, config validation and the lifecycle; the
kernel never imports a module's code other than through the entry point that names this value.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from hyperspot.platform.clients import ClientHub
from hyperspot.platform.db.schema import Migration
from hyperspot.platform.errors import ModuleLoadError
from hyperspot.platform.identity import Permission

if TYPE_CHECKING:
    from hyperspot.platform.config import PlatformSettings
    from hyperspot.platform.db.database import PlatformDatabase
    from hyperspot.platform.gateway.operations import RestApi
    from hyperspot.platform.observability.metrics import ModuleMetrics

C = TypeVar("C", bound=BaseModel)

MODULE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class Capability(StrEnum):
    DB = "db"
    REST = "rest"
    STATEFUL = "stateful"
    SYSTEM = "system"


class NoConfig(BaseModel):
    """The config model of a module that takes no settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class HealthCheck:
    healthy: bool
    detail: str = ""


Hook = Callable[["ModuleContext[C]"], Awaitable[None] | None]
RestHook = Callable[["ModuleContext[C]", "RestApi"], None]
HealthHook = Callable[["ModuleContext[C]"], Awaitable[HealthCheck] | HealthCheck]
# Gets the module's new, validated config section while ``ctx.config`` still holds the old one;
# raising keeps the old one in force (the runtime sets ``ctx.config`` only after it returns).
ReloadHook = Callable[["ModuleContext[C]", C], Awaitable[None] | None]


@dataclass(frozen=True)
class Module(Generic[C]):
    """A module's declaration. Hooks may be plain or ``async`` functions; all are optional.

    Lifecycle, in dependency order: ``init`` -> ``migrate`` -> ``register_rest`` -> ``start``;
    ``stop`` runs in reverse order for every module whose ``init`` completed. ``reload`` runs
    while serving, when the configuration is re-read (SIGHUP, ``POST /admin/reload``) and the
    module's section changed; a module without it is reported as needing a restart instead.
    """

    name: str
    version: str
    config_model: type[C]
    description: str = ""
    depends_on: tuple[str, ...] = ()
    capabilities: frozenset[Capability] = frozenset()
    init: Hook[C] | None = None
    migrate: Hook[C] | None = None
    register_rest: RestHook[C] | None = None
    start: Hook[C] | None = None
    stop: Hook[C] | None = None
    health: HealthHook[C] | None = None
    reload: ReloadHook[C] | None = None
    migrations: tuple[Migration, ...] = ()
    permissions: tuple[Permission, ...] = ()
    # Client contracts (Protocols from ``contract`` packages) this module registers in ``init``,
    # and those it calls: both are checked at start-up, and drive out-of-process deployment.
    provides: tuple[type, ...] = ()
    uses: tuple[type, ...] = ()

    def __post_init__(self) -> None:
        if not MODULE_NAME.match(self.name):
            raise ModuleLoadError(
                f"module name {self.name!r} is invalid: use lower case letters, digits and '_'"
            )
        if self.name in self.depends_on:
            raise ModuleLoadError(f"module '{self.name}' depends on itself")
        if (self.register_rest is None) == (Capability.REST in self.capabilities):
            raise ModuleLoadError(
                f"module '{self.name}': the 'rest' capability and a register_rest hook go together"
            )
        if (self.migrate or self.migrations) and Capability.DB not in self.capabilities:
            raise ModuleLoadError(f"module '{self.name}': migrations need the 'db' capability")
        versions = [migration.version for migration in self.migrations]
        if versions != list(range(1, len(versions) + 1)):
            raise ModuleLoadError(
                f"module '{self.name}': migration versions must be 1, 2, 3, ... (got {versions})"
            )


class ModuleContext(Generic[C]):
    """What a module's hooks receive: config, logger, the client hub and background tasks."""

    def __init__(
        self,
        module: Module[C],
        config: C,
        clients: ClientHub,
        settings: PlatformSettings,
        database: PlatformDatabase | None = None,
        *,
        metrics: ModuleMetrics | None = None,
    ) -> None:
        self.module = module
        self._database = database
        self._metrics = metrics
        self.config = config
        self.clients = clients
        self.settings = settings
        self.logger = logging.getLogger(f"hyperspot.modules.{module.name}")
        self.tasks: list[asyncio.Task[None]] = []
        self.task_failure: str | None = None

    @property
    def db(self) -> PlatformDatabase:
        """The platform database (modules with the 'db' capability only)."""
        if self._database is None:
            raise ModuleLoadError(f"module '{self.module.name}' lacks the 'db' capability")
        return self._database

    @property
    def metrics(self) -> ModuleMetrics:
        """The module's own Prometheus metrics, on the runtime's /metrics (made on first use)."""
        if self._metrics is None:
            from hyperspot.platform.observability.metrics import ModuleMetrics

            self._metrics = ModuleMetrics(self.module.name, None)
        return self._metrics

    @property
    def data_dir(self) -> Path:
        """A folder of the module's own under the platform's data dir (created on first use)."""
        path = self.settings.data_dir / "modules" / self.module.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def spawn(self, name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``work`` in the background until the module stops; a crash makes it unhealthy."""
        task = asyncio.get_running_loop().create_task(work(), name=f"{self.module.name}:{name}")
        task.add_done_callback(self._on_task_done)
        self.tasks.append(task)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self.task_failure = f"background task '{task.get_name()}' crashed: {error}"
            self.logger.error(self.task_failure, exc_info=error)


async def call_hook(hook: Callable[..., Any], *args: Any) -> Any:
    """Call a hook that may be sync or async."""
    result = hook(*args)
    if inspect.isawaitable(result):
        return await result
    return result
