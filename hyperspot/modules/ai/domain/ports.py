"""What the domain needs from storage, declared here so that the domain never imports infra/."""

from dataclasses import dataclass
from typing import Any

SUBJECT_LENGTH = 200
MODEL_LENGTH = 128
PROVIDER_LENGTH = 64
# A budget counter's id: "<tenant id>/<period>/<start>", e.g. "acme/hour/2026-11-26T05:00:00".
BUDGET_ID_LENGTH = 100


@dataclass(frozen=True)
class AiEntities:
    # Pony entity classes; Pony has no static types.
    Usage: Any
    Budget: Any
