"""The audit module's public face: how modules record administrative actions."""

from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel

from hyperspot.platform.fields import UtcDatetime
from hyperspot.platform.identity import RequestOrigin
from hyperspot.platform.security import SecurityContext


class AuditResult(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILURE = "failure"


class AuditEvent(BaseModel):
    id: str
    tenant_id: str
    at: UtcDatetime
    actor: str
    actor_tenant: str
    action: str
    target: str
    result: AuditResult
    client: str
    request_id: str
    detail: str


class AuditLogApi(Protocol):
    async def record(
        self,
        actor: SecurityContext,
        action: str,
        target: str,
        result: AuditResult,
        *,
        origin: RequestOrigin | None,
        detail: str = "",
    ) -> None:
        """Append one event to the audit log of ``actor.tenant_id`` (the tenant acted in).

        ``actor.home_tenant`` is recorded as the actor's tenant, so a platform administrator's act
        in another tenant shows who did it. ``detail`` must never hold secrets or tokens.
        """
        ...
