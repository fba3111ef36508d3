from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class NotesConfig(BaseModel):
    """Settings under ``modules.notes`` (env: ``HYPERSPOT_MODULES__NOTES__<KEY>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    page_size: int = Field(default=50, ge=1, le=1000, description="Default page size of lists.")
    max_page_size: int = Field(default=200, ge=1, le=1000, description="Largest allowed limit.")
    max_notes_per_tenant: int = Field(
        default=10_000, ge=0, description="Quota: how many notes one tenant may keep."
    )

    @model_validator(mode="after")
    def _page_size_within_limit(self) -> Self:
        if self.page_size > self.max_page_size and "page_size" not in self.model_fields_set:
            # Only the default is too large: follow the configured limit.
            object.__setattr__(self, "page_size", self.max_page_size)
        if self.page_size > self.max_page_size:
            raise ValueError(
                f"page_size ({self.page_size}) exceeds max_page_size ({self.max_page_size})"
            )
        return self
