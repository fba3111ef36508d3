"""Bad input over real HTTP: every bound of ``server.*`` answered cleanly by a running server.

Bodies too large (also chunked, or with a Content-Length that lies), JSON nested too deep, text
that is not UTF-8 or holds NUL, heads too large, slow clients, too many connections. The raw
socket tests speak HTTP/1.1 by hand: the point is what a client that does not follow the rules
gets, which a well-behaved client library would never send.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import (
    ROOT,
    TEST_ENGINE,
    Launcher,
    Server,
    bearer,
    secured_config,
)

from hyperspot.sandbox.databases import provision

PROBLEM = "application/problem+json"
GREET = "/hello/v1/greetings"
MAX_CONNECTIONS = 8
LIMITS: dict[str, Any] = {
    "max_body_bytes": 65_536,
    "max_json_depth": 16,
    "max_header_bytes": 4096,
    "max_headers": 30,
    "header_timeout_s": 1.0,
    "body_timeout_s": 1.0,
    "keep_alive_s": 1,
    "max_connections": MAX_CONNECTIONS,
    "backlog": 77,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("bad-input")
    database = provision(TEST_ENGINE, folder=folder)
    launcher = Launcher(folder)
    try:
        yield launcher.start(secured_config(database.url.url, {"server": LIMITS}))
    finally:
        launcher.close()
        database.drop()


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self, status: int, detail_has: str = "") -> dict[str, Any]:
        assert self.status == status, (self.status, self.body)
        assert self.headers["content-type"] == PROBLEM
        document: dict[str, Any] = json.loads(self.body)
        assert document["status"] == status
        assert detail_has in document["detail"], document
        return document


class Connection:
    """A client socket that reads responses one at a time (pipelined ones included)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> bool:
        """Read what arrived; False when the server closed the connection."""
        chunk = self.sock.recv(65_536)
        self.buffer += chunk
        return bool(chunk)


def connect(server: Server) -> Connection:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Connection(sock)


def read_response(conn: Connection) -> RawResponse | None:
    """The next response on ``conn``, or None when the server closed it without one."""
    while b"\r\n\r\n" not in conn.buffer:
        if not conn.receive():
            assert not conn.buffer, conn.buffer
            return None
    head, _, rest = conn.buffer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        assert conn.receive(), "the server closed the connection in the middle of a response"
        rest = conn.buffer.partition(b"\r\n\r\n")[2]
    conn.buffer = rest[length:]
    return RawResponse(int(status_line.split()[1]), headers, rest[:length])


def is_closed(conn: Connection, within_s: float) -> bool:
    if conn.buffer:
        return False
    conn.sock.settimeout(within_s)
    try:
        return not conn.receive()
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def exchange(server: Server, request: bytes) -> RawResponse:
    with connect(server) as conn:
        # Refused half-way, the sending fails: the answer is already waiting.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(request)
        response = read_response(conn)
    assert response is not None
    return response


def request(target: str, headers: str = "", body: bytes = b"", method: str = "GET") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: test\r\n{headers}"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def nested(depth: int) -> bytes:
    return b'{"names": ["a"], "language": "en", "extra": ' + b"[" * depth + b"]" * depth + b"}"


# -- bodies


@pytest.mark.slow
def test_body_larger_than_its_content_length_says_is_refused_before_reading(
    server: Server,
) -> None:
    started = time.monotonic()
    with connect(server) as conn:
        # Announces 10 MB and sends none of it: answered at once, nothing read.
        conn.sendall(request(GREET, "Content-Type: application/json\r\n", method="POST")[:-2])
        conn.sendall(b"Content-Length: 10485760\r\n\r\n")
        response = read_response(conn)
    assert response is not None
    response.problem(413, "65536 bytes")
    assert time.monotonic() - started < 1


@pytest.mark.slow
def test_chunked_body_is_bounded_while_it_streams(server: Server) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"names": ["'
        for _ in range(64):
            sent += 4096
            yield b"x" * 4096

    response = server.client.post(
        GREET, content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM


@pytest.mark.slow
@pytest.mark.parametrize("sent", [0, 5], ids=["no byte of it", "part of it"])
def test_body_shorter_than_its_content_length_times_out_with_408(server: Server, sent: int) -> None:
    body = b'{"names": ["ann"], "language": "en"}'
    started = time.monotonic()
    with connect(server) as conn:
        conn.sendall(request(GREET, method="POST", body=body)[: -len(body) + sent])
        response = read_response(conn)
        assert response is not None
        response.problem(408, "did not arrive within 1 s")
        assert response.headers["connection"] == "close"
        assert is_closed(conn, within_s=2)
    assert 0.9 < time.monotonic() - started < 3


@pytest.mark.slow
def test_body_longer_than_its_content_length_is_400(server: Server) -> None:
    body = b'{"names": ["ann"], "language": "en"}'
    lie = request(GREET, method="POST", body=body).replace(b"Length: 36", b"Length: 9")
    # The bytes after the first 9 do not make a request: the HTTP parser answers 400 (as plain
    # text) and closes, possibly before the application's own 400 for the 9 bytes.
    with connect(server) as conn:
        conn.sendall(lie)
        response = read_response(conn)
        assert response is not None and response.status == 400
        assert is_closed(conn, within_s=2)


@pytest.mark.slow
def test_body_trickled_to_an_operation_that_never_reads_it_is_cut_off(server: Server) -> None:
    with connect(server) as conn:
        conn.sendall(request("/healthz", "Content-Length: 1000\r\n") + b"x")
        response = read_response(conn)
        assert response is not None and response.status == 200
        started = time.monotonic()
        for _ in range(6):  # keeps sending: the keep-alive timeout alone would never fire
            time.sleep(0.3)
            try:
                conn.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                break
        assert is_closed(conn, within_s=2)
    assert time.monotonic() - started < 2.5


# -- JSON


@pytest.mark.slow
def test_json_nested_deeper_than_the_limit_is_400(server: Server) -> None:
    post = server.client.post
    headers = {"content-type": "application/json"}
    assert post(GREET, content=nested(15), headers=headers).status_code == 200
    for depth in (16, 1000, 30_000):
        response = post(GREET, content=nested(depth), headers=headers)
        assert response.status_code == 400, depth
        assert response.json()["detail"] == "the request body nests deeper than 16 levels"
    # Brackets inside strings are text, not nesting.
    text = json.dumps({"names": ["[" * 20, "{" * 20, '"[' * 10], "language": "en"})
    assert post(GREET, content=text, headers=headers).status_code == 200


@pytest.mark.slow
def test_invalid_utf8_in_a_body_is_400(server: Server) -> None:
    response = server.client.post(
        GREET,
        content=b'{"names": ["\xff\xfe"], "language": "en"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "target",
    [
        "/hello/v1/greetings/%FF",
        "/hello/v1/greetings/%C0%AF",  # an overlong encoding of '/'
        "/hello/v1/greetings/%ED%A0%80",  # a UTF-16 surrogate
        "/hello/v1/greetings/en?name=%FF%FE",
        "/notes/v1/notes?%FF=1",
        "/no/such/route/%FF",
    ],
)
def test_invalid_utf8_in_a_path_or_query_is_400(server: Server, target: str) -> None:
    part = "query string" if "?" in target else "path"
    response = exchange(server, request(target, "Connection: close\r\n"))
    response.problem(400, f"the {part} is not UTF-8 text")


@pytest.mark.slow
def test_raw_non_ascii_bytes_in_a_request_line_are_400(server: Server) -> None:
    # Refused by the HTTP parser itself, before the application: plain text, not a problem.
    response = exchange(server, b"GET /hello/v1/greetings/\xff HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.status == 400


def test_nul_characters_never_reach_the_database(server: Server) -> None:
    """PostgreSQL cannot store NUL in text; every backend refuses it alike, before storage."""
    admin = bearer(ROOT)
    client = server.client
    for body in ('{"title": "a\\u0000b"}', '{"title": "ok", "body": "\\\\\\u0000"}'):
        response = client.post(
            "/notes/v1/notes",
            content=body,
            headers={**admin, "content-type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["detail"] == "the request body contains a NUL character (\\u0000)"
    for query in ("$filter=title%20eq%20%27a%00%27", "cursor=%00"):
        response = client.get(f"/notes/v1/notes?{query}", headers=admin)
        assert response.status_code == 400, response.text
    assert client.get("/notes/v1/notes/%00", headers=admin).status_code == 400
    # An escaped backslash followed by "u0000" is text, not NUL.
    kept = client.post(
        "/notes/v1/notes",
        content='{"title": "\\\\u0000"}',
        headers={**admin, "content-type": "application/json"},
    )
    assert kept.status_code == 201, kept.text
    assert kept.json()["title"] == "\\u0000"


def test_blank_text_is_400_not_a_storage_error(server: Server) -> None:
    """Storage strips text (Python's notion of white space, wider than JSON Schema's \\s): text
    that strips to nothing must be refused as input, not fail in the database layer."""
    admin = {**bearer(ROOT), "content-type": "application/json"}
    for title in (" ", "\t\n", "\u001c\u3000"):
        response = server.client.post(
            "/notes/v1/notes", content=json.dumps({"title": title}), headers=admin
        )
        assert response.status_code == 400, (title, response.text)
        assert response.json()["errors"][0]["field"] == "body.title"
    created = server.client.post("/notes/v1/notes", json={"title": "  plan  "}, headers=admin)
    assert created.status_code == 201 and created.json()["title"] == "plan"


# -- heads


@pytest.mark.slow
def test_a_head_larger_than_the_limit_is_431(server: Server) -> None:
    big = "X-Big: " + "a" * 5000 + "\r\n"
    exchange(server, request("/healthz", big)).problem(431, "4096 bytes")
    long_target = "/hello/v1/greetings/en?name=" + "a" * 5000
    exchange(server, request(long_target)).problem(431, "request line and headers exceed")
    # Far larger, so that it arrives in many reads: refused long before its end.
    huge = "X-Huge: " + "a" * 8_000_000 + "\r\n"
    exchange(server, request("/healthz", huge)).problem(431)
    within = "X-Fine: " + "a" * 3000 + "\r\n"
    assert exchange(server, request("/healthz", within + "Connection: close\r\n")).status == 200


@pytest.mark.slow
def test_too_many_header_fields_are_431(server: Server) -> None:
    many = "".join(f"X-H{i}: v\r\n" for i in range(31))
    exchange(server, request("/healthz", many)).problem(431, "more than 30 header fields")
    thousands = "".join(f"X-H{i}: v\r\n" for i in range(100_000))
    exchange(server, request("/healthz", thousands)).problem(431)
    fine = "".join(f"X-H{i}: v\r\n" for i in range(25))
    assert exchange(server, request("/healthz", fine + "Connection: close\r\n")).status == 200


@pytest.mark.slow
def test_a_pipelined_request_is_refused_after_the_answers_before_it(server: Server) -> None:
    fine = request("/healthz")
    too_many = request("/healthz", "".join(f"X-H{i}: v\r\n" for i in range(40)))
    with connect(server) as conn:
        conn.sendall(request(GREET, method="POST", body=b'{"names": ["ann"]}') + fine + too_many)
        statuses = []
        while (response := read_response(conn)) is not None:
            statuses.append(response.status)
            if response.status == 431:
                response.problem(431, "more than 30 header fields")
    assert statuses == [200, 200, 431]


# -- slow clients and connections


@pytest.mark.slow
def test_slowloris_is_cut_off_while_others_are_served(server: Server) -> None:
    head = request("/healthz", "X-Slow: " + "z" * 40 + "\r\n")
    outcome: dict[str, Any] = {}

    def trickle() -> None:
        started = time.monotonic()
        with connect(server) as conn:
            try:
                for byte in head[:-2]:  # never the blank line that ends the head
                    conn.sendall(bytes([byte]))
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                pass
            outcome["response"] = read_response(conn)
            outcome["closed"] = is_closed(conn, within_s=1)
        outcome["after_s"] = time.monotonic() - started

    slow = threading.Thread(target=trickle)
    slow.start()
    latencies = []
    while slow.is_alive():
        started = time.monotonic()
        assert httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200
        latencies.append(time.monotonic() - started)
        time.sleep(0.05)
    slow.join()
    assert len(latencies) >= 5 and max(latencies) < 1, latencies
    response = outcome["response"]
    assert isinstance(response, RawResponse)
    response.problem(408, "did not arrive within 1 s")
    assert outcome["closed"]
    assert 0.9 < outcome["after_s"] < 3


@pytest.mark.slow
def test_a_connection_that_never_sends_is_closed_silently(server: Server) -> None:
    with connect(server) as conn:
        started = time.monotonic()
        assert is_closed(conn, within_s=3)
        assert read_response(conn) is None
    assert 0.9 < time.monotonic() - started < 3


@pytest.mark.slow
def test_idle_keep_alive_connection_is_closed(server: Server) -> None:
    with connect(server) as conn:
        conn.sendall(request("/healthz"))
        first = read_response(conn)
        assert first is not None and first.status == 200
        conn.sendall(request("/healthz"))  # kept alive for another request
        second = read_response(conn)
        assert second is not None and second.status == 200
        started = time.monotonic()
        assert is_closed(conn, within_s=3)
    assert 0.9 < time.monotonic() - started < 2.5


@pytest.mark.slow
def test_connections_beyond_the_cap_are_answered_503(server: Server) -> None:
    idle = [connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.1)  # accepted by the server
        refused = exchange(server, request("/healthz", "Connection: close\r\n"))
        refused.problem(503, "connection limit")
        assert refused.headers["retry-after"] == "1"
    finally:
        for conn in idle:
            conn.sock.close()
    deadline = time.monotonic() + 3
    while exchange(server, request("/healthz", "Connection: close\r\n")).status != 200:
        assert time.monotonic() < deadline, "the server did not recover from the cap"
        time.sleep(0.05)


@pytest.mark.slow
def test_listen_backlog_is_configured(server: Server) -> None:
    port = server.url.rsplit(":", 1)[1]
    listing = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=False
    )
    if listing.returncode != 0:
        pytest.skip("ss is not available")
    # For a listening socket, ss shows the backlog in the Send-Q column.
    assert listing.stdout.split()[2] == str(LIMITS["backlog"]), listing.stdout
