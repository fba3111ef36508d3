"""A TCP proxy the tests put between a server and its database, to make the database go away.

It runs its own asyncio loop in a daemon thread, so that synchronous tests drive it with plain
calls while server subprocesses talk through it:

- ``down()`` drops every open connection and refuses new ones (accepted, then closed at once:
  the client sees the server hang up, as when a database restarts or a firewall resets);
- ``stall()`` forwards nothing any more and holds new connections open without an answer (a
  database that accepts but never replies: only the clients' timeouts end the wait);
- ``up()`` forwards again; connections held by ``stall()`` are dropped then.

The machine's PostgreSQL and MariaDB serve other tests concurrently: never stop those.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
Mode = Literal["up", "down", "stall"]
CHUNK = 65536


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "up"
        self.port = 0
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing: asyncio.Event | None = None

    # -- control, from the test's thread ----------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def down(self) -> None:
        """Drop every connection now and hang up on new ones until ``up()``."""
        self._call(self._set("down"))

    def stall(self) -> None:
        """Stop forwarding: open connections freeze, new ones get no answer."""
        self._call(self._set("stall"))

    def up(self) -> None:
        self._call(self._set("up"))

    @property
    def open_connections(self) -> int:
        return len(self._writers)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    # -- the loop's side ----------------------------------------------------------------------

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _set(self, mode: Mode) -> None:
        assert self._flowing is not None
        previous, self.mode = self.mode, mode
        if mode == "stall":
            self._flowing.clear()
            return
        self._flowing.set()
        if mode == "down" or previous == "stall":
            await self._drop_all()

    async def _drop_all(self) -> None:
        writers, self._writers = list(self._writers), set()
        for writer in writers:
            _abort(writer)
        # Let the pipes notice and finish before the caller goes on.
        await asyncio.sleep(0.05)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self._drop_all()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "down":
            _abort(writer)
            return
        self._writers.add(writer)
        if self.mode == "stall":
            return  # held open, unanswered, until up() or down() drops it
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self._writers.discard(writer)
            _abort(writer)
            return
        self._writers.add(upstream_writer)
        pair = (writer, upstream_writer)
        await asyncio.gather(
            self._pipe(reader, upstream_writer, pair), self._pipe(upstream_reader, writer, pair)
        )

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        assert self._flowing is not None
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                await self._flowing.wait()
                if writer not in self._writers:
                    break  # dropped while this chunk was held
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            for each in pair:
                if each in self._writers:
                    self._writers.discard(each)
                    _abort(each)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (SO_LINGER 0): the peer learns at once that the connection is gone."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport = writer.transport
    transport.abort()
