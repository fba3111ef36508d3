"""What the domain needs from storage, declared here so that the domain never imports infra/."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AccessEntities:
    # Pony entity classes; Pony has no static types.
    Role: Any
    Assignment: Any
    ApiKey: Any
