"""Settings under ``modules.ai_openai`` (env: ``HYPERSPOT_MODULES__AI_OPENAI__<KEY>``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hyperspot.modules.ai.contract import MODEL_ID_PATTERN, ModelKind


class UpstreamModel(BaseModel):
    """A model the upstream serves, published under ``id``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=MODEL_ID_PATTERN)
    kind: ModelKind = "chat"


class OpenAiConfig(BaseModel):
    """An OpenAI-compatible upstream (OpenAI, Azure OpenAI's v1 API, vLLM, Ollama, LiteLLM...).

    The key is never part of the configuration: it is read from the environment variable named by
    ``api_key_env`` when the module starts.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str | None = Field(
        default=None,
        description=(
            "The API's base URL, with its version path (https://api.openai.com/v1). "
            "Empty: no provider is registered."
        ),
    )
    api_key_env: str = Field(
        default="OPENAI_API_KEY",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
        description="The environment variable holding the key, sent as 'Authorization: Bearer'.",
    )
    models: list[UpstreamModel] = Field(
        default_factory=list,
        description=(
            "The models to publish; empty: the upstream's GET /models (a model whose id contains "
            "'embed' is an embedding model, any other a chat model)."
        ),
    )
    model_map: dict[str, str] = Field(
        default_factory=dict,
        description="Public model id -> the upstream's id (a model published under another name).",
    )
    timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Longest wait for the upstream's next bytes (a stream's next chunk).",
    )
    connect_timeout_s: float = Field(
        default=5.0, gt=0, le=300, description="Longest wait to connect to the upstream."
    )
    retries: int = Field(
        default=2, ge=0, le=10, description="Extra attempts after a 429, a 5xx or a network error."
    )
    backoff_s: float = Field(
        default=0.25,
        ge=0,
        le=60,
        description="First retry's delay; doubled for each further one, with jitter.",
    )
    retry_after_max_s: float = Field(
        default=10.0,
        ge=0,
        le=600,
        description=(
            "Longest Retry-After honoured; an upstream asking for longer fails at once (the "
            "gateway tries the model's next provider)."
        ),
    )
    max_connections: int = Field(
        default=100, ge=1, le=10_000, description="Concurrent connections to the upstream."
    )
    models_refresh_s: float = Field(
        default=300.0, gt=0, description="How long the upstream's model list is reused."
    )
    priority: int = Field(
        default=50, description="Among the providers of one model, the higher is tried first."
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL, e.g. https://api.openai.com/v1")
        if parts.username is not None or parts.password is not None or parts.query:
            # Credentials belong in the environment variable, never in a file.
            raise ValueError("must not hold credentials or a query; the key goes in api_key_env")
        return value.strip().rstrip("/")
