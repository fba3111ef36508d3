"""REST operations of a module in another process, served through this gateway.

The module's process documents its operations in its own OpenAPI document; from it this gateway
declares the same routes with the same access decisions and rate-limit classes. A request is
authenticated, authorized and admitted here, then forwarded with the caller's signed context;
the module's process validates it and answers. A streamed answer (Server-Sent Events, any answer
sent in chunks) is passed on piece by piece as it comes, and stopped upstream when the client
goes away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import falcon.asgi
import httpx

from hyperspot.platform.gateway.operations import (
    Access,
    Call,
    Forwarder,
    Operation,
    ResponseSpec,
)
from hyperspot.platform.gateway.problems import Problem
from hyperspot.platform.gateway.streams import until_disconnected
from hyperspot.platform.rpc.context import CONTEXT_HEADER, ContextSigner
from hyperspot.platform.security import SecurityContext

# Not passed on: hop-by-hop headers, the caller's credential (replaced by the signed context),
# and what the gateway already resolved or sets itself.
_REQUEST_DROPPED = frozenset(
    {
        "authorization",
        "connection",
        "content-length",
        "host",
        "keep-alive",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "x-api-key",
        "x-tenant-id",
        CONTEXT_HEADER.lower(),
    }
)
_RESPONSE_DROPPED = frozenset(
    {
        "connection",
        "content-length",
        "date",
        "keep-alive",
        "server",
        "transfer-encoding",
        "x-request-id",
        "x-trace-id",
    }
)
METHODS = ("get", "post", "put", "patch", "delete")


def module_operations(
    module: str, document: dict[str, Any], forward: Forwarder
) -> tuple[list[Operation], dict[str, Any]]:
    """The module's operations (routing only) and its part of the OpenAPI document."""
    operations = []
    paths: dict[str, Any] = {}
    for path, item in document.get("paths", {}).items():
        for method, entry in item.items():
            if method not in METHODS or entry.get("x-hyperspot-module") != module:
                continue
            paths.setdefault(path, {})[method] = entry
            operations.append(_operation(module, method.upper(), path, entry, forward))
    return operations, paths


def _operation(
    module: str, method: str, path: str, entry: dict[str, Any], forward: Forwarder
) -> Operation:
    permission = entry.get("x-hyperspot-permission")
    access = Access(permission=permission, authenticated=bool(entry.get("security")))
    return Operation(
        module=module,
        method=method,
        path=path,
        operation_id=entry["operationId"],
        summary=entry.get("summary", ""),
        description=entry.get("description", ""),
        tags=tuple(entry.get("tags", ())),
        query_model=None,
        path_model=None,
        body_model=None,
        responses=(ResponseSpec(200, None, "forwarded", stream_media_type=_streamed(entry)),),
        errors={},
        access=access,
        rate_limit=entry.get("x-hyperspot-rate-limit"),
        handler=_never_called,
        forward=forward,
    )


def _streamed(entry: dict[str, Any]) -> str | None:
    """The other media type the operation's success may answer in (e.g. a stream of
    ``text/event-stream``), so that a client asking for it alone is not refused here."""
    responses = entry.get("responses", {})
    success = next((status for status in responses if str(status).startswith("2")), None)
    content = responses.get(success, {}).get("content", {}) if success else {}
    other = [media for media in content if media != "application/json"]
    return other[0] if other else None


async def _never_called(call: Call) -> None:  # pragma: no cover - forward answers instead
    raise RuntimeError("a forwarded operation has no local handler")


def forwarder(
    module: str,
    address: Callable[[], str | None],
    signer: ContextSigner,
    client: httpx.AsyncClient,
    *,
    max_body_bytes: int,
    timeout_s: float,
) -> Forwarder:
    unavailable = f"module '{module}' is unavailable; retry the request"

    async def forward(
        req: falcon.asgi.Request, resp: falcon.asgi.Response, security: SecurityContext | None
    ) -> None:
        base = address()
        if base is None:
            raise Problem(503, unavailable, headers={"Retry-After": "1"})
        body = await req.bounded_stream.read(max_body_bytes + 1)
        if len(body) > max_body_bytes:
            raise Problem(413, f"the request body exceeds {max_body_bytes} bytes")
        headers = {
            name: value
            for name, value in req.headers.items()
            if name.lower() not in _REQUEST_DROPPED
        }
        headers["x-request-id"] = req.context.request_id
        headers["x-forwarded-for"] = req.remote_addr or ""
        if security is not None:
            headers[CONTEXT_HEADER] = signer.sign(security, module)
        request = client.build_request(
            req.method, base + req.relative_uri, content=body, headers=headers, timeout=timeout_s
        )
        try:
            answer = await client.send(request, stream=True)
        except httpx.HTTPError:
            raise Problem(503, unavailable, headers={"Retry-After": "1"}) from None
        streamed = answer.headers.get("transfer-encoding", "").lower() == "chunked"
        try:
            content = None if streamed else await answer.aread()
        except httpx.HTTPError:
            raise Problem(503, unavailable, headers={"Retry-After": "1"}) from None
        finally:
            if not streamed:
                await answer.aclose()
        resp.status = answer.status_code
        for name, value in answer.headers.multi_items():
            if name.lower() not in _RESPONSE_DROPPED:
                resp.append_header(name, value)
        if content is not None:
            resp.data = content
            return
        # The module's process sends the pieces as it makes them; so does this gateway. Each
        # next piece waits at most timeout_s (a stream idle longer ends, logged).
        label = f"{req.method} {req.path} (module '{module}')"
        resp.stream = until_disconnected(req, _relay(answer), label)

    return forward


async def _relay(answer: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for piece in answer.aiter_raw():
            yield piece
    finally:
        # Closing the connection tells the module's process that no one reads any more.
        await answer.aclose()


def merge_documents(document: dict[str, Any], paths: dict[str, Any], other: dict[str, Any]) -> None:
    """Add a module process's paths and the schemas they refer to to ``document``."""
    for path, item in paths.items():
        document["paths"].setdefault(path, {}).update(item)
    schemas = document["components"]["schemas"]
    for name, schema in other.get("components", {}).get("schemas", {}).items():
        schemas.setdefault(name, schema)
    document["paths"] = dict(sorted(document["paths"].items()))
    document["components"]["schemas"] = dict(sorted(schemas.items()))
