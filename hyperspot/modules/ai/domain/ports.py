"""What the domain needs from storage, declared here so that the domain never imports infra/."""

from dataclasses import dataclass
from typing import Any

SUBJECT_LENGTH = 200
MODEL_LENGTH = 128
PROVIDER_LENGTH = 64


@dataclass(frozen=True)
class AiEntities:
    Usage: Any  # a Pony entity class; Pony has no static types
