"""The access module's declaration: it resolves every request's roles to permissions."""

from hyperspot.modules.access.api.rest import register_rest
from hyperspot.modules.access.domain.resolver import AccessResolver
from hyperspot.modules.access.domain.service import AccessService
from hyperspot.modules.access.infra.storage import MIGRATIONS, define_entities
from hyperspot.modules.audit.contract import AuditLogApi
from hyperspot.modules.tenants.contract import TenantsApi
from hyperspot.platform import Capability, Module, ModuleContext, NoConfig, Permission
from hyperspot.platform.identity import IdentityResolver, PermissionCatalogue


def init(ctx: ModuleContext[NoConfig]) -> None:
    entities = define_entities(ctx.db.schema)
    catalogue = ctx.clients.get(PermissionCatalogue)
    tenants = ctx.clients.get(TenantsApi)
    audit = ctx.clients.get(AuditLogApi)
    resolver = AccessResolver(
        ctx.db,
        entities,
        catalogue,
        tenants,
        audit,
        root_tenant=ctx.settings.auth.root_tenant,
        cache_ttl_s=ctx.settings.auth.cache_ttl_s,
    )
    service = AccessService(
        ctx.db, entities, catalogue=catalogue, tenants=tenants, audit=audit, resolver=resolver
    )
    # The gateway asks the hub for the kernel's IdentityResolver contract.
    ctx.clients.register(IdentityResolver, resolver, owner=ctx.module.name)
    ctx.clients.register(AccessService, service, owner=ctx.module.name)


module = Module(
    name="access",
    version="1.0.0",
    description="Per-tenant roles with delegation to child tenants, role assignments, API keys.",
    config_model=NoConfig,
    depends_on=("tenants", "audit"),
    capabilities=frozenset({Capability.DB, Capability.REST}),
    init=init,
    register_rest=register_rest,
    provides=(IdentityResolver,),
    uses=(TenantsApi, AuditLogApi),
    migrations=MIGRATIONS,
    permissions=(
        Permission("roles:read", "See roles, permissions and role assignments"),
        Permission("roles:manage", "Define roles and assign them (never beyond your own rights)"),
        Permission("apikeys:manage", "Create, list and revoke the tenant's API keys"),
    ),
)
