"""The access REST operations: roles and assignments per tenant (with delegation), API keys."""

from pydantic import BaseModel, Field

from hyperspot.modules.access.contract import (
    ROLE_PATTERN,
    AccessError,
    ApiKey,
    Assignment,
    CreatedApiKey,
    Me,
    NewApiKey,
    NewAssignment,
    NewRole,
    Role,
    RoleChanges,
)
from hyperspot.modules.access.domain.service import AccessService
from hyperspot.modules.tenants.contract import TENANT_ID_PATTERN
from hyperspot.platform import Call, ModuleContext, NoConfig, Problem, Reply, RestApi
from hyperspot.platform.fields import UuidText
from hyperspot.platform.identity import PermissionCatalogue

UUID_HEX = r"^[0-9a-f]{32}$"


class TenantPath(BaseModel):
    tenant_id: str = Field(pattern=TENANT_ID_PATTERN, description="Your tenant or one below it.")


class RolePath(TenantPath):
    role: str = Field(pattern=ROLE_PATTERN)


class AssignmentPath(TenantPath):
    assignment_id: UuidText


class ApiKeyPath(BaseModel):
    key_id: str = Field(pattern=UUID_HEX)


class AssignmentQuery(BaseModel):
    subject: str | None = Field(default=None, max_length=200, description="Only this subject's.")


class PermissionInfo(BaseModel):
    name: str
    description: str
    module: str
    member: bool = Field(description="Granted by the built-in member role.")


class PermissionList(BaseModel):
    items: list[PermissionInfo]


class RoleList(BaseModel):
    items: list[Role]


class AssignmentList(BaseModel):
    items: list[Assignment]


class ApiKeyList(BaseModel):
    items: list[ApiKey]


def _problem(error: AccessError) -> Problem:
    return Problem(error.status, str(error))


def register_rest(ctx: ModuleContext[NoConfig], api: RestApi) -> None:
    service = ctx.clients.get(AccessService)
    catalogue = ctx.clients.get(PermissionCatalogue)
    api.problems(AccessError, _problem)
    _register_identity(api, catalogue)
    _register_roles(api, service)
    _register_assignments(api, service)
    _register_api_keys(api, service)


def _register_identity(api: RestApi, catalogue: PermissionCatalogue) -> None:
    async def me(call: Call) -> Me:
        security = call.security
        return Me(
            subject=security.subject,
            tenant_id=security.tenant_id,
            home_tenant=security.home_tenant,
            roles=sorted(security.roles),
            permissions=sorted(security.permissions),
            platform_admin=security.platform_admin,
        )

    async def permissions(call: Call) -> PermissionList:
        return PermissionList(
            items=[
                PermissionInfo(
                    name=p.name,
                    description=p.description,
                    module=catalogue.owners[p.name],
                    member=p.member,
                )
                for p in sorted(catalogue.permissions.values(), key=lambda p: p.name)
            ]
        )

    (
        api.operation("GET", "/access/v1/me", "access.me")
        .summary("Who the credential is: tenant, roles and effective permissions")
        .response(200, Me)
        .authenticated()
        .handler(me)
    )
    (
        api.operation("GET", "/access/v1/permissions", "access.list_permissions")
        .summary("Every permission the enabled modules declare")
        .response(200, PermissionList)
        .require("roles:read")
        .handler(permissions)
    )


def _register_roles(api: RestApi, service: AccessService) -> None:
    async def list_roles(call: Call) -> RoleList:
        return RoleList(items=await service.roles(call.security, call.path(TenantPath).tenant_id))

    async def create_role(call: Call) -> Reply:
        tenant_id = call.path(TenantPath).tenant_id
        role = await service.create_role(call.security, tenant_id, call.body(NewRole), call.origin)
        location = f"/access/v1/tenants/{tenant_id}/roles/{role.name}"
        return Reply(201, role, headers={"Location": location})

    async def update_role(call: Call) -> Role:
        path = call.path(RolePath)
        return await service.update_role(
            call.security, path.tenant_id, path.role, call.body(RoleChanges), call.origin
        )

    async def delete_role(call: Call) -> Reply:
        path = call.path(RolePath)
        await service.delete_role(call.security, path.tenant_id, path.role, call.origin)
        return Reply(204)

    tenant_roles = "/access/v1/tenants/{tenant_id}/roles"
    (
        api.operation("GET", tenant_roles, "access.list_roles")
        .summary("Built-in and custom roles of a tenant (yours or one below it)")
        .path_params(TenantPath)
        .response(200, RoleList)
        .error(404, "No such tenant in your part of the tree")
        .require("roles:read")
        .handler(list_roles)
    )
    (
        api.operation("POST", tenant_roles, "access.create_role")
        .summary("Define a custom role from permissions you hold")
        .path_params(TenantPath)
        .body(NewRole)
        .response(201, Role)
        .error(403, "Missing permission, or the role would grant permissions you do not hold")
        .error(404, "No such tenant in your part of the tree")
        .error(409, "A role of that name exists (or is built in)")
        .error(422, "Unknown permission")
        .require("roles:manage")
        .handler(create_role)
    )
    (
        api.operation("PATCH", tenant_roles + "/{role}", "access.update_role")
        .summary("Change a custom role's description or permissions")
        .path_params(RolePath)
        .body(RoleChanges)
        .response(200, Role)
        .error(403, "Missing permission, or the change involves permissions you do not hold")
        .error(404, "No such tenant or role")
        .error(409, "Built-in roles cannot be changed")
        .error(422, "Unknown permission")
        .require("roles:manage")
        .handler(update_role)
    )
    (
        api.operation("DELETE", tenant_roles + "/{role}", "access.delete_role")
        .summary("Delete a custom role that nobody holds")
        .path_params(RolePath)
        .response(204, None, "Deleted")
        .error(404, "No such tenant or role")
        .error(409, "Built-in, or still assigned")
        .require("roles:manage")
        .handler(delete_role)
    )


def _register_assignments(api: RestApi, service: AccessService) -> None:
    async def list_assignments(call: Call) -> AssignmentList:
        tenant_id = call.path(TenantPath).tenant_id
        subject = call.query(AssignmentQuery).subject
        items = await service.assignments(call.security, tenant_id, subject)
        return AssignmentList(items=items)

    async def assign(call: Call) -> Reply:
        tenant_id = call.path(TenantPath).tenant_id
        assignment = await service.assign(
            call.security, tenant_id, call.body(NewAssignment), call.origin
        )
        return Reply(201, assignment)

    async def unassign(call: Call) -> Reply:
        path = call.path(AssignmentPath)
        await service.unassign(call.security, path.tenant_id, path.assignment_id, call.origin)
        return Reply(204)

    tenant_assignments = "/access/v1/tenants/{tenant_id}/assignments"
    (
        api.operation("GET", tenant_assignments, "access.list_assignments")
        .summary("Who holds which role in a tenant (yours or one below it)")
        .path_params(TenantPath)
        .query(AssignmentQuery)
        .response(200, AssignmentList)
        .error(404, "No such tenant in your part of the tree")
        .require("roles:read")
        .handler(list_assignments)
    )
    (
        api.operation("POST", tenant_assignments, "access.assign_role")
        .summary("Give a subject of the tenant a role whose permissions you hold")
        .path_params(TenantPath)
        .body(NewAssignment)
        .response(201, Assignment)
        .error(403, "Missing permission, or the role grants permissions you do not hold")
        .error(404, "No such tenant in your part of the tree")
        .error(409, "The subject already has that role")
        .error(422, "The tenant has no such role")
        .require("roles:manage")
        .handler(assign)
    )
    (
        api.operation("DELETE", tenant_assignments + "/{assignment_id}", "access.unassign_role")
        .summary("Take a role away")
        .path_params(AssignmentPath)
        .response(204, None, "Removed")
        .error(404, "No such tenant or assignment")
        .require("roles:manage")
        .handler(unassign)
    )


def _register_api_keys(api: RestApi, service: AccessService) -> None:
    async def list_keys(call: Call) -> ApiKeyList:
        return ApiKeyList(items=await service.api_keys(call.security))

    async def create_key(call: Call) -> Reply:
        created = await service.create_api_key(call.security, call.body(NewApiKey), call.origin)
        # The key itself is in this response only: never cache it anywhere on the way.
        return Reply(201, created, headers={"Cache-Control": "no-store"})

    async def revoke_key(call: Call) -> Reply:
        await service.revoke_api_key(call.security, call.path(ApiKeyPath).key_id, call.origin)
        return Reply(204)

    (
        api.operation("GET", "/access/v1/api-keys", "access.list_api_keys")
        .summary("The tenant's API keys (never their secrets)")
        .response(200, ApiKeyList)
        .require("apikeys:manage")
        .handler(list_keys)
    )
    (
        api.operation("POST", "/access/v1/api-keys", "access.create_api_key")
        .summary("Create an API key; the key is shown in this response only")
        .body(NewApiKey)
        .response(201, CreatedApiKey)
        .error(403, "Missing permission, or the roles grant permissions you do not hold")
        .error(422, "The tenant has no such role")
        .require("apikeys:manage")
        .handler(create_key)
    )
    (
        api.operation("DELETE", "/access/v1/api-keys/{key_id}", "access.revoke_api_key")
        .summary("Revoke an API key: it stops working at once")
        .path_params(ApiKeyPath)
        .response(204, None, "Revoked")
        .error(404, "No such API key in your tenant")
        .require("apikeys:manage")
        .handler(revoke_key)
    )
