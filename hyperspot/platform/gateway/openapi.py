"""The OpenAPI 3.1 document, generated from the registered operations (never written by hand)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaValue, models_json_schema

from hyperspot.platform.gateway.operations import DEFAULT_RATE_CLASS, Operation
from hyperspot.platform.gateway.problems import PROBLEM_MEDIA_TYPE, ProblemDetails

REF = "#/components/schemas/{model}"
Mode = Literal["validation", "serialization"]

# Errors the gateway itself may answer on any operation.
_COMMON_ERRORS = {
    400: "Malformed request (e.g. a path or query string that is not UTF-8 text)",
    406: "The Accept header admits no JSON",
    431: "The request line and headers are too large (server.max_header_bytes, max_headers)",
    500: "Unexpected server error",
}


class _Schemas:
    """Every model the operations use, as JSON Schema under ``#/components/schemas``."""

    def __init__(self, operations: Sequence[Operation]) -> None:
        wanted: list[tuple[type[BaseModel], Mode]] = [(ProblemDetails, "serialization")]
        for op in operations:
            for model in (op.query_model, op.path_model, op.body_model):
                if model is not None:
                    wanted.append((model, "validation"))
            wanted.extend((spec.model, "serialization") for spec in op.responses if spec.model)
        self.refs, definitions = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
        self.components: dict[str, Any] = dict(sorted(definitions.get("$defs", {}).items()))

    def ref(self, model: type[BaseModel], mode: Mode) -> JsonSchemaValue:
        return self.refs[(model, mode)]

    def definition(self, model: type[BaseModel]) -> dict[str, Any]:
        name = self.ref(model, "validation")["$ref"].rsplit("/", 1)[-1]
        found: dict[str, Any] = self.components[name]
        return found


def _parameters(op: Operation, schemas: _Schemas) -> list[dict[str, Any]]:
    parameters = []
    for location, model in (("path", op.path_model), ("query", op.query_model)):
        if model is None:
            continue
        schema = schemas.definition(model)
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            param: dict[str, Any] = {
                "name": name,
                "in": location,
                "required": location == "path" or name in required,
                "schema": {k: v for k, v in prop.items() if k != "description"},
            }
            if "description" in prop:
                param["description"] = prop["description"]
            parameters.append(param)
    return parameters


def _responses(op: Operation, schemas: _Schemas, has_input: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for spec in op.responses:
        response: dict[str, Any] = {"description": spec.description}
        if spec.text_media_type is not None:
            response["content"] = {spec.text_media_type: {"schema": {"type": "string"}}}
        elif spec.model is not None:
            schema = schemas.ref(spec.model, "serialization")
            response["content"] = {"application/json": {"schema": schema}}
        if spec.stream_media_type is not None:
            content = response.setdefault("content", {})
            # Without a type: validators read an event stream event by event (OpenAPI 3.2's
            # itemSchema), a 3.1 schema would describe the whole body; neither may be refused.
            content[spec.stream_media_type] = {
                "schema": {"description": f"A stream of {spec.stream_media_type}, piece by piece"}
            }
        responses[str(spec.status)] = response
    errors = dict(_COMMON_ERRORS)
    if has_input:
        errors[400] = "Malformed or invalid input"
    if op.body_model is not None:
        errors[408] = "The request body did not arrive in time"
        errors[413] = "Request body too large"
        errors[415] = "Request body is not JSON"
    if not op.access.is_public:
        errors[401] = "Missing or invalid credential"
        errors[403] = "The credential lacks the required permission, or its tenant is suspended"
    errors[429] = "Rate limit exceeded (when limits are configured for the operation's class)"
    errors.update(op.errors)
    problem = {PROBLEM_MEDIA_TYPE: {"schema": schemas.ref(ProblemDetails, "serialization")}}
    for status in sorted(errors):
        responses[str(status)] = {"description": errors[status], "content": problem}
    return responses


def _operation(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": list(op.tags),
    }
    if op.description:
        entry["description"] = op.description
    parameters = _parameters(op, schemas)
    if parameters:
        entry["parameters"] = parameters
    if op.body_model is not None:
        entry["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.ref(op.body_model, "validation")}},
        }
    entry["responses"] = _responses(op, schemas, bool(parameters) or op.body_model is not None)
    if not op.access.is_public:
        entry["security"] = [{"bearerAuth": []}]
    if op.access.permission:
        entry["x-hyperspot-permission"] = op.access.permission
    entry["x-hyperspot-rate-limit"] = op.rate_limit or DEFAULT_RATE_CLASS
    entry["x-hyperspot-module"] = op.module
    return entry


def build_openapi(operations: Sequence[Operation], *, title: str, version: str) -> dict[str, Any]:
    operations = [op for op in operations if op.documented]
    schemas = _Schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in sorted(operations, key=lambda o: (o.path, o.method)):
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
