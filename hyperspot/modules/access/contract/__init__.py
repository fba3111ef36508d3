"""The access module's public face: roles, role assignments and API keys."""

from pydantic import BaseModel, ConfigDict, Field

from hyperspot.platform.fields import NonBlank, UtcDatetime
from hyperspot.platform.identity import ROLE_NAME

ROLE_PATTERN = ROLE_NAME.pattern
PERMISSION_PATTERN = r"^[a-z][a-z0-9_-]*:[a-z][a-z0-9_-]*$"


class AccessError(Exception):
    """A refused access change; ``status`` is the HTTP status the REST layer answers."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class Role(BaseModel):
    name: str
    description: str
    permissions: list[str]
    builtin: bool = Field(description="Built-in roles cannot be changed or deleted.")


class NewRole(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "editor",
                    "description": "Edits notes",
                    "permissions": ["notes:read", "notes:write"],
                }
            ]
        },
    )

    name: str = Field(pattern=ROLE_PATTERN)
    description: str = Field(default="", max_length=500)
    permissions: list[str] = Field(max_length=200)


class RoleChanges(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"permissions": ["notes:read"]}]}
    )

    description: str | None = Field(default=None, max_length=500)
    permissions: list[str] | None = Field(default=None, max_length=200)


class Assignment(BaseModel):
    id: str
    tenant_id: str
    subject: str
    role: str
    created_at: UtcDatetime
    created_by: str


class NewAssignment(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"subject": "ann", "role": "member"}]}
    )

    subject: NonBlank = Field(min_length=1, max_length=200)
    role: str = Field(pattern=ROLE_PATTERN)


class ApiKey(BaseModel):
    id: str
    name: str
    subject: str
    roles: list[str]
    created_at: UtcDatetime
    created_by: str
    revoked_at: UtcDatetime | None


class NewApiKey(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "ci-pipeline", "roles": ["member"]}]},
    )

    name: NonBlank = Field(min_length=1, max_length=100)
    roles: list[str] = Field(min_length=1, max_length=20)


class CreatedApiKey(ApiKey):
    key: str = Field(
        description="The secret key: shown only in this response, stored only as a hash."
    )


class Me(BaseModel):
    subject: str
    tenant_id: str
    home_tenant: str
    roles: list[str]
    permissions: list[str]
    platform_admin: bool
