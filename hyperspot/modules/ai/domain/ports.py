"""What the domain needs from storage, declared here so that the domain never imports infra/."""

from dataclasses import dataclass
from typing import Any

SUBJECT_LENGTH = 200
MODEL_LENGTH = 128
PROVIDER_LENGTH = 64


@dataclass(frozen=True)
class AiEntities:
    # Pony entity classes; Pony has no static types.
    Usage: Any
    Budget: Any
