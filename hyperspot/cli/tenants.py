"""``hyperspot tenants``: administer the tenant tree directly on the database, as the operator.

Each command boots the modules as the server does (applying migrations when
``database.migrate_on_start``), acts as ``cli:<OS user>``, a platform administrator in the root
tenant, and is audited like the REST operations (client ``cli``).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from hyperspot.cli.common import ConfigOption, fail, out
from hyperspot.modules.tenants.contract import TENANT_ID_PATTERN, Tenant
from hyperspot.platform.errors import HyperspotError

if TYPE_CHECKING:
    from hyperspot.modules.tenants.domain.service import TenantsService
    from hyperspot.platform.identity import RequestOrigin
    from hyperspot.platform.runtime import Runtime
    from hyperspot.platform.security import SecurityContext

T = TypeVar("T")

Action = Callable[["TenantsService", "SecurityContext", "RequestOrigin"], Awaitable[T]]

tenants_app = typer.Typer(
    help="Administer the tenant tree as the platform operator.", no_args_is_help=True
)

TenantIdArgument = Annotated[str, typer.Argument(help="The tenant's id.", show_default=False)]


def _tenant_id(value: str, what: str = "tenant id") -> str:
    if not re.fullmatch(TENANT_ID_PATTERN, value):
        raise fail(
            f"invalid {what} '{value}': use lower-case letters, digits and '-' "
            "(starting with a letter or digit), up to 63 characters"
        )
    return value


def _operator_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (e.g. a container's anonymous uid)
        return "unknown"


def _as_operator(config: Path | None, command: str, action: Action[T]) -> T:
    """Boot the modules, run ``action`` as the platform operator, stop; errors in one line."""
    from hyperspot.modules.tenants.contract import TenantError
    from hyperspot.platform.server import prepare

    try:
        _, runtime = prepare(config, quiet=True)
        return asyncio.run(_run(runtime, command, action))
    except (TenantError, HyperspotError) as error:
        raise fail(str(error)) from None


async def _run(runtime: Runtime, command: str, action: Action[T]) -> T:
    from hyperspot.modules.tenants.domain.service import TenantsService
    from hyperspot.platform.identity import TENANT_ADMIN, RequestOrigin
    from hyperspot.platform.security import SecurityContext

    # boot() and start() stop what they started when they fail.
    await runtime.boot()
    await runtime.start()
    try:
        service = runtime.clients.get(TenantsService)
        operator = SecurityContext(
            subject=f"cli:{_operator_name()}",
            tenant_id=runtime.settings.auth.root_tenant,
            permissions=frozenset(runtime.permissions.permissions),
            roles=frozenset({TENANT_ADMIN}),
            platform_admin=True,
        )
        origin = RequestOrigin(
            client="cli", request_id=uuid.uuid4().hex, method="CLI", path=f"tenants {command}"
        )
        return await action(service, operator, origin)
    finally:
        await runtime.stop()


@tenants_app.command()
def create(
    tenant_id: TenantIdArgument,
    name: Annotated[str, typer.Option("--name", help="Display name.", show_default=False)],
    parent: Annotated[
        str | None, typer.Option("--parent", help="The parent tenant (default: the root).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create a tenant."""
    from pydantic import ValidationError

    from hyperspot.modules.tenants.contract import NewTenant

    _tenant_id(tenant_id)
    if parent is not None:
        _tenant_id(parent, "parent tenant id")
    try:
        new = NewTenant(id=tenant_id, name=name, parent_id=parent)
    except ValidationError as error:
        # Only the name can still be wrong: the ids were checked above.
        raise fail(f"invalid name {name!r}: {error.errors()[0]['msg']}") from None
    tenant = _as_operator(config, "create", lambda s, who, origin: s.create(who, new, origin))
    out.print(
        f"created tenant {tenant.id} ({tenant.name}) under {tenant.parent_id}",
        highlight=False,
        markup=False,
    )


@tenants_app.command("list")
def list_tenants(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every tenant."""
    tenants = _as_operator(config, "list", _all_tenants)
    if as_json:
        sys.stdout.write(
            json.dumps([tenant.model_dump(mode="json") for tenant in tenants], indent=2) + "\n"
        )
        return
    table = Table(title="Tenants")
    for column in ("id", "name", "parent", "state", "created (UTC)"):
        table.add_column(column)
    for tenant in tenants:
        table.add_row(
            tenant.id,
            tenant.name,
            tenant.parent_id or "-",
            tenant.state.value,
            tenant.created_at.isoformat(sep=" ", timespec="seconds"),
        )
    out.print(table)


async def _all_tenants(
    service: TenantsService, operator: SecurityContext, origin: RequestOrigin
) -> list[Tenant]:
    from hyperspot.platform.db import ListParams

    tenants: list[Tenant] = []
    cursor: str | None = None
    while True:
        params = ListParams(orderby="id", limit=service.list_spec.max_limit, cursor=cursor)
        items, cursor = await service.list(operator, params)
        tenants.extend(items)
        if cursor is None:
            return tenants


@tenants_app.command()
def suspend(tenant_id: TenantIdArgument, config: ConfigOption = None) -> None:
    """Suspend a tenant: it and every tenant below it can no longer act."""
    _tenant_id(tenant_id)
    _as_operator(config, "suspend", lambda s, who, origin: s.suspend(who, tenant_id, origin))
    out.print(f"suspended tenant {tenant_id}", highlight=False, markup=False)


@tenants_app.command()
def resume(tenant_id: TenantIdArgument, config: ConfigOption = None) -> None:
    """Resume a suspended tenant."""
    _tenant_id(tenant_id)
    _as_operator(config, "resume", lambda s, who, origin: s.resume(who, tenant_id, origin))
    out.print(f"resumed tenant {tenant_id}", highlight=False, markup=False)
