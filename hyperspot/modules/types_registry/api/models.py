"""Request and response bodies of the /gts API, named as the GTS spec's tests/openapi.json names
them, so that a client written for the spec's reference API works unmodified.

A response carries exactly the fields its operation produced: an absent optional field stays
absent (the spec's server omits, e.g., ``error`` on success) instead of becoming ``null``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    SerializerFunctionWrapHandler,
    model_serializer,
)

GTS_ID = Field(min_length=1, max_length=2048, description="A GTS identifier.")
Verdict = Literal["compatible", "incompatible", "unknown"]


class SpecBody(BaseModel):
    """A response body of the spec's API: the fields set, and nothing else."""

    model_config = ConfigDict(extra="allow")

    @model_serializer(mode="wrap")
    def _present_only(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        return {key: value for key, value in data.items() if key in self.model_fields_set}


# -- requests ------------------------------------------------------------------------------------


EXAMPLE_TYPE_ID = "gts.x.demo.shop.order.v1~"
EXAMPLE_TYPE_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "$id": "gts://" + EXAMPLE_TYPE_ID,
    "type": "object",
    "properties": {"id": {"type": "string"}, "total": {"type": "number", "minimum": 0}},
    "required": ["id"],
}
EXAMPLE_INSTANCE_ID = EXAMPLE_TYPE_ID + "x.demo.shop.order.v1"


class JsonDocument(RootModel[dict[str, Any]]):
    """A JSON object: a GTS Type Schema (it has ``$schema``) or an instance."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_TYPE_SCHEMA]})


class JsonDocuments(RootModel[list[dict[str, Any]]]):
    """GTS entities to register together."""

    model_config = ConfigDict(json_schema_extra={"examples": [[EXAMPLE_TYPE_SCHEMA]]})


class TypeSchemaRegister(BaseModel):
    type_id: str = GTS_ID
    type_schema: dict[str, Any]


class TypeSchemas(RootModel[TypeSchemaRegister | list[dict[str, Any]]]):
    """One type schema under an explicit ``type_id``, or a list of type schemas (their ``$id``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"type_id": EXAMPLE_TYPE_ID, "type_schema": EXAMPLE_TYPE_SCHEMA}]
        }
    )


class ValidateInstanceRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"instance_id": EXAMPLE_INSTANCE_ID}]}
    )

    instance_id: str = GTS_ID


class ValidateTypeSchemaRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"type_id": EXAMPLE_TYPE_ID}]})

    type_id: str = GTS_ID


class ValidateEntityRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"entity_id": EXAMPLE_TYPE_ID}]})

    entity_id: str = GTS_ID


class CastRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"instance_id": EXAMPLE_INSTANCE_ID, "to_type_id": "gts.x.demo.shop.order.v1.1~"}
            ]
        }
    )

    instance_id: str = GTS_ID
    to_type_id: str = GTS_ID


REF_VALIDATION = Field(
    default=None,
    alias="gts-ref-validation",
    max_length=50,
    description=(
        "x-gts-ref policy for this request (spec §9.6): none, any-present or any-valid. "
        "Absent: the module's ref_validation setting."
    ),
)


class RefValidationQuery(BaseModel):
    gts_ref_validation: str | None = REF_VALIDATION


class RegisterQuery(RefValidationQuery):
    validate_: bool | None = Field(
        default=None,
        alias="validate",
        description=(
            "Validate before registering (spec §9.3): on failure nothing is registered. "
            "Absent: the module's validate_on_register setting (default false)."
        ),
    )


class ListQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=1000, description="At most this many entities.")
    pattern: str | None = Field(
        default=None, max_length=2048, description="Only entities matching this GTS pattern."
    )


class GtsIdQuery(BaseModel):
    gts_id: str = Field(max_length=2048, description="A GTS identifier.")


class GtsIdPath(BaseModel):
    gts_id: str = GTS_ID


class GtsTypePath(BaseModel):
    gts_type: str = GTS_ID


class MatchQuery(BaseModel):
    candidate: str = Field(max_length=2048)
    pattern: str = Field(max_length=2048)


class CompatibilityQuery(BaseModel):
    old_type_id: str = GTS_ID
    new_type_id: str = GTS_ID


class QueryQuery(BaseModel):
    expr: str = Field(max_length=4096, description='pattern[attr="value", ...] (spec §3.3).')
    limit: int = Field(default=100, ge=1, le=1000)


class AttrQuery(BaseModel):
    gts_with_path: str = Field(max_length=4096, description="<gts id>@path.to.field (spec §3.4).")


# -- responses -----------------------------------------------------------------------------------


class EntityInfo(SpecBody):
    id: str
    type_id: str | None = None
    is_type_schema: bool = False


class EntityList(SpecBody):
    entities: list[EntityInfo]
    count: int
    total: int


class EntityResult(SpecBody):
    ok: bool
    id: str | None = None
    type_id: str | None = None
    is_type_schema: bool | None = None
    content: dict[str, Any] | None = None
    error: str | None = None


class RegisterResult(SpecBody):
    ok: bool
    id: str | None = None
    type_id: str | None = None
    is_type_schema: bool | None = None
    error: str | None = None


class BulkResult(SpecBody):
    ok: bool
    results: list[RegisterResult]
    error: str | None = None


class TypeSchemaResult(SpecBody):
    ok: bool
    type_id: str | None = None
    error: str | None = None
    results: list[TypeSchemaResult] | None = None


class DeleteResult(SpecBody):
    ok: bool
    id: str | None = None
    error: str | None = None


class ValidateIdResult(SpecBody):
    id: str
    valid: bool
    is_wildcard: bool | None = None
    is_type: bool | None = None
    error: str | None = None


class Segment(SpecBody):
    vendor: str | None = None
    package: str | None = None
    namespace: str | None = None
    type: str | None = None
    ver_major: int | None = None
    ver_minor: int | None = None
    is_type: bool | None = None


class ParseIdResult(SpecBody):
    id: str
    ok: bool
    segments: list[Segment] = Field(default_factory=list)
    is_wildcard: bool | None = None
    is_type: bool | None = None
    error: str | None = None


class ExtractIdResult(SpecBody):
    id: str | None = None
    type_id: str | None = None
    selected_entity_field: str | None = None
    selected_type_id_field: str | None = None
    is_type: bool


class MatchResult(SpecBody):
    candidate: str
    pattern: str
    match: bool
    error: str | None = None


class UuidResult(SpecBody):
    id: str
    uuid: str | None = None
    error: str | None = None


class ValidationResult(SpecBody):
    id: str
    ok: bool
    error: str | None = None


class EntityValidationResult(SpecBody):
    id: str
    ok: bool
    entity_type: Literal["schema", "instance", ""] | None = None
    error: str | None = None


class ValidateJsonResult(SpecBody):
    ok: bool
    id: str | None = None
    type_id: str | None = None
    is_type_schema: bool = False
    error: str | None = None


class RelationshipsResult(SpecBody):
    """OP#7: the entity's graph (its type schema chain and the GTS references it holds)."""


class CompatibilityResult(SpecBody):
    old: str | None = None
    new: str | None = None
    backward_compatibility: Verdict | None = None
    forward_compatibility: Verdict | None = None
    full_compatibility: Verdict | None = None
    error: str | None = None


class CastResult(SpecBody):
    casted_entity: dict[str, Any] | None = None
    backward_compatibility: Verdict | None = None
    forward_compatibility: Verdict | None = None
    full_compatibility: Verdict | None = None
    error: str | None = None


class QueryResult(SpecBody):
    error: str | None = None
    count: int = 0
    limit: int | None = None
    results: list[dict[str, Any]] = Field(default_factory=list)


class AttrResult(SpecBody):
    gts_id: str | None = None
    path: str | None = None
    value: Any = None
    resolved: bool = False
    error: str | None = None
