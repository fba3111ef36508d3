"""Remote clients: an object of the contract's type whose methods travel over a transport.

A transport is one function, ``Invoke``: it sends one encoded call and returns the encoded result,
raises the contract's typed error, or raises ``ClientUnavailable``. Timeouts and retries are the
same for every transport and live here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hyperspot.platform.clients import ClientUnavailable
from hyperspot.platform.rpc.context import ContextSigner
from hyperspot.platform.rpc.contracts import ContractSpec, MethodSpec, encode_call
from hyperspot.platform.security import SecurityContext

logger = logging.getLogger("hyperspot.clients")


@dataclass(frozen=True)
class CallPolicy:
    timeout_s: float = 5.0
    # Extra attempts after a failure, for idempotent methods (and for calls that never left).
    retries: int = 2
    backoff_s: float = 0.1


class NotSent(ClientUnavailable):
    """The call never reached the far side (connection refused): safe to retry for any method."""


# (method, caller's context, JSON body, timeout) -> JSON result
Invoke = Callable[[MethodSpec, SecurityContext | None, bytes, float], Awaitable[bytes]]


@dataclass(frozen=True)
class Destination:
    """Where a transport sends one module's calls; ``address`` is read at each call, so that a
    restarted child process on a new port is found without rebuilding the client."""

    module: str
    spec: ContractSpec
    address: Callable[[], str | None]
    signer: ContextSigner
    transport: str

    def locate(self, method: MethodSpec) -> tuple[str, str]:
        """(the current address, how to name the call in errors); NotSent if it has none."""
        where = f"{self.spec.name}.{method.name} (module '{self.module}', {self.transport})"
        address = self.address()
        if address is None:
            raise NotSent(f"{where}: the module is not running")
        return address, where

    def sign(self, security: SecurityContext | None) -> str:
        return self.signer.sign(security, self.module)


def build_proxy(spec: ContractSpec, invoke: Invoke, policy: CallPolicy) -> object:
    """An instance with one async method per contract method, calling through ``invoke``."""

    def remote_method(method: MethodSpec) -> Callable[..., Awaitable[Any]]:
        async def call(self: object, *args: Any, **kwargs: Any) -> Any:
            security, body = encode_call(method, args, kwargs)
            raw = await _with_retries(
                spec, method, policy=policy, invoke=invoke, security=security, body=body
            )
            return method.result.validate_json(raw)

        call.__name__ = method.name
        call.__qualname__ = f"Remote{spec.protocol.__name__}.{method.name}"
        return call

    namespace: dict[str, Any] = {name: remote_method(m) for name, m in spec.methods.items()}
    namespace["__repr__"] = lambda self: f"<remote {spec.name}>"
    return type(f"Remote{spec.protocol.__name__}", (), namespace)()


async def _with_retries(
    spec: ContractSpec,
    method: MethodSpec,
    *,
    policy: CallPolicy,
    invoke: Invoke,
    security: SecurityContext | None,
    body: bytes,
) -> bytes:
    attempt = 0
    while True:
        try:
            return await invoke(method, security, body, policy.timeout_s)
        except ClientUnavailable as error:
            retriable = method.idempotent or isinstance(error, NotSent)
            if not retriable or attempt >= policy.retries:
                raise
            attempt += 1
            delay = policy.backoff_s * 2 ** (attempt - 1)
            logger.warning(
                "%s.%s failed (%s); retry %d of %d in %.2f s",
                spec.name,
                method.name,
                error,
                attempt,
                policy.retries,
                delay,
            )
            await asyncio.sleep(delay)
