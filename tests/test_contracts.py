"""Contracts, call contexts and the retry policy, without processes (see test_rpc for those)."""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Protocol

import jwt
import pytest
from pydantic import BaseModel

from hyperspot.platform.clients import ClientHub, ClientUnavailable
from hyperspot.platform.rpc import ContractError, contract, idempotent
from hyperspot.platform.rpc.context import ContextRejectedError, ContextSigner
from hyperspot.platform.rpc.contracts import MethodSpec, encode_call, spec_of
from hyperspot.platform.rpc.grpc_transport import describe_service
from hyperspot.platform.rpc.proxy import CallPolicy, NotSent, build_proxy
from hyperspot.platform.security import SecurityContext

SECRET = "a-test-secret-for-call-contexts-0123456789"
ANN = SecurityContext(
    subject="ann",
    tenant_id="acme",
    permissions=frozenset({"notes:read"}),
    roles=frozenset({"member"}),
    token_id="t1",
)


class Item(BaseModel):
    name: str
    count: int = 0


class ItemMissingError(LookupError):
    pass


@contract(errors=(ItemMissingError,))
class ItemsApi(Protocol):
    @idempotent
    async def get(self, security: SecurityContext, name: str) -> Item: ...

    async def add(self, security: SecurityContext, item: Item, times: int = 1) -> list[Item]: ...

    async def ping(self) -> None: ...


def test_the_spec_is_read_from_the_protocol() -> None:
    spec = spec_of(ItemsApi)
    assert spec.wire_name == "items_api"
    assert set(spec.methods) == {"get", "add", "ping"}
    assert spec.methods["get"].idempotent and not spec.methods["add"].idempotent
    assert spec.methods["add"].params == ("item", "times")
    assert spec.methods["ping"].security_param is None
    security, body = encode_call(spec.methods["add"], (ANN, Item(name="x")), {})
    assert security is ANN
    assert body == b'{"item":{"name":"x","count":0},"times":1}'
    with pytest.raises(TypeError, match="SecurityContext"):
        encode_call(spec.methods["get"], ("not a context", "x"), {})
    proto = describe_service("shop", spec)
    assert "service ItemsApi {" in proto and "rpc add(Json) returns (Json);" in proto


def test_contracts_that_cannot_travel_are_refused_naming_the_method() -> None:
    class Plain(Protocol):
        async def get(self) -> int: ...

    @contract()
    class Blocking(Protocol):
        def get(self) -> int: ...

    @contract()
    class LateContext(Protocol):
        async def get(self, name: str, security: SecurityContext) -> int: ...

    @contract()
    class Untyped(Protocol):
        async def get(self, name) -> int: ...  # type: ignore[no-untyped-def]

    @contract()
    class NoReturn(Protocol):
        async def get(self, name: str): ...  # type: ignore[no-untyped-def]

    @contract()
    class Variadic(Protocol):
        async def get(self, *names: str) -> int: ...

    @contract()
    class Empty(Protocol):
        pass

    cases: list[tuple[type, str]] = [
        (Plain, "not a remote-capable contract"),
        (Blocking, "Blocking.get must be 'async def'"),
        (LateContext, "the SecurityContext must be the first parameter"),
        (Untyped, "parameter 'name' has no annotation"),
        (NoReturn, "the return type must be annotated"),
        (Variadic, "*args and **kwargs"),
        (Empty, "declares no methods"),
    ]
    for protocol, message in cases:
        with pytest.raises(ContractError, match=message.replace("*", r"\*")):
            spec_of(protocol)
    with pytest.raises(ContractError, match="distinct class names"):
        contract(errors=(ItemMissingError, type("ItemMissingError", (Exception,), {})))


def test_a_signed_context_comes_back_whole_and_only_for_its_module() -> None:
    signer = ContextSigner(SECRET)
    token = signer.sign(ANN, "items")
    assert signer.verify(token, "items") == ANN
    assert signer.verify(signer.sign(None, "items"), "items") is None
    with pytest.raises(ContextRejectedError, match="signed for 'items'"):
        signer.verify(token, "billing")
    # Captured and sent again, it is refused: each call signs its own.
    with pytest.raises(ContextRejectedError, match="already used"):
        signer.verify(token, "items")
    assert signer.verify(signer.sign(ANN, "items"), "items") == ANN
    with pytest.raises(ContextRejectedError, match="Signature verification failed"):
        ContextSigner("another-secret-of-the-right-length-0123").verify(token, "items")
    expired = jwt.encode(
        {"aud": "hyperspot-internal", "mod": "items", "sub": "x", "iat": 0, "exp": 1, "jti": "j"},
        SECRET,
        algorithm="HS256",
    )
    with pytest.raises(ContextRejectedError, match="expired"):
        signer.verify(expired, "items")
    with pytest.raises(ContextRejectedError, match="no call context"):
        signer.verify(None, "items")
    with pytest.raises(ValueError, match="at least 32"):
        ContextSigner("short")


def test_replay_memory_is_bounded_and_forgets_expired_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hyperspot.platform.rpc import context

    monkeypatch.setattr(context, "MAX_REMEMBERED", 3)
    signer = ContextSigner(SECRET)
    tokens = [signer.sign(ANN, "items") for _ in range(5)]
    for token in tokens:
        signer.verify(token, "items")
    assert len(signer._seen) == 3  # the two oldest forgotten to stay within the bound
    with pytest.raises(ContextRejectedError, match="already used"):
        signer.verify(tokens[-1], "items")
    for token_id in signer._seen:  # as if their minute were over
        signer._seen[token_id] = 0
    signer.verify(signer.sign(None, "items"), "items")
    assert len(signer._seen) == 1


class _FlakyFar:
    """An invoke function failing ``failures`` times with ``error`` before it answers."""

    def __init__(self, failures: int, error: ClientUnavailable) -> None:
        self.failures = failures
        self.error = error
        self.calls: list[str] = []

    async def __call__(
        self, method: MethodSpec, security: SecurityContext | None, body: bytes, timeout_s: float
    ) -> bytes:
        self.calls.append(method.name)
        if len(self.calls) <= self.failures:
            raise self.error
        if method.name == "get":
            return b'{"name":"x","count":3}'
        if method.name == "add":
            return b'[{"name":"x","count":0}]'
        return b"null"


POLICY = CallPolicy(timeout_s=1, retries=2, backoff_s=0.01)


def test_idempotent_methods_are_retried_the_others_not() -> None:
    far = _FlakyFar(2, ClientUnavailable("far side timed out"))
    items = build_proxy(spec_of(ItemsApi), far, POLICY)
    assert asyncio.run(items.get(ANN, "x")) == Item(name="x", count=3)  # type: ignore[attr-defined]
    assert far.calls == ["get"] * 3

    far = _FlakyFar(1, ClientUnavailable("far side timed out"))
    items = build_proxy(spec_of(ItemsApi), far, POLICY)
    with pytest.raises(ClientUnavailable, match="timed out"):
        asyncio.run(items.add(ANN, Item(name="x")))  # type: ignore[attr-defined]
    assert far.calls == ["add"]

    # A call that never left may be sent again whatever the method.
    far = _FlakyFar(1, NotSent("connection refused"))
    items = build_proxy(spec_of(ItemsApi), far, POLICY)
    assert asyncio.run(items.add(ANN, Item(name="x"))) == [Item(name="x")]  # type: ignore[attr-defined]
    assert far.calls == ["add", "add"]

    far = _FlakyFar(5, ClientUnavailable("down"))
    items = build_proxy(spec_of(ItemsApi), far, POLICY)
    started = time.monotonic()
    with pytest.raises(ClientUnavailable):
        asyncio.run(items.get(ANN, "x"))  # type: ignore[attr-defined]
    assert far.calls == ["get"] * 3  # one call and the two configured retries
    assert time.monotonic() - started >= 0.03  # backoff 0.01 s, then 0.02 s
    assert repr(items) == "<remote ItemsApi>"


def test_typed_errors_cross_as_their_own_type() -> None:
    spec = spec_of(ItemsApi)
    failure = spec.failure(ItemMissingError("no item x"))
    assert failure is not None and failure.error == "ItemMissingError"
    assert spec.failure(ValueError("not declared")) is None
    with pytest.raises(ItemMissingError, match="no item x"):
        spec.raise_failure(failure)
    with pytest.raises(ContractError, match="undeclared error 'Boom'"):
        spec.raise_failure(failure.model_copy(update={"error": "Boom"}))


def test_the_hub_hands_out_remote_clients_like_local_ones() -> None:
    hub = ClientHub()
    hub.register(
        ItemsApi, build_proxy(spec_of(ItemsApi), _FlakyFar(0, NotSent("")), POLICY), owner="items"
    )
    client = hub.get(ItemsApi)
    assert asyncio.run(client.get(ANN, "x")).count == 3


def test_servers_without_grpc_placements_do_not_load_grpc() -> None:
    """gRPC costs ~20 MB once imported: a server that places nothing on it must not pay."""
    import subprocess
    import sys

    code = (
        "import sys; import hyperspot.cli.main; import hyperspot.platform.rpc.child; "
        "from hyperspot.platform.server import prepare; prepare(None, quiet=True); "
        "print('grpc' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"


def test_a_parameter_named_like_a_model_method_builds_its_spec_quietly() -> None:
    # TypesRegistryApi.register takes ``validate``: pydantic would warn that it shadows
    # BaseModel.validate each time a server serves the contract to a module process.
    from hyperspot.modules.types_registry.contract import TypesRegistryApi

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = spec_of.__wrapped__(TypesRegistryApi)
    assert "validate" in spec.methods["register"].params
