"""Faults a running server survives: its database going away, SIGTERM under load, a full disk.

The database outages go through a TCP proxy (``tcp_proxy.TcpProxy``) between the server and the
machine's database server, which other tests use at the same time and is therefore never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import psycopg2.errors
import pymysql
import pytest
from conftest import TEST_ENGINE, Launcher, Server, add_tenant, bearer, merge, secured_config
from pony.orm.core import CommitException
from pony.orm.dbapiprovider import IntegrityError as PonyIntegrityError
from pony.orm.dbapiprovider import OperationalError as PonyOperationalError
from tcp_proxy import TcpProxy
from traffic import Ledger, steady_traffic, stored_note_titles

from hyperspot.platform.db.faults import (
    DatabaseUnavailableError,
    is_conflict,
    is_contention,
    is_unavailable,
)
from hyperspot.platform.db.urls import DatabaseUrl
from hyperspot.sandbox.databases import ProvisionedDatabase

needs_server_database = pytest.mark.skipif(
    TEST_ENGINE == "sqlite", reason="an embedded SQLite file does not go away over the network"
)

MEMBER = ("member",)
POOL_SIZE = 4
# Every answer while the database is away must come at least this fast (the configured timeouts
# below are smaller): a request never hangs on a dead database.
ANSWER_BOUND_S = 5.0


def through(url: DatabaseUrl, proxy: TcpProxy) -> str:
    """``url`` with the proxy in place of the database server."""
    return url.url.replace(f"@{url.host}:{url.port}/", f"@127.0.0.1:{proxy.port}/")


@pytest.fixture
def proxy(database: ProvisionedDatabase) -> Iterator[TcpProxy]:
    with TcpProxy(database.url.host, database.url.port) as running:
        yield running


def proxied_config(database: ProvisionedDatabase, proxy: TcpProxy, **db: float) -> dict[str, Any]:
    return secured_config(
        through(database.url, proxy),
        {
            "database": {"pool_size": POOL_SIZE, "connect_timeout_s": 2, **db},
            "modules": {"notes": {"max_page_size": 1000}},
        },
    )


def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_unavailable_problem(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert body["type"].endswith("/database-unavailable")
    assert body["detail"] == "the database is unavailable; retry the request"
    assert body["request_id"] == response.headers["x-request-id"]


def database_status(server: Server) -> tuple[int, dict[str, Any]]:
    response = server.client.get("/health")
    return response.status_code, response.json()["database"]


def wait_until_healthy(server: Server, within_s: float = 15) -> float:
    """Seconds until /health says ok again (the server recovering by itself)."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if server.client.get("/health").status_code == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"not healthy again within {within_s} s:\n{server.log()[-3000:]}")


async def run_traffic(server: Server, headers: dict[str, str], seconds: float) -> Ledger:
    ledger = Ledger()
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        traffic = asyncio.create_task(
            steady_traffic(client, headers, ledger, stop, workers=2 * POOL_SIZE, prefix="after")
        )
        await asyncio.sleep(seconds)
        stop.set()
        await traffic
    return ledger


# --- the database goes away ----------------------------------------------------------------------


def test_which_errors_mean_the_database_is_unavailable() -> None:
    lost = psycopg2.OperationalError("server closed the connection unexpectedly")
    try:
        raise lost
    except psycopg2.OperationalError:
        commit_failed = CommitException("commit failed", [sys.exc_info()])
    module_error = RuntimeError("the module's own error")
    module_error.__cause__ = lost
    for transient in (
        lost,
        psycopg2.InterfaceError("connection already closed"),
        psycopg2.errors.QueryCanceled("canceling statement due to statement timeout"),
        pymysql.err.OperationalError(2013, "Lost connection to server during query"),
        pymysql.err.InterfaceError(0, ""),
        PonyOperationalError(lost),  # Pony's wrapper keeps the driver's error as original_exc
        commit_failed,
        module_error,
        DatabaseUnavailableError("no answer"),
    ):
        assert is_unavailable(transient), repr(transient)
    for lasting in (
        psycopg2.IntegrityError("duplicate key value violates unique constraint"),
        PonyIntegrityError(pymysql.err.IntegrityError(1062, "Duplicate entry")),
        pymysql.err.ProgrammingError(1146, "Table 'x' doesn't exist"),
        sqlite3.OperationalError("no such table: x"),  # a local file: never "unavailable"
        ValueError("a bug"),
    ):
        assert not is_unavailable(lasting), repr(lasting)


def test_which_errors_are_contention_with_another_transaction() -> None:
    deadlock = pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")
    for contention in (
        deadlock,
        PonyOperationalError(deadlock),
        pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"),
        psycopg2.errors.DeadlockDetected("deadlock detected"),
        psycopg2.errors.SerializationFailure("could not serialize access"),
        sqlite3.OperationalError("database is locked"),
        DatabaseUnavailableError("wrapped"),
    ):
        if isinstance(contention, DatabaseUnavailableError):
            contention.__cause__ = deadlock  # what the unit of work raises for it
        assert is_contention(contention), repr(contention)
    for other in (
        pymysql.err.OperationalError(2013, "Lost connection to server during query"),
        psycopg2.OperationalError("server closed the connection unexpectedly"),
        sqlite3.OperationalError("no such table: x"),
        PonyIntegrityError(pymysql.err.IntegrityError(1062, "Duplicate entry")),
        ValueError("a bug"),
    ):
        assert not is_contention(other), repr(other)
    # A key inserted by a concurrent unit is a conflict too, which a new attempt resolves.
    assert is_conflict(PonyIntegrityError(pymysql.err.IntegrityError(1062, "Duplicate entry")))
    assert is_conflict(deadlock)
    assert not is_conflict(sqlite3.OperationalError("no such table: x"))


@needs_server_database
def test_database_outage_answers_503_then_recovers_without_restart(
    launcher: Launcher, database: ProvisionedDatabase, proxy: TcpProxy
) -> None:
    server = launcher.start(proxied_config(database, proxy, statement_timeout_s=3))
    add_tenant(server, "acme")
    headers = bearer("acme", "ann", MEMBER)
    status, healthy = database_status(server)
    assert status == 200
    assert (healthy["backend"], healthy["healthy"]) == (database.url.backend, True)
    assert healthy["detail"].startswith("answered in ")
    ledger = Ledger()
    during: dict[str, Any] = {}

    async def scenario() -> None:
        stop = asyncio.Event()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            traffic = asyncio.create_task(
                steady_traffic(client, headers, ledger, stop, workers=4, prefix="outage")
            )
            await asyncio.sleep(0.5)
            await asyncio.to_thread(proxy.down)
            await asyncio.sleep(0.3)
            during["write"] = await asyncio.to_thread(
                timed,
                lambda: server.client.post("/notes/v1/notes", json={"title": "x"}, headers=headers),
            )
            during["health"] = await asyncio.to_thread(database_status, server)
            during["healthz"] = await client.get("/healthz")
            during["hello"] = await client.get("/hello/v1/languages")
            await asyncio.sleep(0.5)
            await asyncio.to_thread(proxy.up)
            during["recovered_in_s"] = await asyncio.to_thread(wait_until_healthy, server)
            await asyncio.sleep(0.3)
            stop.set()
            await traffic

    asyncio.run(scenario())

    write, elapsed = during["write"]
    assert_unavailable_problem(write)
    assert elapsed < 1.0  # refused at once: no waiting on a connection that cannot come
    status, database_health = during["health"]
    assert status == 503
    assert database_health == {
        "backend": database.url.backend,
        "healthy": False,
        "detail": "the database does not answer",
    }
    # What needs no database goes on.
    assert during["healthz"].status_code == 200
    assert during["hello"].status_code == 200
    assert during["recovered_in_s"] < 5
    # Under load through the outage: successes and retriable problems, nothing else, never slow.
    assert ledger.unexpected == []
    assert set(ledger.outcomes) <= {"200", "201", "503"}, ledger.outcomes
    assert ledger.count("503") > 0 and ledger.count("201") > 0
    assert ledger.slowest_s < ANSWER_BOUND_S
    # Recovered by itself (the same process): every pool worker serves again, none fails.
    assert server.process.poll() is None
    after = asyncio.run(run_traffic(server, headers, 1.0))
    assert after.failures == 0 and after.unexpected == [], after.outcomes
    assert after.count("201") > POOL_SIZE
    # No acknowledged write was lost.
    stored = stored_note_titles(server.client, headers)
    assert ledger.acknowledged.items() <= stored.items()
    assert after.acknowledged.items() <= stored.items()
    log = server.log()
    assert log.count("database health check failed") == 1
    assert "database health check passed again" in log
    assert "Traceback" not in log


@needs_server_database
def test_a_database_that_stops_answering_costs_a_bounded_wait(
    launcher: Launcher, database: ProvisionedDatabase, proxy: TcpProxy
) -> None:
    # The proxy holds every byte: only the timeouts end a wait (connect, statement + 1 s).
    statement_timeout_s = 1.5
    server = launcher.start(
        merge(
            proxied_config(database, proxy, statement_timeout_s=statement_timeout_s),
            {"database": {"connect_timeout_s": 1}, "auth": {"cache_ttl_s": 0}},
        )
    )
    add_tenant(server, "acme")
    headers = bearer("acme", "ann", MEMBER)
    assert server.client.get("/notes/v1/notes", headers=headers).status_code == 200

    proxy.stall()
    results: list[tuple[httpx.Response, float]] = []

    def call() -> None:
        results.append(timed(lambda: server.client.get("/notes/v1/notes", headers=headers)))

    # More callers than workers: those queued behind stuck workers are bounded as well.
    callers = [threading.Thread(target=call) for _ in range(POOL_SIZE + 2)]
    for caller in callers:
        caller.start()
    health, health_s = timed(lambda: server.client.get("/health"))
    for caller in callers:
        caller.join(timeout=30)
    assert len(results) == POOL_SIZE + 2
    for response, elapsed in results:
        assert_unavailable_problem(response)
        assert elapsed < statement_timeout_s + 2.5
    assert health.status_code == 503 and health.json()["database"]["healthy"] is False
    assert health_s < ANSWER_BOUND_S
    assert server.client.get("/hello/v1/languages").status_code == 200

    proxy.up()  # drops the held connections: the stuck workers get their error and return
    wait_until_healthy(server)
    after = asyncio.run(run_traffic(server, headers, 1.0))
    assert after.failures == 0 and after.unexpected == [], after.outcomes


@contextlib.contextmanager
def notes_locked(database: ProvisionedDatabase) -> Iterator[None]:
    """Hold a lock that makes every write of a note (and on MariaDB, every read) wait."""
    url = database.url
    if url.backend == "sqlite":
        connection: Any = sqlite3.connect(url.database, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")  # the one writer's lock
    else:
        connection = url.connect(autocommit=url.backend == "mysql")
        cursor = connection.cursor()
        if url.backend == "postgres":
            cursor.execute("LOCK TABLE notes_note IN ACCESS EXCLUSIVE MODE")
        else:
            cursor.execute("LOCK TABLES notes_note WRITE")
    try:
        yield
    finally:
        if url.backend == "mysql":
            connection.cursor().execute("UNLOCK TABLES")
        else:
            connection.rollback()
        connection.close()


@needs_server_database
def test_the_database_cancels_a_statement_past_the_timeout(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    statement_timeout_s = 1.0
    server = launcher.start(
        secured_config(
            database.url.url,
            {"database": {"statement_timeout_s": statement_timeout_s, "pool_size": POOL_SIZE}},
        )
    )
    add_tenant(server, "acme")
    headers = bearer("acme", "ann", MEMBER)
    with notes_locked(database):
        response, elapsed = timed(lambda: server.client.get("/notes/v1/notes", headers=headers))
        # The server's own timeout ended the wait (before the platform's bound, 1 s later).
        assert_unavailable_problem(response)
        assert statement_timeout_s * 0.9 < elapsed < statement_timeout_s + 0.9
    log = server.log()
    assert "statement timeout" in log or "max_statement_time" in log
    # The worker and its connection serve the next request at once.
    assert server.client.get("/notes/v1/notes", headers=headers).status_code == 200


# --- SIGTERM under load --------------------------------------------------------------------------


def post_note(url: str, headers: dict[str, str], title: str) -> httpx.Response | Exception:
    """One write on a connection of its own (as clients behind a load balancer make them)."""
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            return client.post("/notes/v1/notes", json={"title": title}, headers=headers)
    except httpx.TransportError as error:
        return error


@pytest.mark.slow
def test_sigterm_under_load_finishes_accepted_writes_and_refuses_new_ones(
    launcher: Launcher, database: ProvisionedDatabase
) -> None:
    grace_s = 10
    config = secured_config(
        database.url.url,
        {"server": {"grace_period_s": grace_s}, "modules": {"notes": {"max_page_size": 1000}}},
    )
    server = launcher.start(config)
    add_tenant(server, "acme")
    headers = bearer("acme", "ann", MEMBER)
    in_flight: dict[str, httpx.Response | Exception] = {}

    def write(title: str) -> None:
        in_flight[title] = post_note(server.url, headers, title)

    with notes_locked(database):  # the writes are accepted, then wait for the lock
        writers = [threading.Thread(target=write, args=(f"in flight {n}",)) for n in range(6)]
        for writer in writers:
            writer.start()
        time.sleep(0.7)
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.3)
        late = {f"late {n}": post_note(server.url, headers, f"late {n}") for n in range(4)}
    for writer in writers:
        writer.join(timeout=30)
    assert server.process.wait(timeout=grace_s + 5) == 0
    assert time.monotonic() - signalled < grace_s
    server.client.close()

    # Every accepted write completed; none was cut half-way.
    assert all(isinstance(r, httpx.Response) and r.status_code == 201 for r in in_flight.values())
    # Arrivals after the signal were never accepted: refused, or told to retry.
    for outcome in late.values():
        if isinstance(outcome, httpx.Response):
            assert outcome.status_code == 503, outcome.text
        else:
            assert isinstance(outcome, httpx.ConnectError), repr(outcome)
    # And what was acknowledged is stored: a new server on the same database reads it all.
    stored = stored_note_titles(launcher.start(config).client, headers)
    acknowledged = {
        r.json()["id"]: t for t, r in in_flight.items() if isinstance(r, httpx.Response)
    }
    assert acknowledged.items() <= stored.items()
    assert not any(title.startswith("late") for title in stored.values())


# --- a full disk for logs ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_full_disk_for_the_log_file_costs_log_lines_not_requests(
    launcher: Launcher, tmp_path: Path
) -> None:
    # /dev/full fails every write with ENOSPC, as a full disk does; the symlink lets the test
    # give the space back by pointing it at a real file.
    log_file = tmp_path / "logs" / "hyperspot.log"
    log_file.parent.mkdir()
    log_file.symlink_to("/dev/full")
    server = launcher.start({"logging": {"file": {"path": str(log_file), "format": "json"}}})
    for _ in range(20):
        assert server.client.get("/hello/v1/languages").status_code == 200
    health = server.client.get("/health")
    assert health.status_code == 200
    assert health.json()["database"]["healthy"] is True  # SQLite: the platform's own file
    log = server.log()
    assert log.count("cannot write the log file") == 1
    assert f"cannot write the log file {log_file}: No space left on device" in log
    assert "Logging error" not in log and "Traceback" not in log

    log_file.unlink()
    log_file.touch()  # space again
    marker = uuid.uuid4().hex
    assert (
        server.client.get("/hello/v1/languages", headers={"X-Request-Id": marker}).status_code
        == 200
    )
    assert server.stop() == 0
    written = log_file.read_text(encoding="utf-8")
    assert marker in written  # writing resumed by itself
    assert "is writable again;" in server.log()
