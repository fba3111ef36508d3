"""Client-side helpers of the fault and scale-out tests: steady note traffic and its ledger.

The ledger is the client's truth: every write the server acknowledged (2xx) must be readable
afterwards, and every request that did not succeed is classified (a retriable problem, a
connection error, or something that should never happen).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

RETRIABLE_STATUSES = (502, 503, 504)


@dataclass
class Ledger:
    acknowledged: dict[str, str] = field(default_factory=dict)  # note id -> title
    outcomes: Counter[str] = field(default_factory=Counter)  # "201", "503", "ConnectError", ...
    failed: Counter[str] = field(default_factory=Counter)  # "POST 502", "GET ReadError", ...
    unexpected: list[str] = field(default_factory=list)  # what should never be seen
    slowest_s: float = 0.0

    def record(self, method: str, outcome: str, elapsed_s: float) -> None:
        self.outcomes[outcome] += 1
        if not outcome.startswith("2"):
            self.failed[f"{method} {outcome}"] += 1
        self.slowest_s = max(self.slowest_s, elapsed_s)

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    def count(self, *outcomes: str) -> int:
        return sum(self.outcomes[outcome] for outcome in outcomes)

    @property
    def failures(self) -> int:
        """Requests that got no 2xx answer."""
        return sum(self.failed.values())


def _check_problem(response: httpx.Response, ledger: Ledger) -> None:
    # A retriable answer from the platform is a problem document that says when to retry.
    # (nginx's own 502/504 pages are HTML: those come from the proxy, not the platform.)
    if response.headers.get("server", "").startswith("nginx"):
        return
    if response.headers.get("content-type") != "application/problem+json" or (
        "retry-after" not in response.headers
    ):
        ledger.unexpected.append(f"{response.status_code} without a problem: {response.text}")


async def write_note(
    client: httpx.AsyncClient, headers: dict[str, str], title: str, ledger: Ledger
) -> None:
    started = time.monotonic()
    try:
        response = await client.post("/notes/v1/notes", json={"title": title}, headers=headers)
    except httpx.TransportError as error:
        ledger.record("POST", type(error).__name__, time.monotonic() - started)
        return
    ledger.record("POST", str(response.status_code), time.monotonic() - started)
    if response.status_code == 201:
        ledger.acknowledged[response.json()["id"]] = title
    elif response.status_code in RETRIABLE_STATUSES:
        _check_problem(response, ledger)
    else:
        ledger.unexpected.append(f"POST {response.status_code}: {response.text}")


async def read_notes(client: httpx.AsyncClient, headers: dict[str, str], ledger: Ledger) -> None:
    started = time.monotonic()
    try:
        response = await client.get("/notes/v1/notes", params={"limit": 5}, headers=headers)
    except httpx.TransportError as error:
        ledger.record("GET", type(error).__name__, time.monotonic() - started)
        return
    ledger.record("GET", str(response.status_code), time.monotonic() - started)
    if response.status_code in RETRIABLE_STATUSES:
        _check_problem(response, ledger)
    elif response.status_code != 200:
        ledger.unexpected.append(f"GET {response.status_code}: {response.text}")


async def steady_traffic(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    ledger: Ledger,
    stop: asyncio.Event,
    *,
    workers: int,
    prefix: str,
) -> None:
    """``workers`` loops of write, read, write, ... until ``stop`` is set."""
    numbers = itertools.count()

    async def loop(worker: int) -> None:
        while not stop.is_set():
            n = next(numbers)
            if n % 2:
                await read_notes(client, headers, ledger)
            else:
                await write_note(client, headers, f"{prefix} {worker}-{n}", ledger)

    await asyncio.gather(*(loop(worker) for worker in range(workers)))


def stored_note_titles(
    client: httpx.Client, headers: dict[str, str], page: int = 1000
) -> dict[str, str]:
    """Every note the caller's tenant holds, read through the API (id -> title)."""
    notes: dict[str, str] = {}
    params: dict[str, str | int] = {"limit": page}
    while True:
        response = client.get("/notes/v1/notes", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        notes.update({item["id"]: item["title"] for item in body["items"]})
        if not body["next_cursor"]:
            return notes
        params = {"limit": page, "cursor": body["next_cursor"]}
