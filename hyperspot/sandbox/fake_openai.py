"""A fake OpenAI-compatible API for tests, demos and benchmarks: deterministic, fast, scriptable.

It serves ``GET /v1/models``, ``POST /v1/chat/completions`` (JSON and Server-Sent Events) and
``POST /v1/embeddings`` the way OpenAI does, with answers derived from the input:

* chat: the reply is ``Echo: <the last user message>``; usage counts words (prompt: every
  message's words; completion: the reply's), ``max_tokens`` cuts the reply (``finish_reason``
  ``length``); a stream sends one word per chunk, and the usage chunk when
  ``stream_options.include_usage`` asks for it;
* embeddings: unit vectors from a hash of each text (``dimensions`` long, 16 by default).

Failures are injected through :class:`FakeOpenAIControl` (in the process) or ``POST
/_fake/control`` (from outside): the next requests answer an error status (with
``Retry-After``), hang, or break off their stream. Every request is recorded.

In a test, the server runs in a thread::

    with running_fake_openai(api_key="sk-test", latency_ms=5) as (base_url, control):
        control.fail_next(2, status=503)
        ...  # call f"{base_url}/chat/completions"
        assert control.count("/v1/chat/completions") == 3

As a process (benchmarks, demos): ``python -m hyperspot.sandbox.fake_openai --port 8090
--latency-ms 20 --api-key-env MY_KEY --model my-chat --model my-embed``; it prints ``fake OpenAI
API on http://127.0.0.1:8090/v1`` on stderr (``--port 0``: a free port, the one printed).
A model not served (``--model``, default ``fake-chat`` and ``fake-embed``) is answered 404.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import falcon
import falcon.asgi
import uvicorn

DEFAULT_MODELS = ("fake-chat", "fake-embed")
DEFAULT_DIMENSIONS = 16
# Recorded requests kept: enough for any test, bounded for a benchmark's millions.
RECORD_LIMIT = 10_000
# A hang or a latency sleep wakes this often to notice that the server is stopping.
_SLEEP_SLICE_S = 0.05

CHAT_PATH = "/v1/chat/completions"
SERVER_ERROR = "The server had an error while processing your request."
RATE_LIMITED = "Rate limit reached for requests."

FaultKind = Literal["status", "hang", "break_stream"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received (headers lower-cased, the body as parsed JSON)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class Fault:
    """What the next ``count`` matching requests suffer.

    ``status``: answer ``status`` with OpenAI's error body (and ``Retry-After`` if set);
    ``hang``: wait ``seconds`` before answering normally; ``break_stream``: a stream stops after
    ``after_chunks`` chunks, with an ``error`` event (``drop`` false) or by closing the connection.
    """

    kind: FaultKind
    count: int = 1
    status: int = 500
    retry_after: float | None = None
    message: str | None = None  # None: what OpenAI says for the status
    seconds: float = 30.0
    after_chunks: int = 1
    drop: bool = False
    path: str | None = None  # only requests to this path (e.g. "/v1/chat/completions")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        if data.get("kind") not in ("status", "hang", "break_stream"):
            raise ValueError("fault kind must be 'status', 'hang' or 'break_stream'")
        return cls(**data)


class FakeOpenAIControl:
    """The fake's behaviour and what it saw; safe to use from the test's thread."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        latency_ms: float = 0.0,
        chunk_delay_ms: float = 0.0,
        models: Sequence[str] = DEFAULT_MODELS,
        record: bool = True,
    ) -> None:
        self.api_key = api_key  # None: any caller is accepted
        self.latency_s = latency_ms / 1000
        self.chunk_delay_s = chunk_delay_ms / 1000
        self.models = list(models)
        self.record = record
        self.stopping = False
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._requests: deque[RecordedRequest] = deque(maxlen=RECORD_LIMIT)
        self._total = 0
        self._ids = itertools.count(1)

    # -- scripting -------------------------------------------------------------------------------

    def set_latency(self, latency_ms: float, chunk_delay_ms: float | None = None) -> None:
        """Delay before every answer (and between stream chunks, if given)."""
        self.latency_s = latency_ms / 1000
        if chunk_delay_ms is not None:
            self.chunk_delay_s = chunk_delay_ms / 1000

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        *,
        retry_after: float | None = None,
        message: str | None = None,
        path: str | None = None,
    ) -> None:
        """The next ``count`` requests answer ``status`` in OpenAI's error shape."""
        self.add_fault(
            Fault(
                "status", count, status=status, retry_after=retry_after, message=message, path=path
            )
        )

    def hang_next(self, count: int = 1, seconds: float = 30.0, *, path: str | None = None) -> None:
        """The next ``count`` requests wait ``seconds`` before answering."""
        self.add_fault(Fault("hang", count, seconds=seconds, path=path))

    def break_stream_next(
        self, count: int = 1, after_chunks: int = 1, *, drop: bool = False
    ) -> None:
        """The next ``count`` streams stop after ``after_chunks`` chunks: with an error event, or
        (``drop``) by closing the connection mid-response."""
        self.add_fault(
            Fault("break_stream", count, after_chunks=after_chunks, drop=drop, path=CHAT_PATH)
        )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Forget faults and recorded requests."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self._total = 0

    # -- what was received -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def total(self) -> int:
        """Requests received since the last reset (the record keeps the last RECORD_LIMIT)."""
        return self._total

    def count(self, path: str | None = None) -> int:
        return sum(1 for request in self.requests if path is None or request.path == path)

    # -- used by the app -------------------------------------------------------------------------

    def _note(self, request: RecordedRequest) -> None:
        with self._lock:
            self._total += 1
            if self.record:
                self._requests.append(request)

    def _take_fault(self, path: str, kinds: tuple[FaultKind, ...]) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and fault.path in (None, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _next_id(self) -> str:
        return f"chatcmpl-fake-{next(self._ids)}"


def words(text: str) -> int:
    """The fake's token count: whitespace-separated words."""
    return len(text.split())


def error_body(
    message: str, kind: str, *, code: str | None = None, param: str | None = None
) -> str:
    """OpenAI's error JSON."""
    return json.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def embedding_of(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text``."""
    digest = hashlib.shake_256(text.encode()).digest(2 * dimensions)
    raw = [
        (int.from_bytes(digest[i : i + 2], "big") / 32767.5) - 1.0
        for i in range(0, 2 * dimensions, 2)
    ]
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return [round(value / norm, 6) for value in raw]


class _BadRequestError(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status


@dataclass
class _Reply:
    words: list[str] = field(default_factory=list)
    finish_reason: str = "stop"
    prompt_tokens: int = 0


class FakeOpenAIApp:
    """The Falcon resources of the fake, sharing one :class:`FakeOpenAIControl`."""

    def __init__(self, control: FakeOpenAIControl) -> None:
        self.control = control

    async def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.control.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, _SLEEP_SLICE_S))

    async def _admit(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> Any:
        """Record the request, apply latency and faults, check the key: the parsed body, or
        ``None`` when ``resp`` already holds the answer."""
        raw = await req.stream.read() if req.method == "POST" else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = _BadRequestError("the body is not valid JSON")
        control = self.control
        control._note(
            RecordedRequest(
                req.method,
                req.path,
                {name.lower(): value for name, value in req.headers.items()},
                None if isinstance(body, _BadRequestError) else body,
                time.time(),
            )
        )
        if control.latency_s > 0:
            await self._sleep(control.latency_s)
        fault = control._take_fault(req.path, ("status", "hang"))
        if fault is not None and fault.kind == "hang":
            await self._sleep(fault.seconds)
        elif fault is not None:
            limited = fault.status == 429
            message = fault.message or (RATE_LIMITED if limited else SERVER_ERROR)
            kind = "rate_limit_exceeded" if limited else "server_error"
            if 400 <= fault.status < 500 and not limited:
                kind = "invalid_request_error"
            _answer_error(resp, fault.status, message, kind)
            if fault.retry_after is not None:
                resp.set_header("Retry-After", f"{fault.retry_after:g}")
            return None
        if control.api_key is not None and req.get_header("Authorization") != (
            f"Bearer {control.api_key}"
        ):
            _answer_error(
                resp,
                401,
                "Incorrect API key provided.",
                "invalid_request_error",
                code="invalid_api_key",
            )
            return None
        if isinstance(body, _BadRequestError):
            _answer_error(resp, 400, str(body), "invalid_request_error")
            return None
        return body if body is not None else {}

    def _model(self, body: dict[str, Any]) -> str:
        model = body.get("model")
        if not isinstance(model, str):
            raise _BadRequestError("you must provide a model parameter", "model")
        if model not in self.control.models:
            raise _BadRequestError(
                f"The model `{model}` does not exist or you do not have access to it.", "model", 404
            )
        return model

    async def on_get_models(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if await self._admit(req, resp) is None:
            return
        data = [
            {"id": model, "object": "model", "created": 0, "owned_by": "fake-openai"}
            for model in self.control.models
        ]
        resp.text = json.dumps({"object": "list", "data": data})

    async def on_post_chat(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await self._admit(req, resp)
        if body is None:
            return
        try:
            model = self._model(body)
            reply = _reply_to(body)
        except _BadRequestError as error:
            _answer_error(
                resp, error.status, str(error), "invalid_request_error", param=error.param
            )
            return
        completion_id, created = self.control._next_id(), int(time.time())
        usage = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": len(reply.words),
            "total_tokens": reply.prompt_tokens + len(reply.words),
        }
        if not body.get("stream"):
            resp.text = json.dumps(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fake",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": " ".join(reply.words)},
                            "finish_reason": reply.finish_reason,
                        }
                    ],
                    "usage": usage,
                }
            )
            return
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        fault = self.control._take_fault(req.path, ("break_stream",))
        resp.content_type = "text/event-stream"
        resp.set_header("Cache-Control", "no-cache")
        resp.stream = self._stream(
            completion_id=completion_id,
            created=created,
            model=model,
            reply=reply,
            usage=usage,
            include_usage=include_usage,
            fault=fault,
        )

    async def _stream(
        self,
        *,
        completion_id: str,
        created: int,
        model: str,
        reply: _Reply,
        usage: dict[str, int],
        include_usage: bool,
        fault: Fault | None,
    ) -> AsyncIterator[bytes]:
        def chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
            event: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if include_usage:
                event["usage"] = None
            return event

        events = [chunk({"role": "assistant", "content": ""})]
        events += [
            chunk({"content": word if i == 0 else " " + word}) for i, word in enumerate(reply.words)
        ]
        events.append(chunk({}, reply.finish_reason))
        if include_usage:
            events.append({**chunk({}), "choices": [], "usage": usage})
        for sent, event in enumerate(events):
            if fault is not None and sent >= fault.after_chunks:
                if fault.drop:
                    raise ConnectionAbortedError("fake OpenAI: stream dropped (injected fault)")
                yield (
                    b"data: "
                    + error_body(fault.message or SERVER_ERROR, "server_error").encode()
                    + b"\n\n"
                )
                return
            if sent and self.control.chunk_delay_s > 0:
                await self._sleep(self.control.chunk_delay_s)
            yield b"data: " + json.dumps(event).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    async def on_post_embeddings(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response
    ) -> None:
        body = await self._admit(req, resp)
        if body is None:
            return
        try:
            model = self._model(body)
            texts = body.get("input")
            if isinstance(texts, str):
                texts = [texts]
            if (
                not isinstance(texts, list)
                or not all(isinstance(t, str) for t in texts)
                or not texts
            ):
                raise _BadRequestError("input must be a string or a list of strings", "input")
            dimensions = body.get("dimensions") or DEFAULT_DIMENSIONS
            if not isinstance(dimensions, int) or not 1 <= dimensions <= 8192:
                raise _BadRequestError("dimensions must be an integer from 1 to 8192", "dimensions")
        except _BadRequestError as error:
            _answer_error(
                resp, error.status, str(error), "invalid_request_error", param=error.param
            )
            return
        tokens = sum(words(text) for text in texts)
        resp.text = json.dumps(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": embedding_of(text, dimensions)}
                    for i, text in enumerate(texts)
                ],
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def on_post_control(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """``{"reset": true, "latency_ms": 20, "chunk_delay_ms": 0, "faults": [{"kind":
        "status", "status": 503, "count": 2, "retry_after": 1}]}``: every key optional."""
        try:
            data = json.loads(await req.stream.read() or b"{}")
            if not isinstance(data, dict):
                raise ValueError("the body must be a JSON object")
            faults = [Fault.from_json(item) for item in data.get("faults", [])]
        except (ValueError, TypeError) as error:
            _answer_error(resp, 400, str(error), "invalid_request_error")
            return
        control = self.control
        if data.get("reset"):
            control.reset()
        if "latency_ms" in data:
            control.latency_s = float(data["latency_ms"]) / 1000
        if "chunk_delay_ms" in data:
            control.chunk_delay_s = float(data["chunk_delay_ms"]) / 1000
        for fault in faults:
            control.add_fault(fault)
        resp.text = json.dumps(self._state())

    async def on_get_control(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.text = json.dumps(self._state())

    async def on_get_requests(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """What was received; the Authorization header only as whether it carried the key."""
        expected = f"Bearer {self.control.api_key}"
        resp.text = json.dumps(
            {
                "total": self.control.total,
                "requests": [
                    {
                        "method": r.method,
                        "path": r.path,
                        "authorized": r.authorization == expected,
                        "body": r.body,
                        "at": r.at,
                    }
                    for r in self.control.requests
                ],
            }
        )

    def _state(self) -> dict[str, Any]:
        control = self.control
        with control._lock:
            faults = [dataclasses.asdict(fault) for fault in control._faults]
        return {
            "latency_ms": control.latency_s * 1000,
            "chunk_delay_ms": control.chunk_delay_s * 1000,
            "models": control.models,
            "faults": faults,
            "total": control.total,
        }


def _answer_error(
    resp: falcon.asgi.Response,
    status: int,
    message: str,
    kind: str,
    *,
    code: str | None = None,
    param: str | None = None,
) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = error_body(message, kind, code=code, param=param)


def _reply_to(body: dict[str, Any]) -> _Reply:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequestError("messages must be a non-empty list", "messages")
    prompt_tokens, last_user = 0, ""
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise _BadRequestError("each message needs a role and a string content", "messages")
        prompt_tokens += words(message["content"])
        if message.get("role") == "user":
            last_user = message["content"]
    reply = _Reply(["Echo:", *last_user.split()], prompt_tokens=prompt_tokens)
    limits = [body.get(key) for key in ("max_tokens", "max_completion_tokens")]
    limit = min((v for v in limits if isinstance(v, int) and v > 0), default=None)
    if limit is not None and len(reply.words) > limit:
        reply.words = reply.words[:limit]
        reply.finish_reason = "length"
    return reply


def create_app(control: FakeOpenAIControl) -> falcon.asgi.App[Any, Any]:
    """The fake's ASGI app, scripted through ``control``."""
    app = falcon.asgi.App()
    fake = FakeOpenAIApp(control)
    app.add_route("/v1/models", fake, suffix="models")
    app.add_route(CHAT_PATH, fake, suffix="chat")
    app.add_route("/v1/embeddings", fake, suffix="embeddings")
    app.add_route("/_fake/control", fake, suffix="control")
    app.add_route("/_fake/requests", fake, suffix="requests")
    return app


class RunningFake(NamedTuple):
    """``base_url`` ends in ``/v1``, as OpenAI's does (``https://api.openai.com/v1``)."""

    base_url: str
    control: FakeOpenAIControl


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def _server(control: FakeOpenAIControl) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(control),
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
    )
    return uvicorn.Server(config)


@contextlib.contextmanager
def running_fake_openai(
    *,
    api_key: str | None = "sk-fake-test-key",
    latency_ms: float = 0.0,
    chunk_delay_ms: float = 0.0,
    models: Sequence[str] = DEFAULT_MODELS,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[RunningFake]:
    """Serve the fake in a background thread of this process; stopped on exit."""
    control = FakeOpenAIControl(
        api_key=api_key, latency_ms=latency_ms, chunk_delay_ms=chunk_delay_ms, models=models
    )
    sock = _bind(host, port)
    server = _server(control)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fake-openai", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the fake OpenAI server did not start")
        time.sleep(0.005)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    try:
        yield RunningFake(f"http://{shown}:{bound}/v1", control)
    finally:
        control.stopping = True
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8090,
    api_key: str | None = None,
    latency_ms: float = 0.0,
    chunk_delay_ms: float = 0.0,
    models: Sequence[str] = DEFAULT_MODELS,
    record: bool = True,
) -> None:
    """Serve the fake in the foreground until interrupted (SIGINT/SIGTERM)."""
    control = FakeOpenAIControl(
        api_key=api_key,
        latency_ms=latency_ms,
        chunk_delay_ms=chunk_delay_ms,
        models=models,
        record=record,
    )
    sock = _bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    sys.stderr.write(f"fake OpenAI API on http://{shown}:{sock.getsockname()[1]}/v1\n")
    sys.stderr.flush()
    try:
        _server(control).run(sockets=[sock])
    finally:
        control.stopping = True
        sock.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m hyperspot.sandbox.fake_openai",
        description="A fake OpenAI-compatible API (deterministic answers, injectable failures).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0: any free port (printed).")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument(
        "--api-key", default=None, help="The Bearer key callers must send; default: accept any."
    )
    keys.add_argument(
        "--api-key-env",
        default=None,
        metavar="NAME",
        help="Read that key from this environment variable (kept off the command line).",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="Delay before each answer.")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="Between stream chunks.")
    parser.add_argument(
        "--model", action="append", dest="models", help="A model to serve (repeatable)."
    )
    parser.add_argument(
        "--no-record", action="store_true", help="Do not keep received requests (benchmarks)."
    )
    args = parser.parse_args(argv)
    api_key = args.api_key
    if args.api_key_env is not None:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            parser.error(f"the environment variable {args.api_key_env} is empty or unset")
    serve(
        host=args.host,
        port=args.port,
        api_key=api_key,
        latency_ms=args.latency_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        models=args.models or DEFAULT_MODELS,
        record=not args.no_record,
    )


if __name__ == "__main__":
    main()
