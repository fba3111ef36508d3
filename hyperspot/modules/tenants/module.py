"""The tenants module's declaration."""

import re

from hyperspot.modules.audit.contract import AuditLogApi
from hyperspot.modules.tenants.api.rest import register_rest
from hyperspot.modules.tenants.contract import TENANT_ID_PATTERN, TenantsApi
from hyperspot.modules.tenants.domain.service import TenantsService
from hyperspot.modules.tenants.infra.storage import MIGRATIONS, define_entities
from hyperspot.platform import Capability, Module, ModuleContext, NoConfig, Permission, StartupError


def init(ctx: ModuleContext[NoConfig]) -> None:
    root = ctx.settings.auth.root_tenant
    if not re.fullmatch(TENANT_ID_PATTERN, root):
        raise StartupError(
            f"auth.root_tenant '{root}' is not a valid tenant id: use lower-case letters, digits "
            "and '-', up to 63 characters"
        )
    service = TenantsService(
        ctx.db,
        define_entities(ctx.db.schema),
        ctx.clients.get(AuditLogApi),
        root_tenant=root,
        cache_ttl_s=ctx.settings.auth.cache_ttl_s,
    )
    # Other modules see the contract (the lineage); the REST layer and the CLI the full service.
    ctx.clients.register(TenantsApi, service, owner=ctx.module.name)
    ctx.clients.register(TenantsService, service, owner=ctx.module.name)


async def start(ctx: ModuleContext[NoConfig]) -> None:
    if await ctx.clients.get(TenantsService).ensure_root():
        ctx.logger.info("created the root tenant '%s'", ctx.settings.auth.root_tenant)


module = Module(
    name="tenants",
    version="1.0.0",
    description="The tenant tree: each tenant administers the tenants below it.",
    config_model=NoConfig,
    depends_on=("audit",),
    capabilities=frozenset({Capability.DB, Capability.REST}),
    init=init,
    register_rest=register_rest,
    provides=(TenantsApi,),
    uses=(AuditLogApi,),
    start=start,
    migrations=MIGRATIONS,
    permissions=(
        Permission("tenants:read", "See the tenant and its child tenants"),
        Permission("tenants:manage", "Create, rename, suspend, resume and delete child tenants"),
    ),
)
