"""Client contracts: a module's typed Protocol, described once, callable over any transport.

A module marks the Protocol in its ``contract`` package with ``@contract(errors=...)``; the
platform reads the methods' signatures (the first parameter may be the caller's
``SecurityContext``; the others and the result are pydantic-serializable) and derives from them
the wire format of every remote transport, so no transport is written per module::

    @contract(errors=(NoteNotFoundError,))
    class NotesApi(Protocol):
        async def create(self, security: SecurityContext, note: NewNote) -> Note: ...

        @idempotent
        async def get(self, security: SecurityContext, note_id: str) -> Note: ...

``@idempotent`` marks the methods a transport may retry after a failure.
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict, TypeAdapter, create_model

from hyperspot.platform.errors import HyperspotError
from hyperspot.platform.security import SecurityContext

P = TypeVar("P", bound=type)
F = TypeVar("F", bound=Callable[..., Any])

_CONTRACT = "__hyperspot_contract__"
_IDEMPOTENT = "__hyperspot_idempotent__"
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


class ContractError(HyperspotError):
    """A contract cannot be served remotely as declared (named in the message)."""


class ContractFailure(BaseModel):
    """A typed error declared by the contract, as it travels between processes."""

    error: str
    message: str


@dataclass(frozen=True)
class MethodSpec:
    name: str
    # The name of the SecurityContext parameter (always the first), or None.
    security_param: str | None
    params: tuple[str, ...]
    args_model: type[BaseModel]
    result: TypeAdapter[Any]
    idempotent: bool
    signature: inspect.Signature


@dataclass(frozen=True)
class ContractSpec:
    protocol: type
    name: str
    wire_name: str
    errors: dict[str, type[Exception]]
    methods: dict[str, MethodSpec]

    def failure(self, error: Exception) -> ContractFailure | None:
        """The wire form of ``error`` if the contract declares its type, else None."""
        for name, kind in self.errors.items():
            if type(error) is kind:
                return ContractFailure(error=name, message=str(error))
        return None

    def raise_failure(self, failure: ContractFailure) -> None:
        kind = self.errors.get(failure.error)
        if kind is None:
            raise ContractError(
                f"{self.name}: the far side answered an undeclared error '{failure.error}'"
            )
        raise kind(failure.message)


@dataclass(frozen=True)
class _Declaration:
    errors: tuple[type[Exception], ...]


def contract(*, errors: tuple[type[Exception], ...] = ()) -> Callable[[P], P]:
    """Declare a Protocol as a client contract whose calls may cross process boundaries."""
    names = [kind.__name__ for kind in errors]
    if len(set(names)) != len(names):
        raise ContractError(f"contract errors must have distinct class names: {names}")

    def declare(protocol: P) -> P:
        setattr(protocol, _CONTRACT, _Declaration(errors))
        return protocol

    return declare


def idempotent(method: F) -> F:
    """Mark a contract method as safe to call twice: transports may retry it."""
    setattr(method, _IDEMPOTENT, True)
    return method


def is_contract(protocol: type) -> bool:
    return isinstance(protocol.__dict__.get(_CONTRACT), _Declaration)


def wire_name(protocol: type) -> str:
    """``NotesApi`` -> ``notes_api``: the contract's segment in RPC paths."""
    return _SNAKE.sub("_", protocol.__name__).lower()


@cache
def spec_of(protocol: type) -> ContractSpec:
    """The contract's description; raises ``ContractError`` naming what cannot travel."""
    declaration = protocol.__dict__.get(_CONTRACT)
    if not isinstance(declaration, _Declaration):
        raise ContractError(
            f"{protocol.__qualname__} is not a remote-capable contract: declare it with "
            "@contract(...) from hyperspot.platform.rpc"
        )
    methods = {}
    for name, function in inspect.getmembers(protocol, inspect.isfunction):
        if name.startswith("_"):
            continue
        methods[name] = _method_spec(protocol, name, function)
    if not methods:
        raise ContractError(f"{protocol.__qualname__} declares no methods")
    return ContractSpec(
        protocol=protocol,
        name=protocol.__qualname__,
        wire_name=wire_name(protocol),
        errors={kind.__name__: kind for kind in declaration.errors},
        methods=methods,
    )


def _method_spec(protocol: type, name: str, function: Callable[..., Any]) -> MethodSpec:
    where = f"{protocol.__qualname__}.{name}"
    if not inspect.iscoroutinefunction(function):
        raise ContractError(f"{where} must be 'async def': remote calls cannot block the caller")
    try:
        hints = get_type_hints(function)
    except NameError as error:
        raise ContractError(f"{where}: cannot resolve its annotations ({error})") from None
    signature = inspect.signature(function)
    parameters = list(signature.parameters.values())[1:]  # without self
    security_param = None
    fields: dict[str, Any] = {}
    for index, parameter in enumerate(parameters):
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ContractError(f"{where}: *args and **kwargs cannot be sent over the wire")
        annotation = hints.get(parameter.name)
        if annotation is None:
            raise ContractError(f"{where}: parameter '{parameter.name}' has no annotation")
        if annotation is SecurityContext:
            if index != 0:
                raise ContractError(f"{where}: the SecurityContext must be the first parameter")
            security_param = parameter.name
            continue
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    if "return" not in hints:
        raise ContractError(f"{where}: the return type must be annotated")
    with warnings.catch_warnings():
        # A parameter named like a BaseModel method (TypesRegistryApi.register's ``validate``)
        # shadows it; these models only carry arguments, so pydantic's warning says nothing.
        warnings.filterwarnings("ignore", message="Field name .* shadows an attribute")
        args_model = create_model(
            f"{protocol.__name__}_{name}_args",
            __config__=ConfigDict(extra="forbid"),
            **fields,
        )
    return MethodSpec(
        name=name,
        security_param=security_param,
        params=tuple(fields),
        args_model=args_model,
        result=TypeAdapter(hints["return"]),
        idempotent=bool(getattr(function, _IDEMPOTENT, False)),
        signature=signature,
    )


def encode_call(
    method: MethodSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[SecurityContext | None, bytes]:
    """A call's arguments as (the caller's context, the JSON body of the rest)."""
    bound = method.signature.bind(None, *args, **kwargs)
    values = dict(bound.arguments)
    values.pop(next(iter(method.signature.parameters)))  # self
    security = values.pop(method.security_param) if method.security_param else None
    if security is not None and not isinstance(security, SecurityContext):
        raise TypeError(f"{method.name}: the first argument must be a SecurityContext")
    return security, method.args_model(**values).model_dump_json().encode()


def decode_arguments(method: MethodSpec, body: BaseModel) -> dict[str, Any]:
    """The keyword arguments of the implementation's method, from a validated args model."""
    return {name: getattr(body, name) for name in method.params}
