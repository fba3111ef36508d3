"""What the domain needs from storage, declared here so that the domain never imports infra/."""

from dataclasses import dataclass
from typing import Any

ACTOR_LENGTH = 255
TENANT_LENGTH = 64
ACTION_LENGTH = 100
TARGET_LENGTH = 255
RESULT_LENGTH = 16
CLIENT_LENGTH = 100
REQUEST_ID_LENGTH = 100


@dataclass(frozen=True)
class AuditEntities:
    AuditEntry: Any  # a Pony entity class; Pony has no static types
