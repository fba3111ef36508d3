"""ClientHub: where modules publish their client implementations and find each other's.

A module registers an implementation under the protocol type from its ``contract`` package; callers
ask for that protocol and never learn where the implementation lives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from hyperspot.platform.errors import HyperspotError

T = TypeVar("T")


class ClientNotFoundError(HyperspotError):
    """No module registered a client for the requested contract."""


class ClientUnavailable(HyperspotError):  # noqa: N818 - the contract's name for this failure
    """The module behind a contract could not be reached or did not answer in time.

    Every remote failure that is not one of the contract's own typed errors is this one error.
    """


# Wraps a client handed to a caller, e.g. to trace each call: (contract name, client) -> client.
ClientWrapper = Callable[[str, object], object]


def _unwrapped(contract: str, client: object) -> object:
    return client


class ClientHub:
    def __init__(self, wrap: ClientWrapper = _unwrapped) -> None:
        self._clients: dict[type[Any], tuple[str, object]] = {}
        self._wrap = wrap

    def register(self, contract: type[T], client: T, *, owner: str) -> None:
        existing = self._clients.get(contract)
        if existing is not None:
            raise HyperspotError(
                f"client for {contract.__qualname__} registered twice: "
                f"by '{existing[0]}' and '{owner}'"
            )
        self._clients[contract] = (owner, client)

    def get(self, contract: type[T]) -> T:
        try:
            client = self._clients[contract][1]
        except KeyError:
            raise ClientNotFoundError(
                f"no client registered for {contract.__qualname__}: is the module that provides it "
                "enabled and listed in depends_on?"
            ) from None
        return cast(T, self._wrap(contract.__qualname__, client))

    def find(self, contract: type[T]) -> T | None:
        """The registered client itself, or None: for the platform's own optional contracts."""
        entry = self._clients.get(contract)
        return None if entry is None else cast(T, entry[1])

    def owners(self) -> dict[str, str]:
        return {contract.__qualname__: owner for contract, (owner, _) in self._clients.items()}
