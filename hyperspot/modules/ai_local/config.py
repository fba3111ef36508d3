from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hyperspot.modules.ai.contract import MODEL_ID_PATTERN


class AiLocalConfig(BaseModel):
    """Settings under ``modules.ai_local`` (env: ``HYPERSPOT_MODULES__AI_LOCAL__<KEY>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        default="local-embed",
        pattern=MODEL_ID_PATTERN,
        description="The model id clients ask for (the model itself is wordllama l2_supercat).",
    )
    dimensions: Literal[64, 128, 256] = Field(
        default=256,
        description=(
            "Length of the vectors; the model is trained so that its leading dimensions carry "
            "the most (64 or 128 use less memory and lose a little quality)."
        ),
    )
    max_inputs: int = Field(
        default=256, ge=1, le=4096, description="Texts one request may embed; more is refused."
    )
    batch_size: int = Field(
        default=64, ge=1, le=1024, description="Texts the model embeds in one pass."
    )
