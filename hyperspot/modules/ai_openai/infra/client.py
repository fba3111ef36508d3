"""The OpenAI-compatible provider: the ``AiProvider`` contract over an upstream HTTP API.

One ``httpx.AsyncClient`` (a keep-alive pool) serves every call. A 429, a 5xx, 408 or a network
error is retried with exponential backoff and jitter, honouring ``Retry-After`` up to a cap; the
request's own faults (other 4xx) are the upstream's answer, raised as ``ProviderRefusedError``;
anything else, retries included, ends in :class:`UpstreamError`, a failure the gateway answers by
trying the model's next provider.

The key lives in the client's default headers and, masked, in a ``SecretStr``: no message, log
line or exception this module makes contains it (upstream text is scrubbed of it too).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from hyperspot.modules.ai.contract import (
    MODEL_ID_PATTERN,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelKind,
    ProviderModel,
    ProviderRefusedError,
    StreamOptions,
)
from hyperspot.modules.ai_openai.config import OpenAiConfig
from hyperspot.platform.errors import HyperspotError
from hyperspot.platform.security import SecurityContext

USER_AGENT = "hyperspot-ai-openai/1.0"
FINISH_REASONS = ("stop", "length", "content_filter")
_MODEL_ID = re.compile(MODEL_ID_PATTERN)
# Upstream error text kept in a refusal: enough to act on, not a whole HTML error page.
_MESSAGE_LIMIT = 500

M = TypeVar("M", bound=BaseModel)


class UpstreamError(RuntimeError):
    """The upstream failed (retries exhausted, an unusable answer, refused credentials)."""


class MissingApiKeyError(HyperspotError):
    """``base_url`` is set but the key's environment variable is not."""


def read_api_key(environ: dict[str, str] | Any, variable: str) -> SecretStr:
    """The key from ``environ[variable]``; the error names the variable, never a value."""
    value = environ.get(variable, "")
    if not isinstance(value, str) or not value.strip():
        raise MissingApiKeyError(
            f"modules.ai_openai.base_url is set but the environment variable {variable} "
            "(modules.ai_openai.api_key_env) holding the upstream's API key is empty or unset"
        )
    return SecretStr(value.strip())


def guess_kind(model_id: str) -> ModelKind:
    """An upstream's GET /models does not say what a model does: embedding models say 'embed'."""
    return "embedding" if "embed" in model_id.lower() else "chat"


def retry_after_s(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class OpenAiProvider:
    """An ``AiProvider`` (and ``StreamingAiProvider``) over one OpenAI-compatible upstream."""

    def __init__(
        self, config: OpenAiConfig, api_key: SecretStr, logger: logging.Logger | None = None
    ) -> None:
        if config.base_url is None:
            raise ValueError("OpenAiProvider needs a base_url")
        self.config = config
        self._key = api_key
        self._logger = logger or logging.getLogger("hyperspot.modules.ai_openai")
        # Safe to show: the config refuses credentials and a query in it.
        self.upstream = config.base_url
        self._http: httpx.AsyncClient | None = None
        self._public_of = {upstream: public for public, upstream in config.model_map.items()}
        self._listed: list[ProviderModel] = []
        self._listed_at = -1.0
        self._configured = [ProviderModel(id=m.id, kind=m.kind) for m in config.models]
        self._listing = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def http(self) -> httpx.AsyncClient:
        """The shared client, made on first use (in the running loop)."""
        if self._http is None:
            config = self.config
            self._http = httpx.AsyncClient(
                base_url=config.base_url or "",
                headers={
                    "Authorization": f"Bearer {self._key.get_secret_value()}",
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "User-Agent": USER_AGENT,
                },
                timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
                limits=httpx.Limits(
                    max_connections=config.max_connections,
                    max_keepalive_connections=config.max_connections,
                ),
                follow_redirects=False,
            )
        return self._http

    async def start(self) -> None:
        """Learn the upstream's models now, if they are not configured; a failure is retried on
        the next ``models`` call rather than stopping the server."""
        _ = self.http
        if self.config.models:
            return
        try:
            models = await self._upstream_models()
        except UpstreamError as error:
            self._logger.warning("cannot list the upstream's models yet: %s", error)
            return
        self._logger.info("%s serves %d models", self.upstream, len(models))

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- the AiProvider contract -----------------------------------------------------------------

    async def models(self, security: SecurityContext) -> list[ProviderModel]:
        if self._configured:
            return list(self._configured)
        return await self._upstream_models()

    async def chat(self, security: SecurityContext, request: ChatRequest) -> ChatCompletion:
        body = request.model_copy(
            update={
                "model": self._upstream_id(request.model),
                "stream": False,
                "stream_options": None,
            }
        )
        response = await self._send("POST", "/chat/completions", _json(body))
        completion = _parse(ChatCompletion, response.content, _lenient_completion, self.upstream)
        if request.model in self.config.model_map:
            completion.model = request.model
        return completion

    async def embed(
        self, security: SecurityContext, request: EmbeddingRequest
    ) -> EmbeddingResponse:
        body = request.model_copy(update={"model": self._upstream_id(request.model)})
        response = await self._send("POST", "/embeddings", _json(body))
        answer = _parse(EmbeddingResponse, response.content, None, self.upstream)
        if request.model in self.config.model_map:
            answer.model = request.model
        return answer

    async def chat_stream(
        self, security: SecurityContext, request: ChatRequest
    ) -> AsyncIterator[ChatCompletionChunk]:
        """The upstream's Server-Sent Events as chunks; the usage chunk is always asked for.

        Retries happen only before the first chunk: what was passed on cannot be taken back.
        """
        body = request.model_copy(
            update={
                "model": self._upstream_id(request.model),
                "stream": True,
                "stream_options": StreamOptions(include_usage=True),
            }
        )
        response = await self._send("POST", "/chat/completions", _json(body), stream=True)
        rename = request.model if request.model in self.config.model_map else None
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, ': comments', 'event:' and 'id:' fields
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                chunk = _parse_chunk(data, self.upstream, self._scrub)
                if rename is not None:
                    chunk.model = rename
                yield chunk
        except httpx.RequestError as error:
            raise UpstreamError(
                f"{self.upstream}: the stream broke off ({self._describe(error)})"
            ) from None
        finally:
            await response.aclose()

    # -- HTTP ------------------------------------------------------------------------------------

    async def _send(
        self, method: str, path: str, content: bytes | None = None, *, stream: bool = False
    ) -> httpx.Response:
        """The upstream's 2xx answer, after retries; refusals and failures raised."""
        attempts = self.config.retries + 1
        for attempt in range(1, attempts + 1):
            request = self.http.build_request(method, path, content=content)
            try:
                response = await self.http.send(request, stream=stream)
                if stream and response.status_code >= 300:
                    await response.aread()  # an error's small body; it closes the response
            except httpx.RequestError as error:
                failure, wait = self._describe(error), None
            else:
                status = response.status_code
                if status < 300:
                    return response
                if status < 400:
                    # Not followed: the key would travel with it.
                    raise UpstreamError(
                        f"{method} {self.upstream}{path} answered {status} (a redirect, not "
                        "followed): is base_url right?"
                    )
                if 400 <= status < 500 and status not in (408, 429):
                    raise self._refusal(response)
                failure = f"answered {status}"
                wait = retry_after_s(response.headers.get("Retry-After"))
            where = f"{method} {self.upstream}{path}"
            if attempt == attempts:
                raise UpstreamError(f"{where} {failure} ({attempts} attempts)")
            if wait is not None and wait > self.config.retry_after_max_s:
                raise UpstreamError(
                    f"{where} {failure} and asks to retry after {wait:g} s "
                    f"(more than retry_after_max_s, {self.config.retry_after_max_s:g} s)"
                )
            delay = wait if wait is not None else self._backoff(attempt)
            self._logger.warning(
                "%s %s; retry %d of %d in %.2f s",
                where,
                failure,
                attempt,
                attempts - 1,
                delay,
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _backoff(self, attempt: int) -> float:
        # Exponential, with "equal jitter": between half and all of base * 2^(attempt-1).
        ceiling: float = self.config.backoff_s * 2.0 ** (attempt - 1)
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - not cryptographic

    def _refusal(self, response: httpx.Response) -> Exception:
        """A 4xx: the request's fault (a refusal), unless it is this server's own."""
        status = response.status_code
        message = _error_message(response.content)
        shown = self._scrub(message or response.reason_phrase)
        if status in (401, 403):
            # Not the caller's fault: this server's key is wrong or lacks the right.
            return UpstreamError(
                f"{self.upstream} refused the credentials ({status}: {shown}); check the key "
                f"in ${self.config.api_key_env}"
            )
        if status in (404, 405) and message is None:
            # No API error, a web server's page: the base URL is probably wrong.
            return UpstreamError(
                f"{self.upstream} answered {status} ({shown}): is base_url the API's, with its "
                "version path (/v1)?"
            )
        return ProviderRefusedError(f"the provider refused the request ({status}): {shown}")

    def _scrub(self, text: str) -> str:
        """Upstream text made safe to show: one line, bounded, without the key."""
        key = self._key.get_secret_value()
        text = " ".join(text.split())
        if key:
            text = text.replace(key, "***")
        return text[:_MESSAGE_LIMIT]

    def _describe(self, error: httpx.RequestError) -> str:
        detail = self._scrub(str(error))
        name = type(error).__name__
        return f"{name}: {detail}" if detail else name

    # -- models ----------------------------------------------------------------------------------

    def _upstream_id(self, model: str) -> str:
        return self.config.model_map.get(model, model)

    async def _upstream_models(self) -> list[ProviderModel]:
        if (
            self._listed_at >= 0
            and time.monotonic() - self._listed_at < self.config.models_refresh_s
        ):
            return list(self._listed)
        async with self._listing:
            if self._listed_at >= 0 and (
                time.monotonic() - self._listed_at < self.config.models_refresh_s
            ):
                return list(self._listed)
            try:
                listed = await self._fetch_models()
            except UpstreamError as error:
                if self._listed_at < 0:
                    raise
                # A stale list beats none: the models rarely change.
                self._logger.warning("keeping the last model list: %s", error)
                self._listed_at = time.monotonic()
                return list(self._listed)
            self._listed, self._listed_at = listed, time.monotonic()
            return list(listed)

    async def _fetch_models(self) -> list[ProviderModel]:
        try:
            response = await self._send("GET", "/models")
        except ProviderRefusedError as error:
            # No caller's request was refused: listing is this server's own business.
            raise UpstreamError(f"{self.upstream}: GET /models: {error}") from None
        try:
            entries = json.loads(response.content)["data"]
            ids = [(entry["id"], str(entry.get("owned_by") or "")) for entry in entries]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UpstreamError(
                f"{self.upstream}: GET /models did not answer a model list"
            ) from None
        models = []
        for upstream_id, owner in ids:
            public = self._public_of.get(upstream_id, upstream_id)
            if not isinstance(public, str) or not _MODEL_ID.match(public):
                continue  # an id the gateway cannot route: map it in model_map to publish it
            models.append(ProviderModel(id=public, kind=guess_kind(public), owned_by=owner))
        return models


def _json(body: BaseModel) -> bytes:
    return body.model_dump_json(exclude_none=True).encode()


def _error_message(content: bytes) -> str | None:
    """An API's error message: OpenAI's ``{"error": {"message": ...}}``, or the shapes other
    compatible servers use (``{"error": "..."}``, ``{"message": ...}``, ``{"detail": ...}``);
    None when the body is no API error (a web server's page, nothing)."""
    try:
        payload = json.loads(content)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    for candidate in (error, payload.get("message"), payload.get("detail")):
        if isinstance(candidate, str) and candidate.strip():
            return candidate
        if candidate is not None and not isinstance(candidate, str):
            return json.dumps(candidate)[:_MESSAGE_LIMIT]
    return None


def _summary(error: ValidationError) -> str:
    # The location and message only: the input may be large, and is the upstream's text.
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def _parse(
    model: type[M],
    content: bytes | str,
    normalize: Callable[[Any], Any] | None,
    upstream: str,
) -> M:
    """``content`` as ``model``: validated straight from JSON, else after ``normalize`` smooths
    what OpenAI-compatible servers differ in."""
    try:
        return model.model_validate_json(content)
    except ValidationError as error:
        failure = _summary(error)
    if normalize is not None:
        try:
            return model.model_validate(normalize(json.loads(content)))
        except ValidationError as error:
            failure = _summary(error)
        except (ValueError, TypeError, AttributeError):
            failure = "not JSON"
    raise UpstreamError(f"{upstream}: the answer is not a valid {model.__name__} ({failure})")


def _finish_reason(value: Any) -> Any:
    # "tool_calls", "function_call" and servers' own reasons: the turn ended.
    return value if value is None or value in FINISH_REASONS else "stop"


def _lenient_completion(payload: Any) -> Any:
    for choice in payload.get("choices") or ():
        message = choice.get("message") or {}
        if message.get("content") is None:
            message["content"] = ""
        choice["message"] = message
        choice["finish_reason"] = _finish_reason(choice.get("finish_reason"))
    return payload


def _lenient_chunk(payload: Any) -> Any:
    for choice in payload.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("role") not in (None, "assistant"):
            delta.pop("role")
        choice["delta"] = delta
        choice["finish_reason"] = _finish_reason(choice.get("finish_reason"))
    return payload


def _parse_chunk(data: str, upstream: str, scrub: Callable[[str], str]) -> ChatCompletionChunk:
    try:
        return ChatCompletionChunk.model_validate_json(data)
    except ValidationError:
        pass
    try:
        payload = json.loads(data)
    except ValueError:
        raise UpstreamError(f"{upstream}: a stream event is not JSON") from None
    if isinstance(payload, dict) and "error" in payload:
        message = scrub(_error_message(data.encode()) or data)
        raise UpstreamError(f"{upstream}: the stream ended with an error: {message}")
    return _parse(ChatCompletionChunk, data, _lenient_chunk, upstream)
