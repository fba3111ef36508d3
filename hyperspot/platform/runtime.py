"""The runtime: drives every module through its lifecycle and answers health.

Order: init (all) -> migrate (all) -> register REST (all) -> start (all) -> ready, each phase in
dependency order. ``stop`` runs in reverse order for every module whose init completed, so a failure
at any phase leaves nothing running.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from hyperspot import __version__
from hyperspot.platform.auth import Authenticator
from hyperspot.platform.clients import ClientHub
from hyperspot.platform.config import (
    DEPLOYMENT_KEYS,
    LoadedConfig,
    ModuleDeployment,
    changed_paths,
    dotted,
    load_config,
    validate_section,
)
from hyperspot.platform.db.database import PlatformDatabase
from hyperspot.platform.db.migrations import MigrationRunner
from hyperspot.platform.db.schema import Migration
from hyperspot.platform.errors import ConfigError, StartupError
from hyperspot.platform.gateway.app import AsgiApp, Gateway
from hyperspot.platform.gateway.openapi import build_openapi
from hyperspot.platform.gateway.operations import Call, Operation, Reply, RestApi, check_unique
from hyperspot.platform.identity import (
    IdentityResolver,
    PermissionCatalogue,
    StaticIdentityResolver,
)
from hyperspot.platform.logs import trace_logs
from hyperspot.platform.module import Capability, HealthCheck, Module, ModuleContext, call_hook
from hyperspot.platform.observability.admin import (
    CONFIGURE,
    OBSERVE,
    ReloadReport,
    register_admin,
    register_reload,
)
from hyperspot.platform.observability.instrument import Observability
from hyperspot.platform.observability.metrics import ModuleMetrics
from hyperspot.platform.observability.models import ModuleStatus
from hyperspot.platform.ratelimit import RateLimiter, build_rate_limiter
from hyperspot.platform.registry import discover, resolve
from hyperspot.platform.rpc.links import ModuleLinks, check_deployment

logger = logging.getLogger("hyperspot.runtime")

PLATFORM = "platform"
# Probes from load balancers and orchestrators: unlimited unless a 'health' class is configured.
HEALTH_RATE_CLASS = "health"


class ModuleState(StrEnum):
    DISABLED = "disabled"
    LOADED = "loaded"
    INITIALIZED = "initialized"
    MIGRATED = "migrated"
    REGISTERED = "registered"
    STARTED = "started"
    READY = "ready"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass
class ModuleRecord:
    module: Module[Any]
    context: ModuleContext[Any] | None
    state: ModuleState
    error: str | None = None
    # "local", or where the module runs instead ("oop", "remote"): then it has no context here.
    runtime: str = "local"


class ModuleHealth(BaseModel):
    name: str
    version: str
    state: str
    healthy: bool
    detail: str = ""


class DatabaseStatus(BaseModel):
    backend: str
    healthy: bool
    detail: str = ""


class Readiness(BaseModel):
    status: Literal["ok", "degraded", "starting", "stopping"]
    version: str
    uptime_s: float
    modules: list[ModuleHealth]
    database: DatabaseStatus | None = Field(
        default=None, description="The platform's database (absent when no module uses one)."
    )


class Liveness(BaseModel):
    status: Literal["alive"]


def load_modules(loaded: LoadedConfig) -> list[Module[Any]]:
    """Discover every module and refuse config sections naming a module that is not installed."""
    discovered = [item.module for item in discover(loaded.settings.modules_path)]
    names = {module.name for module in discovered}
    unknown = sorted(set(loaded.settings.modules) - names)
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise ConfigError(
            [
                f"modules.{name}: no such module (from {loaded.source_of(('modules', name))}; "
                f"installed: {known})"
                for name in unknown
            ]
        )
    return discovered


class Runtime:
    def __init__(self, loaded: LoadedConfig, modules: Sequence[Module[Any]]) -> None:
        self.loaded = loaded
        self.settings = loaded.settings
        self.observability = Observability(self.settings.observability)
        self.clients = ClientHub(wrap=self.observability.traced_client)
        self.started_at = time.monotonic()
        self.stopping = False
        # True in `hyperspot run-module`: it serves only what the platform's gateway forwards.
        self.module_process = False
        self.operations: list[Operation] = []
        # Set in a worker of several: asks the supervisor to reload every worker (this one too).
        self.reload_peers: Callable[[], None] | None = None
        self._reload_lock = asyncio.Lock()
        disabled = set()
        configs: dict[str, BaseModel] = {}
        self.deployments: dict[str, ModuleDeployment] = {}
        for module in modules:
            section = dict(self.settings.modules.get(module.name, {}))
            enabled = _enabled(section.pop("enabled", True))
            if enabled is None:
                where = loaded.source_of(("modules", module.name, "enabled"))
                raise ConfigError(
                    [f"modules.{module.name}.enabled: expected true or false (from {where})"]
                )
            if not enabled:
                disabled.add(module.name)
                continue
            prefix = ("modules", module.name)
            placement = {key: section.pop(key) for key in list(section) if key in DEPLOYMENT_KEYS}
            deployment = validate_section(ModuleDeployment, placement, prefix, loaded)
            assert isinstance(deployment, ModuleDeployment)
            check_deployment(module.name, deployment, loaded)
            self.deployments[module.name] = deployment
            # Every module's config is validated before any module runs.
            configs[module.name] = validate_section(module.config_model, section, prefix, loaded)
        ordered = resolve(modules, disabled)
        declared = [(PLATFORM, OBSERVE), (PLATFORM, CONFIGURE)] + [
            (module.name, permission) for module in ordered for permission in module.permissions
        ]
        self.permissions = PermissionCatalogue(declared)
        self.clients.register(PermissionCatalogue, self.permissions, owner=PLATFORM)
        self.limiter: RateLimiter | None = None
        self.links = ModuleLinks(loaded, self.observability, self.deployments)
        local = [m for m in ordered if self.deployments[m.name].runtime == "local"]
        uses_db = any(Capability.DB in module.capabilities for module in local)
        self.database = (
            PlatformDatabase(self.settings.database, self.settings.database_url)
            if uses_db
            else None
        )
        self.records: list[ModuleRecord] = [
            ModuleRecord(
                module,
                ModuleContext(
                    module,
                    configs[module.name],
                    self.clients,
                    self.settings,
                    self.database if Capability.DB in module.capabilities else None,
                    metrics=ModuleMetrics(module.name, self.observability.metrics),
                ),
                ModuleState.LOADED,
            )
            for module in local
        ]
        self.records.extend(
            ModuleRecord(m, None, ModuleState.LOADED, runtime=self.deployments[m.name].runtime)
            for m in ordered
            if m not in local
        )
        self.records.extend(
            ModuleRecord(m, None, ModuleState.DISABLED)
            for m in sorted(modules, key=lambda m: m.name)
            if m.name in disabled
        )

    @property
    def active(self) -> list[ModuleRecord]:
        """The modules that run in this process."""
        return [r for r in self.records if r.context is not None]

    @property
    def elsewhere(self) -> list[ModuleRecord]:
        """The enabled modules that run in other processes (``oop`` or ``remote``)."""
        return [r for r in self.records if r.runtime != "local"]

    async def boot(self, *, migrate: bool = True, link: bool = False) -> list[Operation]:
        """init, migrate and register every module; returns all operations (platform's included).

        ``link`` (serving): start the modules that run out of process, or wait for remote ones,
        and route their operations through this gateway.
        """
        try:
            if migrate and self.database is not None:
                # Reach the database before any module runs: a wrong URL fails fast and clearly.
                await asyncio.to_thread(self.database.check_server)
            self.links.register_remote(self.clients, [r.module for r in self.elsewhere])
            if link:
                await self.links.start()
                for record in self.elsewhere:
                    record.state = ModuleState.STARTED
            await self._phase("init", ModuleState.INITIALIZED)
            self._check_contracts()
            if migrate:
                if self.database is not None:
                    await asyncio.to_thread(self._apply_migrations, self.database)
                await self._phase("migrate", ModuleState.MIGRATED)
                if self.database is not None:
                    await asyncio.to_thread(self.database.map_entities)
                    self.observability.instrument_database(self.database)
                    for record in self.elsewhere:
                        # A child process shares this database: its tenant rows go with a
                        # tenant too. A remote module keeps its own data, on its own database.
                        if record.runtime == "oop":
                            self.database.add_module_elsewhere(
                                record.module.name, record.module.migrations
                            )
            operations = list(self._platform_operations())
            for record in self.active:
                api = RestApi(record.module.name)
                if record.module.register_rest is not None:
                    assert record.context is not None
                    record.module.register_rest(record.context, api)
                operations.extend(api.build())
                record.state = ModuleState.REGISTERED
            local = [record.module for record in self.active]
            operations += self.links.served_operations(self.clients, local)
            if link:
                operations += await self.links.remote_operations()
            check_unique(operations)
            self._check_permissions(operations)
        except BaseException:
            await self.stop()
            raise
        self.operations = operations
        return operations

    def openapi(self) -> dict[str, Any]:
        document = build_openapi(self.operations, title="HyperSpot API", version=__version__)
        return self.links.document(document)

    def _check_contracts(self) -> None:
        """Every contract a module uses has a provider, and providers registered what they
        declared: a missing one fails here, naming it, not at the first call."""
        problems = []
        for record in self.active:
            for protocol in record.module.provides:
                if self.clients.find(protocol) is None:
                    problems.append(
                        f"module '{record.module.name}' declares it provides "
                        f"{protocol.__qualname__} but did not register it in init"
                    )
            for protocol in record.module.uses:
                if self.clients.find(protocol) is None:
                    problems.append(
                        f"module '{record.module.name}' uses {protocol.__qualname__}, which no "
                        "enabled module provides"
                    )
        if problems:
            raise StartupError("; ".join(problems))

    def build_app(self) -> AsgiApp:
        auth = self.settings.auth
        resolver = self.clients.find(IdentityResolver) or StaticIdentityResolver(
            self.permissions, auth.root_tenant
        )
        authenticate = Authenticator(auth, resolver.verify_api_key)
        self.limiter = build_rate_limiter(self.settings.rate_limits)
        gateway = Gateway(
            self.settings.server,
            authenticate,
            resolver,
            self.limiter,
            self.observability,
            call_contexts=self.links.signer,
            call_contexts_only=self.module_process,
        )
        return gateway.build(self.operations, self.openapi())

    def _check_permissions(self, operations: list[Operation]) -> None:
        undeclared = [
            f"{op.operation_id} requires '{op.access.permission}'"
            for op in operations
            if op.access.permission is not None and op.access.permission not in self.permissions
        ]
        if undeclared:
            raise StartupError(
                "operations require permissions no enabled module declares (add them to the "
                "module's `permissions`): " + "; ".join(undeclared)
            )

    async def start(self) -> None:
        try:
            await self._phase("start", ModuleState.STARTED)
        except BaseException:
            await self.stop()
            raise
        for record in self.active + self.elsewhere:
            record.state = ModuleState.READY
        # What start-up built lives as long as the server: out of the collector's way, so full
        # collections only walk objects made while serving.
        gc.freeze()
        logger.info("ready: %s", ", ".join(r.module.name for r in self.active) or "no modules")

    async def stop(self) -> None:
        """Stop, in reverse order, every module whose init completed; never raises."""
        self.stopping = True
        for record in reversed(self.active):
            if record.state in (ModuleState.LOADED, ModuleState.STOPPED, ModuleState.FAILED):
                continue
            record.state = ModuleState.STOPPING
            context = record.context
            assert context is not None
            try:
                if record.module.stop is not None:
                    await call_hook(record.module.stop, context)
            except Exception as error:
                logger.error("module '%s' failed to stop: %s", record.module.name, error)
            for task in context.tasks:
                task.cancel()
            if context.tasks:
                await asyncio.gather(*context.tasks, return_exceptions=True)
            record.state = ModuleState.STOPPED
            logger.info("stopped module '%s'", record.module.name)
        await self.links.stop(self.settings.server.grace_period_s)
        for record in self.elsewhere:
            record.state = ModuleState.STOPPED
        if self.limiter is not None:
            await self.limiter.close()
        if self.database is not None:
            self.database.close()
        self.observability.shutdown()

    def migration_plans(self) -> list[tuple[str, tuple[Migration, ...]]]:
        """Each active module's migrations, in dependency order."""
        return [(r.module.name, r.module.migrations) for r in self.active if r.module.migrations]

    def _apply_migrations(self, database: PlatformDatabase) -> None:
        runner = MigrationRunner(database.url, self.migration_plans())
        if self.settings.database.migrate_on_start:
            runner.up()
            return
        pending = runner.plan()
        if pending:
            names = ", ".join(f"{p.module} v{p.version}" for p in pending)
            raise StartupError(
                f"pending migrations ({names}) and database.migrate_on_start is false: "
                "run `hyperspot migrate up` first"
            )

    async def _phase(self, hook_name: str, reached: ModuleState) -> None:
        for record in self.active:
            hook = getattr(record.module, hook_name)
            try:
                if hook is not None:
                    await call_hook(hook, record.context)
            except Exception as error:
                if hook_name == "init":
                    # A module whose init failed holds nothing to stop.
                    record.state = ModuleState.FAILED
                record.error = f"{hook_name} failed: {error}"
                # The traceback is for module developers: shown only at DEBUG level.
                logger.error(
                    "module '%s' %s",
                    record.module.name,
                    record.error,
                    exc_info=error if logger.isEnabledFor(logging.DEBUG) else None,
                )
                raise StartupError(
                    f"module '{record.module.name}' failed during {hook_name}: {error}"
                ) from error
            record.state = reached
            logger.info("module '%s' %s", record.module.name, reached.value)

    async def readiness(self) -> Readiness:
        modules = []
        for record in self.records:
            modules.append(await self._module_health(record))
        database = await self._database_status()
        if self.stopping:
            status: Literal["ok", "degraded", "starting", "stopping"] = "stopping"
        elif any(r.state not in (ModuleState.READY, ModuleState.DISABLED) for r in self.records):
            status = "starting"
        elif all(m.healthy for m in modules) and (database is None or database.healthy):
            status = "ok"
        else:
            status = "degraded"
        return Readiness(
            status=status,
            version=__version__,
            uptime_s=round(time.monotonic() - self.started_at, 3),
            modules=modules,
            database=database,
        )

    async def _database_status(self) -> DatabaseStatus | None:
        """The platform-level database check: the server answers (once mapped, i.e. serving)."""
        if self.database is None or not self.database.mapped:
            return None
        check = await self.database.health()
        return DatabaseStatus(
            backend=self.database.url.backend, healthy=check.healthy, detail=check.detail
        )

    async def _module_health(self, record: ModuleRecord) -> ModuleHealth:
        module, context = record.module, record.context
        check = HealthCheck(healthy=record.error is None, detail=record.error or "")
        location = self.links.locations.get(module.name)
        if location is not None and record.state == ModuleState.READY:
            check = await location.health()
            check = HealthCheck(check.healthy, f"{record.runtime}: {check.detail}")
        elif context is not None and context.task_failure is not None:
            check = HealthCheck(False, context.task_failure)
        elif (
            context is not None and module.health is not None and record.state == ModuleState.READY
        ):
            try:
                check = await asyncio.wait_for(call_hook(module.health, context), timeout=5)
            except Exception as error:
                check = HealthCheck(False, f"health check failed: {error!r}")
        return ModuleHealth(
            name=module.name,
            version=module.version,
            state=record.state.value,
            healthy=check.healthy,
            detail=check.detail,
        )

    def _platform_operations(self) -> list[Operation]:
        api = RestApi(PLATFORM)

        async def liveness(call: Call) -> Liveness:
            return Liveness(status="alive")

        async def readiness(call: Call) -> Reply:
            report = await self.readiness()
            return Reply(200 if report.status == "ok" else 503, report)

        (
            api.operation("GET", "/healthz", "platform.liveness")
            .summary("Liveness: the process answers (no I/O)")
            .response(200, Liveness)
            .public()
            .rate_limit(HEALTH_RATE_CLASS)
            .handler(liveness)
        )
        (
            api.operation("GET", "/health", "platform.readiness")
            .summary("Readiness: every module's state and health")
            .response(200, Readiness, "Every module is ready and healthy")
            .response(503, Readiness, "Starting, stopping, or a module is unhealthy")
            .public()
            .rate_limit(HEALTH_RATE_CLASS)
            .handler(readiness)
        )
        register_admin(
            api,
            self.observability,
            self._module_statuses,
            trace_logs().lines_for,
            HEALTH_RATE_CLASS,
        )
        register_reload(api, self._reload_everywhere, HEALTH_RATE_CLASS)
        return api.build()

    async def _reload_everywhere(self) -> ReloadReport:
        report = await self.reload()
        if report.status != "rejected" and self.reload_peers is not None:
            # The supervisor signals every worker, this one included: a second reload of the
            # same file here finds nothing changed.
            self.reload_peers()
            report.detail = "the other worker processes reload too"
        return report

    async def reload(self) -> ReloadReport:
        """Re-read the config file and environment; hand each module its changed section.

        The new configuration is validated whole first: if any of it is invalid nothing changes.
        Changes a running server cannot take (platform settings, enabling, placement, modules
        without a ``reload`` hook) are reported, not applied. Never raises.
        """
        async with self._reload_lock:
            try:
                report = await self._reload()
            except Exception as error:  # a bug must not take the server down with it
                logger.exception("configuration reload failed")
                report = ReloadReport(status="rejected", errors=[f"reload failed: {error!r}"])
        _log_reload(report)
        return report

    async def _reload(self) -> ReloadReport:
        try:
            loaded = load_config(self.loaded.path)
            restart = self._platform_changes(loaded)
            changes, module_restart = self._module_changes(loaded)
        except ConfigError as error:
            return ReloadReport(status="rejected", errors=error.problems)
        restart += module_restart
        applied, errors = [], []
        for record, config in changes:
            context = record.context
            assert context is not None and record.module.reload is not None
            try:
                await call_hook(record.module.reload, context, config)
            except Exception as error:
                errors.append(
                    f"modules.{record.module.name}: refused its new section, the previous one "
                    f"stays: {error}"
                )
                continue
            context.config = config
            applied.append(record.module.name)
        status: Literal["applied", "unchanged", "partial"] = (
            "partial" if errors else "applied" if applied else "unchanged"
        )
        return ReloadReport(status=status, applied=applied, restart_required=restart, errors=errors)

    def _platform_changes(self, loaded: LoadedConfig) -> list[str]:
        """Platform settings are read once, at start-up: each changed one needs a restart."""
        old = self.settings.model_dump(mode="json", exclude={"modules"})
        new = loaded.settings.model_dump(mode="json", exclude={"modules"})
        return [
            f"{dotted(path)}: needs a restart (from {loaded.source_of(path)})"
            for path in changed_paths(old, new)
        ]

    def _module_changes(
        self, loaded: LoadedConfig
    ) -> tuple[list[tuple[ModuleRecord, BaseModel]], list[str]]:
        """The modules to hand a new section, and the changes that need a restart; raises
        ``ConfigError`` naming every invalid section."""
        sections = loaded.settings.modules
        names = {record.module.name for record in self.records}
        problems = [
            f"modules.{name}: no such module (from {loaded.source_of(('modules', name))})"
            for name in sorted(set(sections) - names)
        ]
        changes: list[tuple[ModuleRecord, BaseModel]] = []
        restart: list[str] = []
        for record in self.records:
            name = record.module.name
            prefix = ("modules", name)
            section = dict(sections.get(name, {}))
            enabled = _enabled(section.pop("enabled", True))
            if enabled is None:
                where = loaded.source_of((*prefix, "enabled"))
                problems.append(f"modules.{name}.enabled: expected true or false (from {where})")
                continue
            if enabled != (record.state != ModuleState.DISABLED):
                where = loaded.source_of((*prefix, "enabled"))
                restart.append(f"modules.{name}.enabled: needs a restart (from {where})")
            if not enabled or record.state == ModuleState.DISABLED:
                continue
            placement = {key: section.pop(key) for key in list(section) if key in DEPLOYMENT_KEYS}
            try:
                deployment = validate_section(ModuleDeployment, placement, prefix, loaded)
                config = validate_section(record.module.config_model, section, prefix, loaded)
            except ConfigError as error:
                problems.extend(error.problems)
                continue
            old_deployment = self.deployments[name].model_dump()
            restart += [
                f"modules.{name}.{dotted(path)}: needs a restart (from "
                f"{loaded.source_of((*prefix, *path))})"
                for path in changed_paths(old_deployment, deployment.model_dump())
            ]
            context = record.context
            if context is None:
                old_section = {
                    key: value
                    for key, value in self.settings.modules.get(name, {}).items()
                    if key not in DEPLOYMENT_KEYS and key != "enabled"
                }
                if old_section != section:
                    restart.append(
                        f"modules.{name}: runs in another process ({record.runtime}); restart "
                        "it to apply its new section"
                    )
            elif config != context.config:
                if record.module.reload is None:
                    restart.append(
                        f"modules.{name}: needs a restart (the module has no reload hook)"
                    )
                else:
                    changes.append((record, config))
        if problems:
            raise ConfigError(problems)
        return changes, restart

    async def _module_statuses(self) -> list[ModuleStatus]:
        report = await self.readiness()
        return [ModuleStatus(**module.model_dump(exclude={"version"})) for module in report.modules]


def _log_reload(report: ReloadReport) -> None:
    if report.status == "rejected":
        logger.error(
            "configuration reload rejected, the running configuration stays: %s",
            "; ".join(report.errors),
        )
        return
    logger.info(
        "configuration reloaded: %s",
        "applied to " + ", ".join(report.applied) if report.applied else "nothing to apply",
    )
    for line in report.errors:
        logger.error("configuration reload: %s", line)
    for line in report.restart_required:
        logger.warning("configuration reload: %s", line)


_FLAG = TypeAdapter(bool)


def _enabled(value: object) -> bool | None:
    """A module's ``enabled`` flag, or None if it is not one. Read before the module's schema
    is, so coerced here as the schema would: ``HYPERSPOT_MODULES__X__ENABLED=false`` is text."""
    try:
        return _FLAG.validate_python(value)
    except ValidationError:
        return None
