"""The audit REST operation: read the caller's tenant's log (there is nothing to write)."""

from pydantic import BaseModel, Field

from hyperspot.modules.audit.contract import AuditEvent
from hyperspot.modules.audit.domain.service import AuditService
from hyperspot.platform import Call, ModuleContext, NoConfig, RestApi


class AuditEventList(BaseModel):
    items: list[AuditEvent]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


def register_rest(ctx: ModuleContext[NoConfig], api: RestApi) -> None:
    service = ctx.clients.get(AuditService)
    list_query = service.list_spec.params_model("AuditEventListQuery")

    async def list_events(call: Call) -> AuditEventList:
        # The scoped session limits the list to the tenant acted in: a platform administrator
        # reads another tenant's log by acting in it (X-Tenant-Id).
        items, cursor = await service.list(call.security, call.query(list_query))
        return AuditEventList(items=items, next_cursor=cursor)

    (
        api.operation("GET", "/audit/v1/events", "audit.list_events")
        .summary("List the tenant's audit events, newest first: $filter, $orderby, limit, cursor")
        .query(list_query)
        .response(200, AuditEventList)
        .require("audit:read")
        .handler(list_events)
    )
