"""What the domain needs from storage, declared here so that the domain never imports infra/."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NoteEntities:
    Note: Any  # a Pony entity class; Pony has no static types
