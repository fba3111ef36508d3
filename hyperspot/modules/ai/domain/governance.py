"""Per-tenant governance: which models, how many tokens a request may ask, what text is refused.

Each refusal names the rule it applies (``allowed_models``, ``max_tokens``,
``forbidden_patterns.<name>``), so a client and an operator both see why.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hyperspot.modules.ai.config import AiConfig, Policy
from hyperspot.modules.ai.contract import ModelNotAllowedError, PolicyViolationError

ALLOWED_MODELS = "allowed_models"
MAX_TOKENS = "max_tokens"
FORBIDDEN_PATTERNS = "forbidden_patterns"


class ModelRefusedError(ModelNotAllowedError):
    """The tenant's policy does not allow the model (rule ``allowed_models``)."""

    rule = ALLOWED_MODELS


class RuleViolationError(PolicyViolationError):
    """The request breaks the named rule of the tenant's policy."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class TenantPolicy:
    """A policy with its patterns compiled (RE2: matching is linear in the text's length)."""

    policy: Policy
    patterns: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, policy: Policy) -> TenantPolicy:
        compiled: list[tuple[str, Any]] = []
        if policy.forbidden_patterns:
            import re2

            compiled = [(name, re2.compile(p)) for name, p in policy.forbidden_patterns.items()]
        return cls(policy, tuple(compiled))

    def allows(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.policy.allowed_models)

    def check_model(self, model: str) -> None:
        if not self.allows(model):
            raise ModelRefusedError(
                f"the tenant's policy does not allow the model '{model}' (rule {ALLOWED_MODELS})"
            )

    def check_texts(self, texts: Iterable[str]) -> None:
        texts = list(texts)
        for name, pattern in self.patterns:
            if any(pattern.search(text) for text in texts):
                rule = f"{FORBIDDEN_PATTERNS}.{name}"
                raise RuleViolationError(
                    rule, f"the request contains text the tenant's policy forbids (rule {rule})"
                )

    def token_limit(self, asked: int | None) -> int | None:
        """The completion limit to pass on: what was asked, else the policy's maximum."""
        most = self.policy.max_tokens
        if most is not None and asked is not None and asked > most:
            raise RuleViolationError(
                MAX_TOKENS,
                f"the request asks for {asked} tokens; the tenant's policy allows at most "
                f"{most} (rule {MAX_TOKENS})",
            )
        return asked if asked is not None else most


class Governance:
    """The policies in force: rebuilt whole when the configuration is reloaded."""

    def __init__(self, config: AiConfig) -> None:
        self.config = config
        self._default = TenantPolicy.of(config.policy)
        self._tenants = {
            tenant: TenantPolicy.of(config.policy_for(tenant)) for tenant in config.tenant_policies
        }

    def policy(self, tenant_id: str) -> TenantPolicy:
        return self._tenants.get(tenant_id, self._default)
