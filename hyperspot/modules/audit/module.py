"""The audit module's declaration."""

from hyperspot.modules.audit.api.rest import register_rest
from hyperspot.modules.audit.contract import AuditLogApi
from hyperspot.modules.audit.domain.service import AuditService
from hyperspot.modules.audit.infra.storage import MIGRATIONS, define_entities
from hyperspot.platform import Capability, Module, ModuleContext, NoConfig, Permission


def init(ctx: ModuleContext[NoConfig]) -> None:
    service = AuditService(ctx.db, define_entities(ctx.db.schema))
    # Other modules record through the contract; this module's REST layer also lists.
    ctx.clients.register(AuditLogApi, service, owner=ctx.module.name)
    ctx.clients.register(AuditService, service, owner=ctx.module.name)


module = Module(
    name="audit",
    version="1.0.0",
    description="The tenant-scoped, append-only audit log of administrative actions.",
    config_model=NoConfig,
    capabilities=frozenset({Capability.DB, Capability.REST}),
    init=init,
    register_rest=register_rest,
    migrations=MIGRATIONS,
    permissions=(Permission("audit:read", "Read the tenant's audit log"),),
    provides=(AuditLogApi,),
)
