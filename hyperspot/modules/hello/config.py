from pydantic import BaseModel, ConfigDict, Field


class HelloConfig(BaseModel):
    """Settings under ``modules.hello`` (env: ``HYPERSPOT_MODULES__HELLO__<KEY>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_name: str = Field(
        default="world", min_length=1, description="Who is greeted by default."
    )
    max_name_length: int = Field(default=64, ge=1, le=1024)
    shout: bool = Field(default=False, description="Greet in capital letters.")
