"""REST operations: one declaration drives routing, validation, access and the OpenAPI document.

A module receives a ``RestApi`` in its ``register_rest`` hook and declares each operation with the
fluent builder it returns::

    (api.operation("GET", "/hello/v1/greetings/{greeting_id}", "hello.get_greeting")
        .summary("Read one greeting")
        .path_params(GreetingPath)
        .response(200, Greeting)
        .error(404, "No greeting with that id")
        .public()
        .handler(get_greeting))

Every builder is checked when the gateway is built: an operation without a handler, without a
response, or without an explicit access decision stops start-up with a message naming it.

What a module's errors answer is declared once for all its operations, instead of a
``try``/``except`` in each handler::

    api.problems(UnknownLanguageError, lambda error: Problem(404, str(error)))
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from types import MappingProxyType
from typing import TypeVar, cast

import falcon.asgi
from pydantic import BaseModel

from hyperspot.platform.errors import OperationError
from hyperspot.platform.gateway.problems import Problem, ProblemError
from hyperspot.platform.identity import PERMISSION, RequestOrigin
from hyperspot.platform.security import SecurityContext

M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound=Exception)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
OPERATION_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
PATH_PARAM = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
DEFAULT_RATE_CLASS = "default"
PATH = re.compile(r"^(/[a-z0-9._~-]+|/\{[a-z_][a-z0-9_]*\})+$|^/$")


@dataclass(frozen=True)
class Reply:
    """A handler's answer when the status or headers differ from the first declared response."""

    status: int
    body: BaseModel | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # A text answer (e.g. Prometheus' exposition format) for a response declared with text().
    text: str | None = None
    # A body sent piece by piece as it is produced (e.g. Server-Sent Events), for a response
    # declared with streams(). Ended early when the client disconnects: the iterator is closed,
    # so its ``finally`` blocks run.
    stream: AsyncIterator[bytes] | None = None


class Call:
    """What a handler receives: the validated inputs and the request's identity."""

    def __init__(
        self,
        request: falcon.asgi.Request,
        *,
        origin: RequestOrigin,
        security: SecurityContext | None,
        query: BaseModel | None,
        path: BaseModel | None,
        body: BaseModel | None,
    ) -> None:
        self.request = request
        self.origin = origin
        self.request_id = origin.request_id
        self._security = security
        self._inputs: dict[str, BaseModel | None] = {"query": query, "path": path, "body": body}

    @property
    def security(self) -> SecurityContext:
        """The caller's verified context; public operations have one only if a credential came."""
        if self._security is None:
            raise RuntimeError("a public operation has no security context")
        return self._security

    @property
    def caller(self) -> SecurityContext | None:
        """The context if there is one: e.g. module-to-module calls made as the platform itself."""
        return self._security

    def query(self, model: type[M]) -> M:
        return self._input("query", model)

    def path(self, model: type[M]) -> M:
        return self._input("path", model)

    def body(self, model: type[M]) -> M:
        return self._input("body", model)

    def _input(self, where: str, model: type[M]) -> M:
        value = self._inputs[where]
        if not isinstance(value, model):
            raise TypeError(f"this operation declares no {where} of type {model.__qualname__}")
        return value


Handler = Callable[[Call], Awaitable[BaseModel | Reply | None]]
# What an error a handler raised answers as.
ProblemFactory = Callable[[Exception], Problem]
# Answers an operation served by another process (an out-of-process module): it gets the request
# after the gateway authenticated, authorized and admitted it.
Forwarder = Callable[
    [falcon.asgi.Request, falcon.asgi.Response, SecurityContext | None], Awaitable[None]
]


@dataclass(frozen=True)
class ResponseSpec:
    status: int
    model: type[BaseModel] | None
    description: str
    text_media_type: str | None = None
    # The response may instead be a stream of this media type (Reply.stream).
    stream_media_type: str | None = None


@dataclass(frozen=True)
class Access:
    """The access decision of an operation: public, any credential, a required permission, or
    internal (only the platform's own processes, with a signed call context)."""

    permission: str | None
    authenticated: bool
    internal: bool = False

    @property
    def is_public(self) -> bool:
        return not (self.authenticated or self.internal)


@dataclass(frozen=True)
class Operation:
    module: str
    method: str
    path: str
    operation_id: str
    summary: str
    description: str
    tags: tuple[str, ...]
    query_model: type[BaseModel] | None
    path_model: type[BaseModel] | None
    body_model: type[BaseModel] | None
    responses: tuple[ResponseSpec, ...]
    errors: dict[int, str]
    access: Access
    rate_limit: str | None
    handler: Handler
    # Set for an operation of an out-of-process module: documented by that process, and answered
    # by forwarding instead of by ``handler``.
    forward: Forwarder | None = None
    # The module's errors and what they answer as (RestApi.problems).
    problems: Mapping[type[Exception], ProblemFactory] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def problem_for(self, error: Exception) -> Problem | None:
        """The problem a handler's ``error`` answers as, or None for an unexpected error: the
        most specific declared class of it wins."""
        if isinstance(error, ProblemError):
            return error.to_problem()
        for kind in type(error).__mro__:
            factory = self.problems.get(kind)
            if factory is not None:
                return factory(error)
        return None

    @property
    def documented(self) -> bool:
        """Whether the platform's OpenAPI document describes it from this declaration."""
        return not self.access.internal and self.forward is None

    @property
    def success(self) -> ResponseSpec:
        return self.responses[0]

    def response_for(self, status: int) -> ResponseSpec | None:
        return next((spec for spec in self.responses if spec.status == status), None)


class OperationBuilder:
    def __init__(self, module: str, method: str, path: str, operation_id: str) -> None:
        self._module = module
        self._method = method.upper()
        self._path = path
        self._operation_id = operation_id
        self._summary = ""
        self._description = ""
        self._tags: tuple[str, ...] = (module,)
        self._query: type[BaseModel] | None = None
        self._path_model: type[BaseModel] | None = None
        self._body: type[BaseModel] | None = None
        self._responses: list[ResponseSpec] = []
        self._errors: dict[int, str] = {}
        self._access: Access | None = None
        self._rate_limit: str | None = None
        self._handler: Handler | None = None

    @property
    def name(self) -> str:
        return f"{self._method} {self._path} ({self._operation_id}, module '{self._module}')"

    def summary(self, text: str) -> OperationBuilder:
        self._summary = text
        return self

    def description(self, text: str) -> OperationBuilder:
        self._description = text
        return self

    def tags(self, *tags: str) -> OperationBuilder:
        self._tags = tags
        return self

    def query(self, model: type[BaseModel]) -> OperationBuilder:
        self._query = model
        return self

    def path_params(self, model: type[BaseModel]) -> OperationBuilder:
        self._path_model = model
        return self

    def body(self, model: type[BaseModel]) -> OperationBuilder:
        self._body = model
        return self

    def response(
        self, status: int, model: type[BaseModel] | None = None, description: str = ""
    ) -> OperationBuilder:
        if not 200 <= status < 600:
            raise OperationError(f"{self.name}: {status} is not an HTTP status")
        self._responses.append(
            ResponseSpec(status, model, description or HTTPStatus(status).phrase)
        )
        return self

    def text(self, status: int, media_type: str, description: str = "") -> OperationBuilder:
        """A response that is text of ``media_type`` rather than a JSON model."""
        self._responses.append(
            ResponseSpec(status, None, description or HTTPStatus(status).phrase, media_type)
        )
        return self

    def streams(self, media_type: str = "text/event-stream") -> OperationBuilder:
        """The success response (declared before) may also be a stream of ``media_type``: the
        handler answers ``Reply(status, stream=...)`` instead of a model when the client asks."""
        if not self._responses:
            raise OperationError(f"{self.name}: declare the success response before streams()")
        self._responses[0] = dataclasses.replace(self._responses[0], stream_media_type=media_type)
        return self

    def error(self, status: int, description: str) -> OperationBuilder:
        if not 400 <= status < 600:
            raise OperationError(f"{self.name}: error() takes 4xx and 5xx statuses")
        self._errors[status] = description
        return self

    def public(self) -> OperationBuilder:
        """Anyone may call it, without a credential."""
        return self._decide(Access(permission=None, authenticated=False))

    def authenticated(self) -> OperationBuilder:
        """Any valid credential may call it (e.g. "who am I"); no permission is needed."""
        return self._decide(Access(permission=None, authenticated=True))

    def require(self, permission: str) -> OperationBuilder:
        """Only a credential holding ``permission`` in the tenant it acts in may call it."""
        if not PERMISSION.match(permission):
            raise OperationError(
                f"{self.name}: permission {permission!r} must look like 'resource:action'"
            )
        return self._decide(Access(permission=permission, authenticated=True))

    def internal(self) -> OperationBuilder:
        """Only the platform's own processes may call it (module-to-module calls); no user
        credential is accepted and it is left out of the public OpenAPI document."""
        return self._decide(Access(permission=None, authenticated=False, internal=True))

    def rate_limit(self, limit_class: str) -> OperationBuilder:
        self._rate_limit = limit_class
        return self

    def handler(self, handler: Handler) -> Handler:
        """Set the handler; returns it unchanged so that this also works as a decorator."""
        self._handler = handler
        return handler

    def _decide(self, access: Access) -> OperationBuilder:
        if self._access is not None:
            raise OperationError(f"{self.name}: access was already decided")
        self._access = access
        return self

    def build(self) -> Operation:
        problems = []
        if self._method not in METHODS:
            problems.append(f"method must be one of {', '.join(METHODS)}")
        if not PATH.match(self._path):
            problems.append("path must be lower-case segments or {param} segments, from '/'")
        if not OPERATION_ID.match(self._operation_id):
            problems.append("operation id must be dotted lower-case words, e.g. 'notes.get_note'")
        if self._handler is None:
            problems.append("no handler")
        if not self._responses:
            problems.append("no response declared")
        elif not 200 <= self._responses[0].status < 300:
            problems.append("the first declared response must be the 2xx success")
        if self._access is None:
            problems.append(
                "no access decision: call public(), authenticated() or require('resource:action')"
            )
        if self._body is not None and self._method in ("GET", "DELETE"):
            problems.append(f"{self._method} operations take no body")
        problems.extend(self._path_problems())
        if problems:
            raise OperationError(f"operation {self.name}: " + "; ".join(problems))
        assert self._handler is not None and self._access is not None
        return Operation(
            module=self._module,
            method=self._method,
            path=self._path,
            operation_id=self._operation_id,
            summary=self._summary,
            description=self._description,
            tags=self._tags,
            query_model=self._query,
            path_model=self._path_model,
            body_model=self._body,
            responses=tuple(self._responses),
            errors=dict(self._errors),
            access=self._access,
            rate_limit=self._rate_limit,
            handler=self._handler,
        )

    def _path_problems(self) -> list[str]:
        in_path = set(PATH_PARAM.findall(self._path))
        declared = set(self._path_model.model_fields) if self._path_model is not None else set()
        if in_path == declared:
            return []
        return [
            f"path parameters {sorted(in_path)} do not match the path_params model "
            f"fields {sorted(declared)}"
        ]


class RestApi:
    """Collects one module's operations; handed to its ``register_rest`` hook."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.builders: list[OperationBuilder] = []
        self._problems: dict[type[Exception], ProblemFactory] = {}

    def problems(self, error: type[E], to_problem: Callable[[E], Problem]) -> RestApi:
        """Errors of class ``error`` (subclasses too) raised by any of this module's handlers
        answer ``to_problem(error)``: a contract's errors mapped to HTTP once, for every
        operation. Anything else a handler raises stays a 500 (logged, never shown)."""
        if not (isinstance(error, type) and issubclass(error, Exception)):
            raise OperationError(f"module '{self.module}': problems() takes an exception class")
        self._problems[error] = cast(ProblemFactory, to_problem)
        return self

    def operation(self, method: str, path: str, operation_id: str) -> OperationBuilder:
        builder = OperationBuilder(self.module, method, path, operation_id)
        self.builders.append(builder)
        return builder

    def build(self) -> list[Operation]:
        problems = MappingProxyType(dict(self._problems))
        return [
            dataclasses.replace(builder.build(), problems=problems) for builder in self.builders
        ]


def check_unique(operations: list[Operation]) -> None:
    """Refuse two operations on one method and path, or two with one operation id."""
    routes: dict[tuple[str, str], Operation] = {}
    ids: dict[str, Operation] = {}
    for op in operations:
        normalized = PATH_PARAM.sub("{}", op.path)
        other = routes.setdefault((op.method, normalized), op)
        if other is not op:
            raise OperationError(
                f"duplicate route {op.method} {op.path}: declared by '{other.operation_id}' "
                f"(module '{other.module}') and '{op.operation_id}' (module '{op.module}')"
            )
        other = ids.setdefault(op.operation_id, op)
        if other is not op:
            raise OperationError(
                f"duplicate operation id '{op.operation_id}': modules '{other.module}' "
                f"and '{op.module}'"
            )
