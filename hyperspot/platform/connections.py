"""HTTP/1.1 connections with the bounds uvicorn's httptools protocol lacks.

uvicorn (checked up to 0.54) with httptools accepts a request head of any size with any number of
header lines, and gives a client as long as it likes to send it: a connection that trickles its
head byte by byte holds its socket for ever (slowloris), and so does one that trickles a body no
one reads. This is uvicorn's own protocol with, per request:

- a bound on the head's size and its number of header lines: 431 problem, connection closed;
- a body announced larger than ``server.max_body_bytes``: 413 problem at once (the gateway checks
  what actually arrives, e.g. a chunked body);
- a deadline for the head, from its first byte (or from the connection's opening): 408 problem
  when part of a head came, else a plain close (an idle pre-opened connection);
- a deadline for the body, from the end of the head: 408 problem when the application still waits
  for it, else the connection is closed once the response is out.

Idle keep-alive connections are uvicorn's ``timeout_keep_alive``; the number of connections is its
``limit_concurrency``. Everything else is uvicorn's, so responses and keep-alive stay as fast.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from hyperspot.platform.config import ServerSettings
from hyperspot.platform.gateway.problems import PROBLEM_MEDIA_TYPE, Problem, problem_document

logger = logging.getLogger("hyperspot.server")


@dataclass(frozen=True)
class ConnectionLimits:
    """The ``server.*`` settings the protocol enforces."""

    max_header_bytes: int
    max_headers: int
    max_body_bytes: int
    header_timeout_s: float
    body_timeout_s: float

    @classmethod
    def of(cls, settings: ServerSettings) -> ConnectionLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            max_body_bytes=settings.max_body_bytes,
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
        )


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration served by ``GuardedHttpProtocol`` with these limits."""

    def __init__(self, app: Any, *, limits: ConnectionLimits, **options: Any) -> None:
        super().__init__(app, http=GuardedHttpProtocol, **options)
        self.limits = limits


class GuardedHttpProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = (
            config.limits
            if isinstance(config, ServerConfig)
            else ConnectionLimits.of(ServerSettings())
        )
        # Between requests and while a head arrives; False while its body arrives (from the end
        # of the head to the end of the message).
        self._in_head = True
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._close_after_response = False
        self._refused = False
        # A refusal of a pipelined request, written once the responses before it are out.
        self._refusal: tuple[HTTPStatus, str, int | None] | None = None

    # -- the transport's events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._refused or self.transport.is_closing():
            return
        # Deadlines are set only for what is still incomplete once these bytes are parsed: a
        # request that arrives whole in one read (most do) costs no timer.
        if not self._in_head:
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_late)
            return
        # Until the head ends, every byte received belongs to it, so what the parser holds in its
        # buffers stays within one read of the limit.
        too_large = self._head_bytes and self._check_head(self._head_bytes, len(self.headers or ()))
        if self._head_bytes and not too_large and self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_late)

    # -- the parser's events

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        head_bytes = len(self.url)
        body_bytes = 0
        for name, value in self.headers:
            head_bytes += len(name) + len(value) + 4
            if name == b"content-length" and value.isdigit():
                body_bytes = int(value)
        if self._check_head(head_bytes, len(self.headers)):
            return
        if body_bytes > self.limits.max_body_bytes:
            # Answered now: the application would first wait for the body to start arriving.
            self._refuse(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the request body exceeds {self.limits.max_body_bytes} bytes",
            )
            return
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            # uvicorn's own answer here is a plain-text 503; every error is a problem document.
            self._refuse(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"the server is at its connection limit ({limit}, server.max_connections): "
                "retry shortly",
                retry_after_s=1,
            )
            return
        super().on_headers_complete()

    def _check_head(self, head_bytes: int, fields: int) -> bool:
        """Refuse the request if its head is too large; True when it was."""
        if fields > self.limits.max_headers:
            detail = f"the request has more than {self.limits.max_headers} header fields"
        elif head_bytes > self.limits.max_header_bytes:
            detail = f"the request line and headers exceed {self.limits.max_header_bytes} bytes"
        else:
            return False
        self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, detail)
        return True

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._in_head = True
        self._head_bytes = 0
        self._close_after_response = False

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start the next pipelined request
        if self._refusal is not None and not self._responding():
            self._write_refusal(*self._refusal)
        elif self._close_after_response and not self._responding():
            self.transport.close()

    # -- deadlines

    def _responding(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._responding():
            # A pipelined head is late while an earlier response is being written.
            self._close_after_response = True
        elif self._head_bytes:
            self._refuse(
                HTTPStatus.REQUEST_TIMEOUT,
                f"the request's headers did not arrive within {self.limits.header_timeout_s:g} s",
            )
        else:
            self.transport.close()

    def _body_late(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        detail = f"the request body did not arrive within {self.limits.body_timeout_s:g} s"
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            # The application answers without the rest of the body: let it finish, then close.
            self._close_after_response = True
        elif cycle is not None and not cycle.response_complete:
            # The application is still waiting for the body (Falcon waits for its first bytes
            # before calling anything): it is told the client left, and the client gets a 408.
            cycle.disconnected = True
            cycle.message_event.set()
            self._refuse(HTTPStatus.REQUEST_TIMEOUT, detail)
        else:
            # Answered already, and the body keeps trickling in.
            logger.warning("closed a connection from %s: %s", _client(self.client), detail)
            self.transport.close()

    def _refuse(self, status: HTTPStatus, detail: str, retry_after_s: int | None = None) -> None:
        """Answer a problem document outside the application and close the connection."""
        self._refused = True
        logger.warning("refused a request from %s: %s", _client(self.client), detail)
        if self._responding() and not self.cycle.disconnected:
            # A pipelined request: answered after the responses before it.
            self._refusal = (status, detail, retry_after_s)
        else:
            self._write_refusal(status, detail, retry_after_s)

    def _write_refusal(
        self, status: HTTPStatus, detail: str, retry_after_s: int | None = None
    ) -> None:
        request_id = uuid.uuid4().hex
        # The request's target (as far as it came), without its query.
        path = getattr(self, "url", b"").partition(b"?")[0].decode("latin-1")
        document = problem_document(Problem(status, detail), path, request_id)
        body = json.dumps(document).encode()
        lines = [f"HTTP/1.1 {status.value} {status.phrase}".encode()]
        lines += [name + b": " + value for name, value in self.server_state.default_headers]
        lines += [
            b"content-type: " + PROBLEM_MEDIA_TYPE.encode(),
            b"content-length: " + str(len(body)).encode(),
            b"x-request-id: " + request_id.encode(),
            b"connection: close",
        ]
        if retry_after_s is not None:
            lines.append(b"retry-after: " + str(retry_after_s).encode())
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        self.transport.close()


def _client(address: tuple[str, int] | None) -> str:
    return f"{address[0]}:{address[1]}" if address else "an unknown client"
