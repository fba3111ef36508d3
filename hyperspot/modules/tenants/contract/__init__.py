"""The tenants module's public face: the tenant tree other modules (access, scoping) rely on."""

from enum import StrEnum
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field

from hyperspot.platform.fields import NonBlank, UtcDatetime

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"

TenantName = Annotated[NonBlank, Field(min_length=1, max_length=200)]


class TenantState(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Tenant(BaseModel):
    id: str = Field(pattern=TENANT_ID_PATTERN)
    name: str
    parent_id: str | None = Field(description="null for the root tenant.")
    state: TenantState
    created_at: UtcDatetime


class NewTenant(BaseModel):
    # extra="forbid": an unknown field (a state, say) is refused, not ignored.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"id": "acme-eu", "name": "Acme Europe"}]},
    )

    id: str = Field(
        pattern=TENANT_ID_PATTERN,
        description="Lower-case letters, digits and '-', up to 63 characters; never changes.",
    )
    name: TenantName
    parent_id: str | None = Field(
        default=None,
        pattern=TENANT_ID_PATTERN,
        description="The caller's tenant or one below it; the caller's tenant when omitted.",
    )


class TenantChanges(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "Acme Europe GmbH"}]}
    )

    name: TenantName


class TenantError(Exception):
    """A refused tenant operation; the message names the tenant and says why."""


class TenantNotFoundError(TenantError, LookupError):
    """No such tenant in the caller's subtree (it may exist elsewhere: the answer is the same)."""

    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"no tenant '{tenant_id}'")
        self.tenant_id = tenant_id


class TenantExistsError(TenantError):
    """A tenant with that id exists already (ids are unique across the whole tree)."""

    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"tenant '{tenant_id}' already exists")


class TenantHasChildrenError(TenantError):
    """The tenant still has child tenants; they go first."""

    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"tenant '{tenant_id}' still has child tenants: delete them first")


class TenantActionDeniedError(TenantError):
    """The tenant is visible to the caller but this action on it is not theirs to take."""


class TenantsApi(Protocol):
    async def lineage(self, tenant_id: str) -> list[Tenant]:
        """The tenant, then its parent, ... up to the root; [] when there is no such tenant.

        A tenant is usable only when no tenant of its lineage is suspended. Answers may come from a
        cache for at most ``auth.cache_ttl_s``.
        """
        ...
