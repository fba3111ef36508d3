"""ClientHub: typed lookup of module clients by contract."""

from typing import Protocol

import pytest

from hyperspot.platform import ClientHub, ClientNotFoundError, HyperspotError


class Clock(Protocol):
    def now(self) -> int: ...


class FixedClock:
    def now(self) -> int:
        return 42


def test_register_and_get() -> None:
    hub = ClientHub()
    hub.register(Clock, FixedClock(), owner="time")
    assert hub.get(Clock).now() == 42
    assert hub.owners() == {"Clock": "time"}


def test_missing_and_duplicate_clients_are_explained() -> None:
    hub = ClientHub()
    with pytest.raises(ClientNotFoundError, match="no client registered for Clock"):
        hub.get(Clock)
    hub.register(Clock, FixedClock(), owner="time")
    with pytest.raises(HyperspotError, match="registered twice: by 'time' and 'other'"):
        hub.register(Clock, FixedClock(), owner="other")
