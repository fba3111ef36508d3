from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RefValidationPolicy = Literal["none", "any-present", "any-valid"]


class TypesRegistryConfig(BaseModel):
    """Settings under ``modules.types_registry``.

    Environment: ``HYPERSPOT_MODULES__TYPES_REGISTRY__<KEY>``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ref_validation: RefValidationPolicy = Field(
        default="any-valid",
        description=(
            "x-gts-ref policy (spec §9.6): 'none' checks syntax and matching only, 'any-present' "
            "also needs the targets registered, 'any-valid' also needs them valid."
        ),
    )
    validate_on_register: bool = Field(
        default=False,
        description=(
            "Whether POST /gts/entities validates when the request has no 'validate' parameter "
            "(the spec's API defaults to false). Module registrations choose for themselves."
        ),
    )
    allow_updates: bool = Field(
        default=True,
        description=(
            "Registering different content under an identifier already registered replaces it "
            "(true) or is refused (false). The same content again is always accepted."
        ),
    )
    writers: Literal["platform-admins", "tenant-admins"] = Field(
        default="platform-admins",
        description=(
            "The registry is shared by every tenant: besides 'types:write', a change needs a "
            "platform administrator unless this is 'tenant-admins'."
        ),
    )
    sync_interval_s: float = Field(
        default=0.0,
        ge=0.0,
        le=60.0,
        description=(
            "How stale a read may be: other workers' and instances' changes are looked for "
            "before a read at most this often (0: before every read, one indexed query)."
        ),
    )
    list_limit: int = Field(default=100, ge=1, le=1000, description="Default page of lists.")
    max_bulk: int = Field(
        default=1000, ge=1, le=100_000, description="Most entities one bulk request may register."
    )
