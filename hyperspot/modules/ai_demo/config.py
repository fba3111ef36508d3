from pydantic import BaseModel, ConfigDict, Field, field_validator

from hyperspot.modules.ai.contract import MODEL_ID_PATTERN, ModelKind


class DemoModel(BaseModel):
    """A model the demo provider serves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=MODEL_ID_PATTERN)
    kind: ModelKind


class AiDemoConfig(BaseModel):
    """Settings under ``modules.ai_demo`` (env: ``HYPERSPOT_MODULES__AI_DEMO__<KEY>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[DemoModel, ...] = Field(
        default=(
            DemoModel(id="demo-chat", kind="chat"),
            DemoModel(id="demo-embed", kind="embedding"),
        ),
        min_length=1,
        description="The models served: chat ones echo, embedding ones hash words.",
    )
    latency_ms: int = Field(
        default=0,
        ge=0,
        le=60_000,
        description="Delay before each answer and between streamed chunks (to demo timeouts).",
    )
    dimensions: int = Field(
        default=256, ge=8, le=8192, description="Length of embedding vectors by default."
    )

    @field_validator("models")
    @classmethod
    def _unique_ids(cls, models: tuple[DemoModel, ...]) -> tuple[DemoModel, ...]:
        ids = [model.id for model in models]
        repeated = sorted({model_id for model_id in ids if ids.count(model_id) > 1})
        if repeated:
            raise ValueError(f"model ids must be unique (repeated: {', '.join(repeated)})")
        return models
