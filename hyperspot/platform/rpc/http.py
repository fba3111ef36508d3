"""The HTTP transport: each contract method is a POST operation of its module's own gateway.

The operations are built from the contract (``POST /_rpc/{module}/{contract}/{method}``, the
arguments as the JSON body, validated like any request) and go through the gateway like every
operation, traced and measured; they accept only a call context signed by the platform and are
left out of the public OpenAPI document.
"""

from __future__ import annotations

import json

import httpx

from hyperspot.platform.clients import ClientUnavailable
from hyperspot.platform.gateway.operations import Call, Handler, Operation, Reply, RestApi
from hyperspot.platform.gateway.problems import Problem
from hyperspot.platform.rpc.context import CONTEXT_HEADER
from hyperspot.platform.rpc.contracts import (
    ContractFailure,
    ContractSpec,
    MethodSpec,
    decode_arguments,
)
from hyperspot.platform.rpc.proxy import Destination, NotSent
from hyperspot.platform.security import SecurityContext

JSON = "application/json"
# A contract's typed error: the far side's answer, not a failure of the transport.
FAILURE_STATUS = 422


def rpc_path(module: str, spec: ContractSpec, method: MethodSpec) -> str:
    return f"/_rpc/{module}/{spec.wire_name}/{method.name}"


def rpc_operations(module: str, spec: ContractSpec, implementation: object) -> list[Operation]:
    api = RestApi(module)
    for method in spec.methods.values():
        (
            api.operation(
                "POST",
                rpc_path(module, spec, method),
                f"{module}.rpc_{spec.wire_name}_{method.name}",
            )
            .summary(f"{spec.name}.{method.name} (module-to-module call)")
            .body(method.args_model)
            .text(200, JSON, "The method's result")
            .response(FAILURE_STATUS, ContractFailure, "One of the contract's typed errors")
            .internal()
            .handler(_handler(spec, method, implementation))
        )
    return api.build()


def _handler(spec: ContractSpec, method: MethodSpec, implementation: object) -> Handler:
    function = getattr(implementation, method.name)

    async def handle(call: Call) -> Reply:
        arguments = decode_arguments(method, call.body(method.args_model))
        if method.security_param is not None:
            if call.caller is None:
                raise Problem(401, f"{spec.name}.{method.name} needs the caller's context")
            arguments[method.security_param] = call.caller
        try:
            result = await function(**arguments)
        except Exception as error:
            failure = spec.failure(error)
            if failure is None:
                raise
            return Reply(FAILURE_STATUS, failure)
        return Reply(200, text=method.result.dump_json(result).decode())

    return handle


class HttpInvoker:
    """Calls one module's contract methods over HTTP."""

    def __init__(self, destination: Destination, client: httpx.AsyncClient) -> None:
        self.destination = destination
        self.client = client

    async def __call__(
        self,
        method: MethodSpec,
        security: SecurityContext | None,
        body: bytes,
        timeout_s: float,
    ) -> bytes:
        destination = self.destination
        base, where = destination.locate(method)
        headers = {
            CONTEXT_HEADER: destination.sign(security),
            "content-type": JSON,
            "accept": JSON,
        }
        url = base.rstrip("/") + rpc_path(destination.module, destination.spec, method)
        try:
            response = await self.client.post(url, content=body, headers=headers, timeout=timeout_s)
        except httpx.ConnectError as error:
            raise NotSent(f"{where}: cannot connect to {base}: {error}") from None
        except httpx.TimeoutException:
            raise ClientUnavailable(f"{where}: no answer within {timeout_s} s") from None
        except httpx.HTTPError as error:
            raise ClientUnavailable(f"{where}: {error!r}") from None
        if response.status_code == 200:
            return response.content
        if response.status_code == FAILURE_STATUS:
            destination.spec.raise_failure(ContractFailure.model_validate_json(response.content))
        raise ClientUnavailable(f"{where}: answered {response.status_code} {_detail(response)}")


def _detail(response: httpx.Response) -> str:
    try:
        document = json.loads(response.content)
    except ValueError:
        return ""
    return str(document.get("detail", "")) if isinstance(document, dict) else ""
