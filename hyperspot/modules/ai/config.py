"""Settings under ``modules.ai`` (env: ``HYPERSPOT_MODULES__AI__<KEY>``); all reloadable."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hyperspot.modules.ai.contract import MODEL_ID_PATTERN

RULE_NAME = r"^[a-z][a-z0-9_-]{0,62}$"
Period = Literal["hour", "day", "month"]


class Policy(BaseModel):
    """What a tenant may ask. In ``tenant_policies`` only the fields given replace the default's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_models: tuple[str, ...] = Field(
        default=("*",),
        description="Glob patterns of the model ids the tenant may use (fnmatch: *, ?, [..]).",
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Most completion tokens one request may ask; also the limit passed to the "
        "provider when the request names none. Empty: no limit.",
    )
    forbidden_patterns: dict[str, str] = Field(
        default_factory=dict,
        description="Named regular expressions (RE2 syntax, linear time) that no message or "
        "embedding input may match; a match is refused naming the rule.",
    )

    @field_validator("forbidden_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: dict[str, str]) -> dict[str, str]:
        if not patterns:
            return patterns
        # RE2 (~4 MB) is loaded only when patterns are configured: idle servers stay small.
        import re2

        for name, pattern in patterns.items():
            if not re.match(RULE_NAME, name):
                raise ValueError(f"rule name {name!r} must be lower case letters, digits, _ or -")
            try:
                re2.compile(pattern)
            except re2.error as error:
                raise ValueError(
                    f"forbidden_patterns.{name}: not an RE2 pattern: {error}"
                ) from None
        return patterns


class Quota(BaseModel):
    """A tenant's budget per period (UTC). In ``tenant_quotas`` only the fields given replace
    the default's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: Period = Field(default="day", description="hour, day or month, in UTC.")
    tokens: int | None = Field(
        default=None, ge=0, description="Tokens in and out per period; empty: unlimited."
    )
    requests: int | None = Field(
        default=None, ge=0, description="Calls per period; empty: unlimited."
    )
    reserve_tokens: int = Field(
        default=4096,
        ge=1,
        description="Under a token budget, the completion tokens a chat reserves when neither "
        "the request nor the tenant's policy sets max_tokens; the call is limited to them.",
    )

    @property
    def limited(self) -> bool:
        """Whether there is a budget at all (tokens or requests)."""
        return self.tokens is not None or self.requests is not None


class AiConfig(BaseModel):
    """The AI gateway: routing of models to providers, governance and quotas per tenant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Per model id, the provider plugins to try, in order (the first serves, the "
        "next are fallbacks). Models not named: every provider serving them, by priority.",
    )
    policy: Policy = Field(default_factory=Policy, description="The default tenant policy.")
    tenant_policies: dict[str, Policy] = Field(
        default_factory=dict, description="Per tenant id, what differs from the default policy."
    )
    quota: Quota = Field(default_factory=Quota, description="The default tenant budget.")
    tenant_quotas: dict[str, Quota] = Field(
        default_factory=dict, description="Per tenant id, what differs from the default budget."
    )
    provider_timeout_s: float = Field(
        default=120.0,
        gt=0,
        le=600,
        description="How long a provider may take to answer (a stream: its first chunk); a "
        "slower one counts as failed and the model's next provider is tried.",
    )
    usage_days: int = Field(
        default=92, ge=1, le=3660, description="The longest span one usage query may cover."
    )

    @field_validator("routes")
    @classmethod
    def _route_models(cls, routes: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for model, providers in routes.items():
            if not re.match(MODEL_ID_PATTERN, model):
                raise ValueError(f"routes: {model!r} is not a model id")
            if not providers:
                raise ValueError(f"routes.{model}: name at least one provider")
        return routes

    def policy_for(self, tenant_id: str) -> Policy:
        own = self.tenant_policies.get(tenant_id)
        if own is None:
            return self.policy
        return self.policy.model_copy(update=own.model_dump(exclude_unset=True))

    def quota_for(self, tenant_id: str) -> Quota:
        own = self.tenant_quotas.get(tenant_id)
        if own is None:
            return self.quota
        return self.quota.model_copy(update=own.model_dump(exclude_unset=True))
