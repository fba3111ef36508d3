"""The audit log: append-only. Events are recorded and listed; nothing updates or deletes one.

Each event lands in the log of the tenant acted in (``actor.tenant_id``), through the scoped
session, so a tenant's log holds only its own events and its administrators read only those.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from hyperspot.modules.audit.contract import AuditEvent, AuditResult
from hyperspot.modules.audit.domain import ports
from hyperspot.modules.audit.domain.ports import AuditEntities
from hyperspot.platform.db import (
    ListField,
    ListParams,
    ListSpec,
    PlatformDatabase,
    ScopedSession,
    page,
)
from hyperspot.platform.identity import RequestOrigin
from hyperspot.platform.security import SecurityContext

logger = logging.getLogger("hyperspot.audit")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


def _now() -> datetime:
    # Stored naive, in UTC, by platform convention (SQLite and MariaDB keep no zone).
    return datetime.now(UTC).replace(tzinfo=None)


def _clip(value: str, length: int) -> str:
    # An over-long subject or path must not make the event itself fail to be recorded.
    return value if len(value) <= length else value[: length - 1] + "…"


def to_event(row: Any) -> AuditEvent:
    return AuditEvent.model_validate(row, from_attributes=True)


class AuditService:
    """Records and lists audit events; it has no way to change or remove one."""

    def __init__(self, database: PlatformDatabase, entities: AuditEntities) -> None:
        self.database = database
        self.entities = entities
        self.list_spec = ListSpec(
            fields={
                "action": ListField(str, sort=True),
                "actor": ListField(str, sort=True),
                "result": ListField(str, sort=True),
                "at": ListField(datetime, sort=True),
            },
            default_order="at desc",
            default_limit=DEFAULT_PAGE_SIZE,
            max_limit=MAX_PAGE_SIZE,
        )

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
        values = {
            "actor": _clip(actor.subject, ports.ACTOR_LENGTH),
            "actor_tenant": _clip(actor.home_tenant, ports.TENANT_LENGTH),
            "action": _clip(action, ports.ACTION_LENGTH),
            "target": _clip(target, ports.TARGET_LENGTH),
            "result": result.value,
            "client": _clip(origin.client, ports.CLIENT_LENGTH) if origin else "",
            "request_id": _clip(origin.request_id, ports.REQUEST_ID_LENGTH) if origin else "",
            "detail": detail,
        }

        def work(session: ScopedSession) -> None:
            # create() takes tenant_id from the context: the tenant acted in.
            session.create(self.entities.AuditEntry, id=str(uuid.uuid4()), at=_now(), **values)

        await self.database.run(actor, work)
        logger.info(
            "audit: %s '%s' in tenant '%s' by '%s' of tenant '%s': %s",
            values["action"],
            values["target"],
            actor.tenant_id,
            values["actor"],
            values["actor_tenant"],
            result.value,
            extra={"audit": {"tenant_id": actor.tenant_id, **values}},
        )

    async def list(
        self, security: SecurityContext, params: ListParams
    ) -> tuple[list[AuditEvent], str | None]:
        def work(session: ScopedSession) -> tuple[list[AuditEvent], str | None]:
            found = page(session.query(self.entities.AuditEntry), self.list_spec, params)
            return [to_event(row) for row in found.items], found.next_cursor

        return await self.database.run(security, work)
