"""The Falcon ASGI application built from the registered operations."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import urllib.parse
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from itertools import accumulate
from typing import Any, get_args, get_origin

import falcon
import falcon.asgi
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import BaseModel, ValidationError

from hyperspot.platform.clients import ClientUnavailable
from hyperspot.platform.config import ServerSettings
from hyperspot.platform.db.faults import DatabaseUnavailableError, is_unavailable
from hyperspot.platform.gateway.docs import DocsAssetResource, DocsPageResource
from hyperspot.platform.gateway.operations import DEFAULT_RATE_CLASS, Call, Operation, Reply
from hyperspot.platform.gateway.problems import (
    CHALLENGE,
    PROBLEM_MEDIA_TYPE,
    FieldError,
    Problem,
    problem_document,
)
from hyperspot.platform.gateway.streams import until_disconnected
from hyperspot.platform.identity import (
    TENANT_HEADER,
    AccessDeniedError,
    IdentityResolver,
    Principal,
    RequestOrigin,
)
from hyperspot.platform.logs import module_var, request_id_var, tenant_var
from hyperspot.platform.observability.instrument import Observability
from hyperspot.platform.observability.metrics import NO_TENANT, Sample
from hyperspot.platform.observability.tracing import (
    METHOD,
    MODULE,
    REQUEST_ID,
    ROUTE,
    STATUS,
    TENANT,
    trace_hex,
)
from hyperspot.platform.ratelimit import RateLimiter
from hyperspot.platform.rpc.context import CONTEXT_HEADER, ContextRejectedError, ContextSigner
from hyperspot.platform.security import SecurityContext

logger = logging.getLogger("hyperspot.gateway")
access_logger = logging.getLogger("hyperspot.access")

REQUEST_ID_HEADER = "X-Request-Id"
TRACE_HEADER = "X-Trace-Id"
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
JSON_MEDIA = "application/json"

AsgiApp = falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]

# Turns a request's credential into a verified principal: None when there is no credential,
# a 401 Problem when there is a bad one.
Authenticator = Callable[[falcon.asgi.Request], Awaitable[Principal | None]]


class RequestIdMiddleware:
    """Gives each request an id (the caller's when valid) and logs one access line per request."""

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        offered = req.get_header(REQUEST_ID_HEADER)
        request_id = offered if offered and VALID_REQUEST_ID.match(offered) else uuid.uuid4().hex
        req.context.request_id = request_id
        req.context.started = time.perf_counter()
        request_id_var.set(request_id)
        resp.set_header(REQUEST_ID_HEADER, request_id)

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        elapsed_ms = (time.perf_counter() - req.context.started) * 1000
        # Logged inside the request's span (ended by now), so the line carries its trace ids.
        span = getattr(req.context, "span", None)
        with trace.use_span(span) if span is not None else contextlib.nullcontext():
            access_logger.info(
                "%s %s %s %.1fms",
                req.method,
                req.relative_uri,
                resp.status_code,
                elapsed_ms,
                extra={"status": resp.status_code, "duration_ms": round(elapsed_ms, 2)},
            )


def _serialize_problem(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, error: falcon.HTTPError
) -> None:
    request_id = getattr(req.context, "request_id", "")
    resp.content_type = PROBLEM_MEDIA_TYPE
    resp.text = json.dumps(problem_document(error, req.path, request_id))


def _retriable(error: Exception) -> bool:
    """A module or the database is unavailable: answered 503, not counted as a bug."""
    return isinstance(error, ClientUnavailable | DatabaseUnavailableError) or is_unavailable(error)


async def _unhandled(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, error: Exception, params: Any
) -> None:
    if is_unavailable(error):
        # A driver's connection error that did not pass through the platform's database layer.
        await _database_unavailable(req, resp, error, params)
        return
    # The traceback goes to the log (with the request id), never to the client.
    logger.error("unhandled error in %s %s", req.method, req.path, exc_info=error)
    resp.status = 500
    _serialize_problem(req, resp, Problem(500, "The server could not complete the request."))


async def _unavailable(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, error: Exception, params: Any
) -> None:
    # Another module (another process) could not be reached: a retriable condition, not a bug.
    logger.warning("%s %s: %s", req.method, req.path, error)
    resp.status = 503
    resp.set_header("Retry-After", "1")
    _serialize_problem(req, resp, Problem(503, "a module this request needs is unavailable"))


# Seconds a client should wait before retrying when the database is unavailable.
DATABASE_RETRY_AFTER_S = 2


async def _database_unavailable(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, error: Exception, params: Any
) -> None:
    # Lost, refused or too slow: transient, not a bug (no traceback). The reason names the
    # database server: the log has it, the client does not.
    logger.warning("%s %s: %s", req.method, req.path, error)
    resp.status = 503
    resp.set_header("Retry-After", str(DATABASE_RETRY_AFTER_S))
    problem = Problem(
        503, "the database is unavailable; retry the request", kind="database-unavailable"
    )
    _serialize_problem(req, resp, problem)


class _Route:
    """One path; Falcon finds its ``on_<method>`` responders by attribute."""


def _location(where: str, loc: Sequence[str | int]) -> str:
    return ".".join([where, *(str(part) for part in loc)])


def _validated(
    model: type[BaseModel] | None, data: Any, where: str, *, from_json: bool = False
) -> BaseModel | None:
    if model is None:
        return None
    try:
        if from_json:
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as error:
        issues = error.errors(include_url=False)
        if from_json and any(issue["type"] == "json_invalid" for issue in issues):
            raise Problem(400, f"the request body is not valid JSON: {issues[0]['msg']}") from None
        fields = [
            FieldError(field=_location(where, issue["loc"]), message=issue["msg"])
            for issue in issues
        ]
        names = ", ".join(f.field for f in fields)
        raise Problem(
            400, f"invalid input: {names}", kind="validation-error", errors=fields
        ) from None


def _query_dict(req: falcon.asgi.Request, model: type[BaseModel] | None) -> dict[str, Any]:
    if model is None:
        return {}
    # Parameters are named as the API spells them: a field's alias (e.g. "$filter") if it has one.
    fields = {info.alias or name: info for name, info in model.model_fields.items()}
    unknown = sorted(set(req.params) - set(fields))
    if unknown:
        raise Problem(
            400,
            f"unknown query parameter(s): {', '.join(unknown)}",
            kind="validation-error",
            errors=[FieldError(field=f"query.{n}", message="unknown parameter") for n in unknown],
        )
    values: dict[str, Any] = {}
    for name, value in req.params.items():
        # Falcon gives a repeated parameter as a list: a list field takes all values (also a
        # single one), a scalar field the last one.
        if _is_list(fields[name].annotation):
            values[name] = value if isinstance(value, list) else [value]
        else:
            values[name] = value[-1] if isinstance(value, list) else value
    return values


def _is_list(annotation: Any) -> bool:
    if get_origin(annotation) in (list, tuple, set, frozenset):
        return True
    return any(_is_list(arg) for arg in get_args(annotation))


class Gateway:
    def __init__(
        self,
        settings: ServerSettings,
        authenticate: Authenticator,
        resolver: IdentityResolver,
        limiter: RateLimiter,
        observability: Observability,
        *,
        call_contexts: ContextSigner | None = None,
        call_contexts_only: bool = False,
    ) -> None:
        """``call_contexts`` verifies module-to-module calls; ``call_contexts_only`` is for a
        module's own process, which serves only what the platform's gateway forwards to it."""
        self.call_contexts = call_contexts
        self.call_contexts_only = call_contexts_only
        self.settings = settings
        self.authenticate = authenticate
        self.resolver = resolver
        self.limiter = limiter
        self.observability = observability

    def build(self, operations: Sequence[Operation], openapi: dict[str, Any]) -> AsgiApp:
        middleware: list[Any] = [RequestIdMiddleware(), InputTextMiddleware()]
        cors = self.settings.cors
        if cors.allow_origins:
            middleware.append(
                falcon.CORSMiddleware(
                    allow_origins="*" if "*" in cors.allow_origins else cors.allow_origins,
                    expose_headers=cors.expose_headers,
                    allow_credentials=cors.allow_origins if cors.allow_credentials else None,
                )
            )
        app: AsgiApp = falcon.asgi.App(middleware=middleware)
        app.set_error_serializer(_serialize_problem)
        app.add_error_handler(Exception, _unhandled)
        app.add_error_handler(DatabaseUnavailableError, _database_unavailable)
        app.add_error_handler(ClientUnavailable, _unavailable)
        routes: dict[str, _Route] = defaultdict(_Route)
        for op in operations:
            setattr(routes[op.path], f"on_{op.method.lower()}", self._responder(op))
        for path, route in routes.items():
            app.add_route(path, route)
        openapi_bytes = json.dumps(openapi, indent=2).encode()
        app.add_route("/openapi.json", _StaticJson(openapi_bytes))
        app.add_route("/docs", DocsPageResource())
        app.add_route("/docs/assets/{name}", DocsAssetResource())
        return app

    def _responder(
        self, op: Operation
    ) -> Callable[[falcon.asgi.Request, falcon.asgi.Response], Awaitable[None]]:
        serve = self._server(op)
        observability = self.observability
        tracer, metrics = observability.tracer, observability.metrics
        span_name = f"{op.method} {op.path}"
        route_attributes = {ROUTE: op.path, METHOD: op.method, MODULE: op.module}

        async def respond(
            req: falcon.asgi.Request, resp: falcon.asgi.Response, **params: str
        ) -> None:
            # A W3C traceparent from the caller makes this request part of its trace.
            parent = propagate.extract(req.headers)
            started = time.perf_counter()
            status = 500
            req.context.tenant = NO_TENANT
            module_var.set(op.module)
            with tracer.start_as_current_span(
                span_name,
                context=parent,
                kind=SpanKind.SERVER,
                attributes={**route_attributes, REQUEST_ID: req.context.request_id},
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                req.context.span = span
                span_context = span.get_span_context()
                if span_context.is_valid:
                    resp.set_header(TRACE_HEADER, trace_hex(span_context.trace_id))
                if metrics is not None:
                    metrics.in_flight.inc()
                try:
                    await serve(req, resp, params)
                    status = resp.status_code
                except falcon.HTTPError as error:
                    status = error.status_code
                    raise
                except Exception as error:
                    # What the error handlers below will answer, for metrics and the span.
                    status = 503 if _retriable(error) else 500
                    raise
                finally:
                    if metrics is not None:
                        metrics.in_flight.dec()
                    span.set_attribute(STATUS, status)
                    span.set_attribute(TENANT, req.context.tenant)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                    observability.record_request(
                        Sample(
                            at=time.time(),
                            module=op.module,
                            method=op.method,
                            route=op.path,
                            status=status,
                            tenant=req.context.tenant,
                            duration_ms=(time.perf_counter() - started) * 1000,
                        )
                    )

        return respond

    def _server(
        self, op: Operation
    ) -> Callable[[falcon.asgi.Request, falcon.asgi.Response, dict[str, str]], Awaitable[None]]:
        """What answers one operation: auth, rate limit, validation, handler, response."""
        server_settings = self.settings
        identify = self._identify
        call_context = self._call_context
        call_contexts_only = self.call_contexts_only
        limiter = self.limiter
        limit_class = op.rate_limit or DEFAULT_RATE_CLASS
        tracer = self.observability.tracer
        handler_span = f"handler {op.operation_id}"
        stream_media = op.success.stream_media_type

        async def serve(
            req: falcon.asgi.Request, resp: falcon.asgi.Response, params: dict[str, str]
        ) -> None:
            if not (
                req.client_accepts_json
                or req.client_accepts(PROBLEM_MEDIA_TYPE)
                or (stream_media is not None and req.client_accepts(stream_media))
            ):
                raise Problem(406, f"this operation answers {JSON_MEDIA}; check the Accept header")
            origin = RequestOrigin(
                client=req.remote_addr or "",
                request_id=req.context.request_id,
                method=req.method,
                path=req.path,
            )
            access = op.access
            if access.internal or call_contexts_only:
                security = call_context(req, op)
            else:
                security = await identify(req, origin)
            if security is not None:
                req.context.tenant = security.tenant_id
                tenant_var.set(security.tenant_id)
            if access.authenticated and security is None:
                wanted = f"the permission '{access.permission}'" if access.permission else "any"
                raise Problem(
                    401,
                    f"this operation requires a credential ({wanted})",
                    headers=CHALLENGE,
                )
            if (
                security is not None
                and access.permission
                and not security.allows(access.permission)
            ):
                raise Problem(403, f"the credential lacks the permission '{access.permission}'")
            if access.internal or (call_contexts_only and security is not None):
                # The platform's own gateway admitted the call it forwards.
                decision = None
            elif security is None:
                decision = await limiter.admit(limit_class, None, f"ip:{origin.client}")
            else:
                # The caller's own tenant pays, also when a platform administrator acts elsewhere.
                decision = await limiter.admit(
                    limit_class,
                    security.home_tenant,
                    f"{security.home_tenant}/{security.subject}",
                )
            if decision is not None:
                if not decision.allowed:
                    raise Problem(
                        429,
                        f"rate limit '{limit_class}' exceeded: retry in {decision.retry_after_s} s",
                        headers=decision.headers(),
                    )
                resp.set_headers(decision.headers())
            if op.forward is not None:
                # Validated and answered by the module's own process.
                await op.forward(req, resp, security)
                return
            path = _validated(op.path_model, params, "path")
            query = _validated(op.query_model, _query_dict(req, op.query_model), "query")
            body = None
            if op.body_model is not None:
                body = _validated(
                    op.body_model, await _read_body(req, server_settings), "body", from_json=True
                )
            call = Call(
                req,
                origin=origin,
                security=security,
                query=query,
                path=path,
                body=body,
            )
            with tracer.start_as_current_span(handler_span):
                result = await _answer(op, call)
            _write(op, req, resp, result)

        return serve

    def _call_context(self, req: falcon.asgi.Request, op: Operation) -> SecurityContext | None:
        """The context another platform process signed for this call, verified."""
        token = req.get_header(CONTEXT_HEADER)
        if token is None and not op.access.internal:
            # A module process answers its public operations to anyone; the others get 401.
            return None
        if self.call_contexts is None:
            raise Problem(401, "module-to-module calls are not enabled here (clients.secret)")
        try:
            return self.call_contexts.verify(token, op.module)
        except ContextRejectedError as error:
            raise Problem(
                401, f"{error}: only the platform's own processes may call this operation"
            ) from None

    async def _identify(
        self, req: falcon.asgi.Request, origin: RequestOrigin
    ) -> SecurityContext | None:
        if req.get_header("Authorization") is not None:
            wait_s = self.limiter.refusing_credentials(origin.client)
            if wait_s:
                raise Problem(
                    429,
                    f"too many failed authentications from this address: retry in {wait_s} s",
                    headers={"Retry-After": str(wait_s)},
                )
        try:
            principal = await self.authenticate(req)
        except Problem as problem:
            if problem.status_code == 401:
                await self.limiter.credential_failed(origin.client)
            raise
        if principal is None:
            return None
        try:
            return await self.resolver.resolve(principal, req.get_header(TENANT_HEADER), origin)
        except AccessDeniedError as error:
            raise Problem(403, str(error)) from None


async def _read_body(req: falcon.asgi.Request, settings: ServerSettings) -> bytes:
    max_body = settings.max_body_bytes
    if req.content_length is not None and req.content_length > max_body:
        raise Problem(413, f"the request body exceeds {max_body} bytes")
    media = (req.content_type or "").split(";")[0].strip().lower()
    if media != JSON_MEDIA:
        raise Problem(415, f"send the request body as {JSON_MEDIA}")
    # Also bounds a chunked body. One that arrives too slowly is the server's to cut off
    # (server.body_timeout_s, see platform/connections.py).
    raw = await req.bounded_stream.read(max_body + 1)
    if len(raw) > max_body:
        raise Problem(413, f"the request body exceeds {max_body} bytes")
    _check_json_text(raw, settings.max_json_depth)
    return raw


# A JSON string with its escapes (an unterminated one runs to the end, so that matching stays
# linear on any input), to be cut out before brackets are counted.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NESTING = [0] * 256
_NESTING[ord("[")] = _NESTING[ord("{")] = 1
_NESTING[ord("]")] = _NESTING[ord("}")] = -1
# \u0000 preceded by an even number of backslashes (else the backslash is the escaped one).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _check_json_text(raw: bytes, max_depth: int) -> None:
    """Refuse nesting deeper than ``max_depth`` and NUL characters, before parsing.

    Done on the bytes, without recursion, in C-speed passes; the parser would only stop nesting at
    200 levels. NUL is refused for every backend alike: PostgreSQL cannot store it in text.
    """
    if raw.count(b"[") + raw.count(b"{") > max_depth:
        brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
        if max(accumulate(map(_NESTING.__getitem__, brackets)), default=0) > max_depth:
            raise Problem(400, f"the request body nests deeper than {max_depth} levels")
    if b"u0000" in raw and _NUL_ESCAPE.search(raw):
        raise Problem(400, "the request body contains a NUL character (\\u0000)")


class InputTextMiddleware:
    """Refuses a path or query string whose percent-escapes are not UTF-8 text without NUL.

    uvicorn and Falcon decode such escapes leniently (as U+FFFD), which would pass mangled text to
    handlers, and a NUL would reach the database, where PostgreSQL refuses it.
    """

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        scope = req.scope
        for part, raw in (("path", scope.get("raw_path")), ("query string", scope["query_string"])):
            if raw and b"%" in raw and not _is_text(urllib.parse.unquote_to_bytes(raw)):
                raise Problem(400, f"the {part} is not UTF-8 text without NUL characters")


def _is_text(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return b"\x00" not in data


def _write(
    op: Operation,
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    result: BaseModel | Reply | None,
) -> None:
    reply = result if isinstance(result, Reply) else Reply(op.success.status, result)
    spec = op.response_for(reply.status)
    if spec is None:
        raise RuntimeError(f"{op.operation_id} answered undeclared status {reply.status}")
    if reply.stream is not None:
        if spec.stream_media_type is None:
            raise RuntimeError(
                f"{op.operation_id} answered a stream for status {reply.status}, declared none "
                "(OperationBuilder.streams())"
            )
        resp.status = reply.status
        # Proxies (nginx) must pass each piece on as it comes, and nothing may cache it.
        resp.set_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        resp.set_headers(reply.headers)
        resp.content_type = spec.stream_media_type
        resp.stream = until_disconnected(req, reply.stream, op.operation_id)
        return
    if spec.model is not None and not isinstance(reply.body, spec.model):
        raise RuntimeError(
            f"{op.operation_id} answered {type(reply.body).__name__} for status {reply.status}, "
            f"declared {spec.model.__name__}"
        )
    resp.status = reply.status
    for name, value in reply.headers.items():
        resp.set_header(name, value)
    if spec.text_media_type is not None:
        resp.content_type = spec.text_media_type
        resp.text = reply.text or ""
    elif reply.body is not None:
        resp.content_type = JSON_MEDIA
        resp.data = reply.body.model_dump_json(by_alias=True).encode()


async def _answer(op: Operation, call: Call) -> BaseModel | Reply | None:
    """The handler's answer; an error the module declared (``RestApi.problems``) answers as its
    problem, any other stays an unexpected error (500)."""
    try:
        return await op.handler(call)
    except Exception as error:
        problem = op.problem_for(error)
        if problem is None:
            raise
        raise problem from None


class _StaticJson:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = JSON_MEDIA
        resp.data = self.body
