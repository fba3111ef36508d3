"""One runtime's links to modules in other processes, and the contracts it serves to them.

Deployment config decides, per module, where it runs (``runtime``) and how ClientHub reaches it
(``transport``); module code asks ``hub.get(Contract)`` and cannot tell the difference.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from hyperspot.platform.clients import ClientHub
from hyperspot.platform.config import ClientSettings, LoadedConfig, ModuleDeployment
from hyperspot.platform.errors import ConfigError, StartupError
from hyperspot.platform.gateway.operations import Operation
from hyperspot.platform.module import Module
from hyperspot.platform.observability.instrument import Observability, traced_http_client
from hyperspot.platform.rpc.context import ContextSigner
from hyperspot.platform.rpc.contracts import ContractError, is_contract, spec_of
from hyperspot.platform.rpc.forward import forwarder, merge_documents, module_operations
from hyperspot.platform.rpc.http import HttpInvoker, rpc_operations
from hyperspot.platform.rpc.proxy import CallPolicy, Destination, Invoke, build_proxy
from hyperspot.platform.rpc.supervisor import ModuleLocation, ModuleProcess, RemoteModule

if TYPE_CHECKING:
    from hyperspot.platform.rpc.grpc_transport import GrpcChannels, GrpcServer

logger = logging.getLogger("hyperspot.clients")

# Environment a module process reads (set by the supervisor, beside the parent's own).
SECRET_VARIABLE = "HYPERSPOT_CLIENTS__SECRET"  # noqa: S105 - a variable's name


def check_deployment(name: str, deployment: ModuleDeployment, loaded: LoadedConfig) -> None:
    where = loaded.source_of(("modules", name))
    problems = []
    transport = deployment.chosen_transport
    if deployment.runtime == "local" and transport != "local":
        problems.append(
            f"modules.{name}.transport: '{transport}' needs runtime 'oop' or 'remote' "
            f"(a local module is called directly) (from {where})"
        )
    if deployment.runtime != "local" and transport == "local":
        problems.append(
            f"modules.{name}.transport: a module in another process is called over 'http' or "
            f"'grpc', not 'local' (from {where})"
        )
    if deployment.runtime == "oop" and loaded.settings.server.workers > 1:
        problems.append(
            f"modules.{name}.runtime: 'oop' with server.workers > 1 would start one child per "
            f"worker; run the module 'remote' or use one worker (from {where})"
        )
    if deployment.runtime == "remote":
        if not deployment.address:
            problems.append(f"modules.{name}.address: required for runtime 'remote' ({where})")
        if transport == "grpc" and not deployment.grpc_address:
            problems.append(
                f"modules.{name}.grpc_address: required for runtime 'remote' with transport "
                f"'grpc' (from {where})"
            )
        if not loaded.settings.clients.secret:
            problems.append(
                f"clients.secret: required for the remote module '{name}' (the same value on "
                "both hosts)"
            )
    if problems:
        raise ConfigError(problems)


class ModuleLinks:
    def __init__(
        self,
        loaded: LoadedConfig,
        observability: Observability,
        deployments: Mapping[str, ModuleDeployment],
    ) -> None:
        self.loaded = loaded
        self.settings: ClientSettings = loaded.settings.clients
        self.observability = observability
        self.deployments = dict(deployments)
        elsewhere = [d for d in deployments.values() if d.runtime != "local"]
        secret = self.settings.secret
        if secret is None and any(d.runtime == "oop" for d in elsewhere):
            # Child processes get it through their environment; nothing else ever sees it.
            secret = secrets.token_urlsafe(32)
        self.secret = secret
        self.signer = ContextSigner(secret) if secret else None
        self.policy = CallPolicy(
            timeout_s=self.settings.timeout_s,
            retries=self.settings.retries,
            backoff_s=self.settings.backoff_s,
        )
        self._http: httpx.AsyncClient | None = None
        # gRPC costs ~20 MB of memory once imported: only servers that use it pay.
        self._channels: GrpcChannels | None = None
        self.locations: dict[str, ModuleLocation] = {}
        self.grpc_server: GrpcServer | None = None
        # This process's own HTTP address, for the module processes it starts to call back.
        self.own_url = ""
        self._documents: list[tuple[dict[str, Any], dict[str, Any]]] = []

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = traced_http_client(
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=64)
            )
        return self._http

    def register_remote(self, hub: ClientHub, modules: Sequence[Module[Any]]) -> None:
        """Give the hub a remote client for every contract that modules elsewhere provide."""
        for module in modules:
            deployment = self.deployments[module.name]
            location = self._location(module.name, deployment)
            self.locations[module.name] = location
            for protocol in module.provides:
                try:
                    spec = spec_of(protocol)
                except ContractError as error:
                    raise StartupError(
                        f"module '{module.name}' runs {deployment.runtime}: {error}"
                    ) from None
                invoke: Invoke
                transport = deployment.chosen_transport
                address = location.grpc_address if transport == "grpc" else location.http_address
                destination = Destination(module.name, spec, address, self._signer(), transport)
                if transport == "grpc":
                    from hyperspot.platform.rpc.grpc_transport import GrpcInvoker

                    invoke = GrpcInvoker(destination, self.channels)
                else:
                    invoke = HttpInvoker(destination, self.http)
                hub.register(protocol, build_proxy(spec, invoke, self.policy), owner=module.name)

    @property
    def channels(self) -> GrpcChannels:
        if self._channels is None:
            from hyperspot.platform.rpc.grpc_transport import GrpcChannels

            self._channels = GrpcChannels()
        return self._channels

    def _signer(self) -> ContextSigner:
        assert self.signer is not None, "check_deployment requires a secret for remote modules"
        return self.signer

    def _location(self, name: str, deployment: ModuleDeployment) -> ModuleLocation:
        if deployment.runtime == "remote":
            assert deployment.address is not None
            return RemoteModule(
                name, deployment.address, deployment.grpc_address, self.settings, self.http
            )
        command = [sys.executable, "-m", "hyperspot", "run-module", name]
        if self.loaded.path is not None:
            command += ["--config", str(self.loaded.path.resolve())]
        if deployment.chosen_transport == "grpc":
            command += ["--grpc-port", "0"]
        env = {**os.environ, SECRET_VARIABLE: self.secret or ""}
        return ModuleProcess(
            name,
            command,
            env,
            settings=self.settings,
            parent_url=lambda: self.own_url,
            client=self.http,
        )

    async def start(self) -> None:
        for location in self.locations.values():
            await location.start()

    async def stop(self, grace_s: float) -> None:
        for location in self.locations.values():
            await location.stop(grace_s)
        if self.grpc_server is not None:
            await self.grpc_server.stop(grace_s)
        if self._channels is not None:
            await self._channels.close()
        if self._http is not None:
            await self._http.aclose()

    def served_operations(self, hub: ClientHub, modules: Sequence[Module[Any]]) -> list[Operation]:
        """HTTP operations for the contracts this process's modules provide (when calls between
        processes are enabled at all)."""
        if self.signer is None:
            return []
        operations: list[Operation] = []
        for module, protocol in _served(modules):
            operations += rpc_operations(module.name, spec_of(protocol), hub.find(protocol))
        return operations

    async def serve_grpc(
        self, hub: ClientHub, modules: Sequence[Module[Any]], host: str, port: int
    ) -> int:
        from hyperspot.platform.rpc.grpc_transport import GrpcServer

        server = GrpcServer(self._signer(), self.observability.tracer)
        for module, protocol in _served(modules):
            server.add(module.name, spec_of(protocol), hub.find(protocol))
        self.grpc_server = server
        return await server.start(host, port)

    async def remote_operations(self) -> list[Operation]:
        """Route the REST operations of modules elsewhere through this gateway."""
        operations: list[Operation] = []
        for name, location in self.locations.items():
            base = location.http_address()
            response = await self.http.get(f"{base}/openapi.json", timeout=10)
            if response.status_code != 200:
                raise StartupError(
                    f"module '{name}': its OpenAPI document answered {response.status_code}"
                )
            other = response.json()
            forward = forwarder(
                name,
                location.http_address,
                self._signer(),
                self.http,
                max_body_bytes=self.loaded.settings.server.max_body_bytes,
                timeout_s=self.settings.forward_timeout_s,
            )
            found, paths = module_operations(name, other, forward)
            self._documents.append((paths, other))
            operations += found
        return operations

    def document(self, document: dict[str, Any]) -> dict[str, Any]:
        """``document`` with the operations of modules elsewhere, as they document them."""
        for paths, other in self._documents:
            merge_documents(document, paths, other)
        return document


def _served(modules: Sequence[Module[Any]]) -> list[tuple[Module[Any], type]]:
    return [
        (module, protocol)
        for module in modules
        for protocol in module.provides
        if is_contract(protocol)
    ]
