"""The gRPC transport (grpcio): the service definition is generated from the contract.

Each contract a process serves becomes the service ``hyperspot.<module>.<Contract>`` with one unary
method per contract method; messages are the same JSON documents as on the HTTP transport (the
method's arguments model and result type), so nothing is written or compiled per module. The
caller's signed context and W3C trace context travel as call metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from hyperspot.platform.clients import ClientUnavailable
from hyperspot.platform.errors import HyperspotError
from hyperspot.platform.logs import module_var, tenant_var
from hyperspot.platform.rpc.context import ContextRejectedError, ContextSigner
from hyperspot.platform.rpc.contracts import (
    ContractFailure,
    ContractSpec,
    MethodSpec,
    decode_arguments,
)
from hyperspot.platform.rpc.proxy import Destination
from hyperspot.platform.security import SecurityContext

logger = logging.getLogger("hyperspot.clients.grpc")

CONTEXT_METADATA = "x-hyperspot-context"
# A contract's typed error travels as this status with the ContractFailure JSON as details.
FAILURE_CODE = grpc.StatusCode.FAILED_PRECONDITION

Behaviour = Callable[[bytes, grpc.aio.ServicerContext[bytes, bytes]], Awaitable[bytes]]


def service_name(module: str, spec: ContractSpec) -> str:
    return f"hyperspot.{module}.{spec.protocol.__name__}"


def describe_service(module: str, spec: ContractSpec) -> str:
    """The generated service definition, in proto syntax, for people and other-language clients."""
    lines = [
        'syntax = "proto3";',
        f"package hyperspot.{module};",
        "",
        "// Messages: JSON documents (UTF-8) of the contract's argument and result models.",
        "message Json { bytes json = 1; }",
        "",
        f"service {spec.protocol.__name__} {{",
    ]
    lines += [f"  rpc {name}(Json) returns (Json);" for name in spec.methods]
    lines.append("}")
    return "\n".join(lines) + "\n"


class GrpcServer:
    """One grpc.aio server per process for all the contracts its modules serve."""

    def __init__(self, signer: ContextSigner, tracer: trace.Tracer) -> None:
        self._signer = signer
        self._tracer = tracer
        self._server = grpc.aio.server()
        self.services: list[str] = []

    def add(self, module: str, spec: ContractSpec, implementation: object) -> None:
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                self._behaviour(module, spec, method, implementation)
            )
            for name, method in spec.methods.items()
        }
        name = service_name(module, spec)
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(name, handlers),)
        )
        self.services.append(name)

    async def start(self, host: str, port: int) -> int:
        bound = self._server.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise HyperspotError(f"cannot listen for gRPC on {host}:{port}")
        await self._server.start()
        return bound

    async def stop(self, grace_s: float) -> None:
        await self._server.stop(grace_s)

    def _behaviour(
        self, module: str, spec: ContractSpec, method: MethodSpec, implementation: object
    ) -> Behaviour:
        function = getattr(implementation, method.name)
        span_name = f"grpc {service_name(module, spec)}/{method.name}"
        signer, tracer = self._signer, self._tracer

        async def behaviour(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            metadata = {key: value for key, value in context.invocation_metadata() or ()}
            with tracer.start_as_current_span(
                span_name, context=propagate.extract(metadata), kind=SpanKind.SERVER
            ):
                module_var.set(module)
                try:
                    security = signer.verify(str(metadata.get(CONTEXT_METADATA, "")), module)
                except ContextRejectedError as error:
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(error))
                if method.security_param is not None and security is None:
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no caller context")
                try:
                    arguments = decode_arguments(
                        method, method.args_model.model_validate_json(request)
                    )
                except ValidationError as error:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
                if method.security_param is not None:
                    assert security is not None
                    tenant_var.set(security.tenant_id)
                    arguments[method.security_param] = security
                failure = None
                try:
                    result = await function(**arguments)
                except Exception as error:
                    failure = spec.failure(error)
                    if failure is None:
                        logger.error("%s failed", span_name, exc_info=error)
                        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
                if failure is not None:
                    await context.abort(FAILURE_CODE, failure.model_dump_json())
                encoded: bytes = method.result.dump_json(result)
                return encoded

        return behaviour


class GrpcChannels:
    """One channel per target, reused by every call; closed when the runtime stops."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}

    def get(self, target: str) -> grpc.aio.Channel:
        channel = self._channels.get(target)
        if channel is None:
            channel = self._channels[target] = grpc.aio.insecure_channel(target)
        return channel

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(None)
        self._channels.clear()


class GrpcInvoker:
    def __init__(self, destination: Destination, channels: GrpcChannels) -> None:
        self.destination = destination
        self.channels = channels
        self.service = service_name(destination.module, destination.spec)

    async def __call__(
        self,
        method: MethodSpec,
        security: SecurityContext | None,
        body: bytes,
        timeout_s: float,
    ) -> bytes:
        target, where = self.destination.locate(method)
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        metadata = [(CONTEXT_METADATA, self.destination.sign(security))]
        metadata += list(carrier.items())
        call = self.channels.get(target).unary_unary(f"/{self.service}/{method.name}", None, None)
        try:
            answer: bytes = await call(body, timeout=timeout_s, metadata=tuple(metadata))
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if code == FAILURE_CODE:
                failure = ContractFailure.model_validate_json(error.details() or "")
                self.destination.spec.raise_failure(failure)
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise ClientUnavailable(f"{where}: no answer within {timeout_s} s") from None
            raise ClientUnavailable(f"{where}: {code.name}: {error.details()}") from None
        return answer
