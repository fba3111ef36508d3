"""The tenants REST operations: the caller's subtree of the tenant tree, and its administration."""

from pydantic import BaseModel, Field

from hyperspot.modules.tenants.contract import (
    TENANT_ID_PATTERN,
    NewTenant,
    Tenant,
    TenantActionDeniedError,
    TenantChanges,
    TenantError,
    TenantNotFoundError,
)
from hyperspot.modules.tenants.domain.service import TenantsService
from hyperspot.platform import Call, ModuleContext, NoConfig, Problem, Reply, RestApi

BASE = "/tenants/v1/tenants"
NOT_FOUND = "No such tenant in the caller's subtree"
NOT_BELOW = "The tenant is the caller's own (or the root): only a tenant above it may do this"


class TenantPath(BaseModel):
    tenant_id: str = Field(pattern=TENANT_ID_PATTERN, description="The tenant's id.")


class TenantList(BaseModel):
    items: list[Tenant]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


def _problem(error: TenantError) -> Problem:
    # A tenant outside the caller's subtree raises TenantNotFoundError like a missing one, so
    # the 404 is the same answer for both: no existence leak.
    if isinstance(error, TenantNotFoundError):
        return Problem(404, str(error))
    if isinstance(error, TenantActionDeniedError):
        return Problem(403, str(error))
    return Problem(409, str(error))  # the id is taken, or the tenant still has children


def register_rest(ctx: ModuleContext[NoConfig], api: RestApi) -> None:
    service = ctx.clients.get(TenantsService)
    list_query = service.list_spec.params_model("TenantListQuery")
    api.problems(TenantError, _problem)

    async def create(call: Call) -> Reply:
        tenant = await service.create(call.security, call.body(NewTenant), call.origin)
        return Reply(201, tenant, headers={"Location": f"{BASE}/{tenant.id}"})

    async def list_tenants(call: Call) -> TenantList:
        items, cursor = await service.list(call.security, call.query(list_query))
        return TenantList(items=items, next_cursor=cursor)

    async def get(call: Call) -> Tenant:
        return await service.get(call.security, call.path(TenantPath).tenant_id)

    async def rename(call: Call) -> Tenant:
        tenant_id = call.path(TenantPath).tenant_id
        return await service.rename(call.security, tenant_id, call.body(TenantChanges), call.origin)

    async def suspend(call: Call) -> Tenant:
        return await service.suspend(call.security, call.path(TenantPath).tenant_id, call.origin)

    async def resume(call: Call) -> Tenant:
        return await service.resume(call.security, call.path(TenantPath).tenant_id, call.origin)

    async def delete(call: Call) -> Reply:
        await service.delete(call.security, call.path(TenantPath).tenant_id, call.origin)
        return Reply(204)

    (
        api.operation("POST", BASE, "tenants.create_tenant")
        .summary("Create a tenant under the caller's tenant or one below it")
        .body(NewTenant)
        .response(201, Tenant)
        .error(404, "No such parent tenant in the caller's subtree")
        .error(409, "A tenant with that id exists already")
        .require("tenants:manage")
        .handler(create)
    )
    (
        api.operation("GET", BASE, "tenants.list_tenants")
        .summary("List the caller's tenant and those below it: $filter, $orderby, limit, cursor")
        .query(list_query)
        .response(200, TenantList)
        .require("tenants:read")
        .handler(list_tenants)
    )
    (
        api.operation("GET", f"{BASE}/{{tenant_id}}", "tenants.get_tenant")
        .summary("Read one tenant")
        .path_params(TenantPath)
        .response(200, Tenant)
        .error(404, NOT_FOUND)
        .require("tenants:read")
        .handler(get)
    )
    (
        api.operation("PATCH", f"{BASE}/{{tenant_id}}", "tenants.rename_tenant")
        .summary("Rename a tenant")
        .path_params(TenantPath)
        .body(TenantChanges)
        .response(200, Tenant)
        .error(404, NOT_FOUND)
        .require("tenants:manage")
        .handler(rename)
    )
    (
        api.operation("POST", f"{BASE}/{{tenant_id}}/suspend", "tenants.suspend_tenant")
        .summary("Suspend a tenant below the caller's: it and its subtree can no longer act")
        .path_params(TenantPath)
        .response(200, Tenant)
        .error(403, NOT_BELOW)
        .error(404, NOT_FOUND)
        .require("tenants:manage")
        .handler(suspend)
    )
    (
        api.operation("POST", f"{BASE}/{{tenant_id}}/resume", "tenants.resume_tenant")
        .summary("Resume a suspended tenant below the caller's")
        .path_params(TenantPath)
        .response(200, Tenant)
        .error(403, NOT_BELOW)
        .error(404, NOT_FOUND)
        .require("tenants:manage")
        .handler(resume)
    )
    (
        api.operation("DELETE", f"{BASE}/{{tenant_id}}", "tenants.delete_tenant")
        .summary("Delete a tenant below the caller's that has no child tenants")
        .path_params(TenantPath)
        .response(204, None, "Deleted")
        .error(403, NOT_BELOW)
        .error(404, NOT_FOUND)
        .error(409, "The tenant still has child tenants")
        .require("tenants:manage")
        .handler(delete)
    )
