"""A small async client for the admin observability endpoints the dashboard reads.

Every failure becomes a ``DashboardError`` whose message is shown to the user as is: the dashboard
must keep running whatever the server (or the network) answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from hyperspot.platform.observability.models import StatsReport, TraceDetail, TraceList
from hyperspot.platform.runtime import Readiness

M = TypeVar("M", bound=BaseModel)

TraceOrder = Literal["slowest", "recent"]
WINDOWS = (5, 15, 60)


class DashboardError(Exception):
    """A fetch gave no data; ``str(error)`` says why, for the user."""


class UnreachableError(DashboardError):
    """No answer, or a 5xx: the server may come back, so the dashboard keeps polling."""


class RejectedError(DashboardError):
    """401 or 403: polling again will not help until the token changes."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class BadResponseError(DashboardError):
    """An answer the dashboard cannot use: another 4xx, or a body that does not fit the model."""


@dataclass(frozen=True)
class Filters:
    """What the main screen asks ``/admin/stats`` for; empty strings mean "all"."""

    window_minutes: int = WINDOWS[0]
    tenant: str = ""
    module: str = ""
    route: str = ""


class Source(Protocol):
    """Where the dashboard's data comes from: the server, or fixed data in tests."""

    @property
    def url(self) -> str: ...

    async def health(self) -> Readiness: ...

    async def stats(self, filters: Filters) -> StatsReport: ...

    async def traces(
        self, *, route: str, module: str, tenant: str, order: TraceOrder, limit: int
    ) -> TraceList: ...

    async def trace(self, trace_id: str) -> TraceDetail: ...

    async def aclose(self) -> None: ...


class AdminClient:
    """``Source`` over HTTP, with a platform administrator's bearer token."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = url.rstrip("/")
        self._has_token = bool(token)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=self._url, headers=headers, timeout=timeout_s, transport=transport
        )

    @property
    def url(self) -> str:
        return self._url

    async def health(self) -> Readiness:
        # 503 is how a degraded or starting server answers /health: it is reachable all the same.
        return await self._get("/health", Readiness, {}, accept_unavailable=True)

    async def stats(self, filters: Filters) -> StatsReport:
        params: dict[str, str | int] = {"window_minutes": filters.window_minutes}
        for name in ("tenant", "module", "route"):
            if value := getattr(filters, name):
                params[name] = value
        return await self._get("/admin/stats", StatsReport, params)

    async def traces(
        self, *, route: str, module: str, tenant: str, order: TraceOrder, limit: int
    ) -> TraceList:
        params: dict[str, str | int] = {"route": route, "order": order, "limit": limit}
        if module:
            params["module"] = module
        if tenant:
            params["tenant"] = tenant
        return await self._get("/admin/traces", TraceList, params)

    async def trace(self, trace_id: str) -> TraceDetail:
        return await self._get(f"/admin/traces/{trace_id}", TraceDetail, {})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(
        self,
        path: str,
        model: type[M],
        params: dict[str, str | int],
        *,
        accept_unavailable: bool = False,
    ) -> M:
        try:
            response = await self._http.get(path, params=params)
        except httpx.TimeoutException:
            raise UnreachableError("no answer (timed out)") from None
        except httpx.TransportError as error:
            raise UnreachableError(_transport_reason(error)) from None
        status = response.status_code
        if status in (401, 403):
            raise RejectedError(self._rejection(response), status)
        if status == 404 and path.startswith("/admin/traces/"):
            raise BadResponseError("the server no longer keeps this trace")
        if status >= 500 and not (accept_unavailable and status == 503):
            raise UnreachableError(f"{path} answered {status} {response.reason_phrase}")
        if 400 <= status < 500:
            raise BadResponseError(f"{path} answered {status}: {_problem_detail(response)}")
        try:
            return model.model_validate_json(response.content)
        except ValidationError as error:
            raise BadResponseError(
                f"{path} answered data the dashboard does not understand "
                f"({error.error_count()} problems, first: {_first_problem(error)})"
            ) from None

    def _rejection(self, response: httpx.Response) -> str:
        if response.status_code == 403:
            return (
                "403 Forbidden: the token is valid but not a platform administrator's "
                "(a tenant-admin of the root tenant)"
            )
        if not self._has_token:
            return "401 Unauthorized: no token; pass --token or set HYPERSPOT_TOKEN"
        return f"401 Unauthorized: the server rejected the token ({_problem_detail(response)})"


def _transport_reason(error: httpx.TransportError) -> str:
    # The exception's own text may be empty (e.g. RemoteProtocolError on a dropped connection).
    detail = str(error) or type(error).__name__
    return f"cannot connect: {detail}" if isinstance(error, httpx.ConnectError) else detail


def _problem_detail(response: httpx.Response) -> str:
    """The problem document's detail (or title), else the status phrase."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict):
        text = body.get("detail") or body.get("title")
        if isinstance(text, str) and text:
            return text
    return response.reason_phrase


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"
