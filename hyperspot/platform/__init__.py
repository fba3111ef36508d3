"""The platform kernel's public API: what module code imports."""

from hyperspot.platform.clients import ClientHub, ClientNotFoundError
from hyperspot.platform.errors import (
    ConfigError,
    HyperspotError,
    ModuleGraphError,
    ModuleLoadError,
    OperationError,
    StartupError,
)
from hyperspot.platform.gateway.operations import Call, OperationBuilder, Reply, RestApi
from hyperspot.platform.gateway.problems import FieldError, Problem
from hyperspot.platform.identity import Permission, RequestOrigin
from hyperspot.platform.module import Capability, HealthCheck, Module, ModuleContext, NoConfig

__all__ = [
    "Call",
    "Capability",
    "ClientHub",
    "ClientNotFoundError",
    "ConfigError",
    "FieldError",
    "HealthCheck",
    "HyperspotError",
    "Module",
    "ModuleContext",
    "ModuleGraphError",
    "ModuleLoadError",
    "NoConfig",
    "OperationBuilder",
    "OperationError",
    "Permission",
    "Problem",
    "Reply",
    "RequestOrigin",
    "RestApi",
    "StartupError",
]
