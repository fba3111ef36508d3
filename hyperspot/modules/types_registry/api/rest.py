"""The /gts REST operations: the GTS spec's reference API (§9.5, tests/openapi.json).

Bodies and field names are the spec's, so that its clients and conformance tests work unchanged.
Status codes too: the spec's operations answer 200 with ``ok``/``valid``/``error`` fields, a
refused registration 422. Errors that are the platform's (credentials, permissions, malformed
JSON, out-of-range parameters) are RFC 9457 problem documents, as everywhere else.

Reads need ``types:read`` (or a scoped ``types:read:<pattern>``: the caller then sees only what
its patterns cover, and anything else is answered as missing); changes need ``types:write``. The
identifier operations that read nothing from the registry need only a credential.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from typing import Any, TypeVar, get_args

from pydantic import BaseModel

from hyperspot.modules.types_registry.api.models import (
    AttrQuery,
    AttrResult,
    BulkResult,
    CastRequest,
    CastResult,
    CompatibilityQuery,
    CompatibilityResult,
    DeleteResult,
    EntityInfo,
    EntityList,
    EntityResult,
    EntityValidationResult,
    ExtractIdResult,
    GtsIdPath,
    GtsIdQuery,
    GtsTypePath,
    JsonDocument,
    JsonDocuments,
    ListQuery,
    MatchQuery,
    MatchResult,
    ParseIdResult,
    QueryQuery,
    QueryResult,
    RefValidationQuery,
    RegisterQuery,
    RegisterResult,
    RelationshipsResult,
    TypeSchemaRegister,
    TypeSchemaResult,
    TypeSchemas,
    UuidResult,
    ValidateEntityRequest,
    ValidateIdResult,
    ValidateInstanceRequest,
    ValidateJsonResult,
    ValidateTypeSchemaRequest,
    ValidationResult,
)
from hyperspot.modules.types_registry.config import RefValidationPolicy, TypesRegistryConfig
from hyperspot.modules.types_registry.contract import GtsRegistrationError
from hyperspot.modules.types_registry.domain.access import READ, WRITE, ReadScope
from hyperspot.modules.types_registry.domain.registry import (
    EntityNotFoundError,
    RegistryAccessError,
    TypesRegistry,
    parse_entity,
)
from hyperspot.platform import Call, ModuleContext, Problem, Reply, RestApi
from hyperspot.platform.gts import (
    GtsError,
    extract_id,
    id_to_uuid,
    is_valid_pattern,
    match_id_pattern,
    match_pattern,
    parse_id,
    validate_id,
)
from hyperspot.platform.gts.query import attr, query


# The schema operations pull in jsonschema and the compatibility checker (~140 ms of imports):
# loaded at their first call, not by every process that merely discovers this module (each
# server, worker and CLI command).
def _deferred(module: str, name: str) -> Callable[..., dict[str, Any]]:
    def operation(*args: Any, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = getattr(importlib.import_module(module), name)(*args, **kwargs)
        return result

    return operation


cast = _deferred("hyperspot.platform.gts.cast", "cast")
check_compatibility = _deferred("hyperspot.platform.gts.compat", "check_compatibility")
resolve_relationships = _deferred("hyperspot.platform.gts.relationships", "resolve_relationships")
validate_entity = _deferred("hyperspot.platform.gts.validation", "validate_entity")
validate_instance = _deferred("hyperspot.platform.gts.validation", "validate_instance")
validate_json = _deferred("hyperspot.platform.gts.validation", "validate_json")
validate_type_schema = _deferred("hyperspot.platform.gts.validation", "validate_type_schema")


R = TypeVar("R", bound=BaseModel)
POLICIES: tuple[str, ...] = get_args(RefValidationPolicy)

PREFIX = "/gts"
TAG = "gts"
WRITE_RATE_CLASS = "types-write"


def _body(model: type[R], produce: Callable[[], dict[str, Any]], fallback: dict[str, Any]) -> R:
    """The spec body an op function produced; a GtsError it raised becomes ``fallback`` plus the
    error's one-line message, as the spec's server reports input it cannot work with."""
    try:
        return model.model_validate(produce())
    except GtsError as error:
        return model.model_validate({**fallback, "error": str(error)})


class _UnknownModeError(ValueError):
    """A ``gts-ref-validation`` value that names no policy (answered 422, as the spec's API)."""


def _policy(value: str | None, default: RefValidationPolicy) -> RefValidationPolicy:
    if value is None:
        return default
    if value not in POLICIES:
        raise _UnknownModeError(
            f"unknown gts-ref-validation mode {value!r}: use {', '.join(POLICIES)}"
        )
    return value  # type: ignore[return-value]


def _forbidden(error: RegistryAccessError) -> Problem:
    return Problem(403, str(error))


def _scope(call: Call) -> ReadScope:
    return ReadScope.of(call.security)


def _entity_info(entity: Any) -> EntityInfo:
    return EntityInfo(id=entity.id, type_id=entity.type_id, is_type_schema=entity.is_type)


def register_rest(ctx: ModuleContext[TypesRegistryConfig], api: RestApi) -> None:
    registry = ctx.clients.get(TypesRegistry)
    config = ctx.config
    api.problems(RegistryAccessError, _forbidden)
    _register_reads(api, registry)
    _register_writes(api, registry, config)
    _register_removal(api, registry)
    _register_identifiers(api)
    _register_validation(api, registry, config)
    _register_evolution(api, registry)
    _register_queries(api, registry)


def _op(api: RestApi, method: str, path: str, name: str) -> Any:
    return api.operation(method, PREFIX + path, f"types_registry.{name}").tags(TAG)


# -- the registry's entities ---------------------------------------------------------------------


def _register_reads(api: RestApi, registry: TypesRegistry) -> None:
    async def list_entities(call: Call) -> EntityList:
        params = call.query(ListQuery)
        if params.pattern is not None and not is_valid_pattern(params.pattern):
            raise Problem(400, f"not a GTS identifier or wildcard pattern: {params.pattern!r}")
        view = await registry.view(_scope(call))
        entities = view.entities()
        if params.pattern is not None:
            pattern = params.pattern
            entities = [e for e in entities if _matches(pattern, e.id, e.type_id)]
        shown = [_entity_info(e) for e in entities[: params.limit]]
        return EntityList(entities=shown, count=len(shown), total=len(entities))

    async def get_entity(call: Call) -> Reply:
        gts_id = call.path(GtsIdPath).gts_id
        try:
            entity = await registry.get(_scope(call), gts_id)
        except EntityNotFoundError:
            # The same answer whether it is missing or outside the caller's grants.
            return Reply(404, EntityResult(ok=False, error=f"Entity '{gts_id}' not found"))
        return Reply(
            200,
            EntityResult(
                ok=True,
                id=entity.id,
                type_id=entity.type_id,
                is_type_schema=entity.is_type,
                content=entity.content,
            ),
        )

    (
        _op(api, "GET", "/entities", "list_entities")
        .summary("List the registered entities (type schemas and instances) the caller may read")
        .query(ListQuery)
        .response(200, EntityList)
        .require(READ)
        .handler(list_entities)
    )
    (
        _op(api, "GET", "/entities/{gts_id}", "get_entity")
        .summary("Read one entity by its GTS identifier")
        .path_params(GtsIdPath)
        .response(200, EntityResult)
        .response(404, EntityResult, "No such entity, or not one the caller may read")
        .require(READ)
        .handler(get_entity)
    )


def _register_writes(api: RestApi, registry: TypesRegistry, config: TypesRegistryConfig) -> None:
    def settings(call: Call) -> tuple[bool, RefValidationPolicy]:
        params = call.query(RegisterQuery)
        validate = config.validate_on_register if params.validate_ is None else params.validate_
        return validate, _policy(params.gts_ref_validation, config.ref_validation)

    async def register_one(call: Call) -> Reply:
        content = call.body(JsonDocument).root
        is_schema = "$schema" in content
        try:
            validate, policy = settings(call)
            entity = (await registry.register(call.security, [content], validate, policy))[0]
        except (GtsRegistrationError, _UnknownModeError) as error:
            message = str(error).removeprefix("entity 0: ")
            return Reply(422, RegisterResult(ok=False, error=message, is_type_schema=is_schema))
        return Reply(
            200,
            RegisterResult(
                ok=True, id=entity.id, type_id=entity.type_id, is_type_schema=entity.is_type
            ),
        )

    async def register_bulk(call: Call) -> Reply:
        contents = call.body(JsonDocuments).root
        if len(contents) > config.max_bulk:
            raise Problem(413, f"at most {config.max_bulk} entities per request (max_bulk)")
        try:
            validate, policy = settings(call)
            entities = await registry.register(call.security, contents, validate, policy)
        except _UnknownModeError as error:
            return Reply(422, BulkResult(ok=False, results=[], error=str(error)))
        except GtsRegistrationError as error:
            return Reply(422, BulkResult(ok=False, results=_refusals(contents, error)))
        return Reply(
            200,
            BulkResult(
                ok=True,
                results=[
                    RegisterResult(ok=True, id=e.id, type_id=e.type_id, is_type_schema=e.is_type)
                    for e in entities
                ],
            ),
        )

    async def register_type_schemas(call: Call) -> Reply:
        body = call.body(TypeSchemas).root
        listed = isinstance(body, list)
        try:
            validate, policy = settings(call)
            schemas = body if isinstance(body, list) else [_named_schema(body)]
            registered = await registry.register(call.security, schemas, validate, policy)
        except (GtsRegistrationError, _UnknownModeError, _MismatchError) as error:
            message = str(error).removeprefix("entity 0: ")
            named = None if isinstance(body, list) else body.type_id
            return Reply(422, TypeSchemaResult(ok=False, type_id=named, error=message))
        if listed:
            results = [TypeSchemaResult(ok=True, type_id=e.id) for e in registered]
            return Reply(200, TypeSchemaResult(ok=True, results=results))
        return Reply(200, TypeSchemaResult(ok=True, type_id=registered[0].id))

    (
        _op(api, "POST", "/entities", "register_entity")
        .summary(
            "Register one entity (a type schema or an instance); the same content again is a no-op"
        )
        .query(RegisterQuery)
        .body(JsonDocument)
        .response(200, RegisterResult)
        .response(422, RegisterResult, "Refused: no identifier, or validation failed")
        .error(403, "The credential may not change the registry")
        .require(WRITE)
        .rate_limit(WRITE_RATE_CLASS)
        .handler(register_one)
    )
    (
        _op(api, "POST", "/entities/bulk", "register_entities")
        .summary("Register several entities, all or none")
        .query(RegisterQuery)
        .body(JsonDocuments)
        .response(200, BulkResult)
        .response(422, BulkResult, "Refused: nothing was registered; each result says why")
        .error(403, "The credential may not change the registry")
        .error(413, "Too many entities in one request, or the body is too large")
        .require(WRITE)
        .rate_limit(WRITE_RATE_CLASS)
        .handler(register_bulk)
    )
    (
        _op(api, "POST", "/type-schemas", "register_type_schema")
        .summary("Register a GTS Type Schema under an explicit type_id")
        .query(RegisterQuery)
        .body(TypeSchemas)
        .response(200, TypeSchemaResult)
        .response(422, TypeSchemaResult, "Refused")
        .error(403, "The credential may not change the registry")
        .require(WRITE)
        .rate_limit(WRITE_RATE_CLASS)
        .handler(register_type_schemas)
    )


def _register_removal(api: RestApi, registry: TypesRegistry) -> None:
    async def delete_entity(call: Call) -> Reply:
        gts_id = call.path(GtsIdPath).gts_id
        try:
            scope = _scope(call)
            # A writer who may not read it learns nothing either.
            await registry.get(scope, gts_id)
            await registry.delete(call.security, gts_id)
        except EntityNotFoundError:
            return Reply(404, DeleteResult(ok=False, error=f"Entity '{gts_id}' not found"))
        return Reply(200, DeleteResult(ok=True, id=gts_id))

    (
        _op(api, "DELETE", "/entities/{gts_id}", "delete_entity")
        .summary("Remove an entity from the registry")
        .path_params(GtsIdPath)
        .response(200, DeleteResult)
        .response(404, DeleteResult, "No such entity, or not one the caller may read")
        .error(403, "The credential may not change the registry")
        .require(WRITE)
        .rate_limit(WRITE_RATE_CLASS)
        .handler(delete_entity)
    )


class _MismatchError(ValueError):
    """The schema's own $id names another type than the request's type_id."""


def _named_schema(body: TypeSchemaRegister) -> dict[str, Any]:
    """The schema registered under ``type_id``: one without $id/$schema gets them."""
    schema = dict(body.type_schema)
    declared = schema.setdefault("$id", f"gts://{body.type_id}")
    schema.setdefault("$schema", "http://json-schema.org/draft-07/schema#")
    if not isinstance(declared, str) or declared.removeprefix("gts://") != body.type_id:
        raise _MismatchError(f"type_id '{body.type_id}' differs from the schema's $id {declared!r}")
    return schema


def _matches(pattern: str, gts_id: str, type_id: str | None) -> bool:
    try:
        return match_pattern(pattern, gts_id)
    except GtsError:
        # An anonymous instance (non-GTS id) goes by its type.
        return type_id is not None and match_pattern(pattern, type_id)


def _refusals(contents: list[dict[str, Any]], error: GtsRegistrationError) -> list[RegisterResult]:
    """One result per entity of a refused batch: its own problems, or that it was not
    registered because of the others'."""
    results = []
    for index, content in enumerate(contents):
        labels = [f"entity {index}: "]
        with contextlib.suppress(GtsError):
            labels.append(f"{parse_entity(content).id}: ")
        mine = [
            problem.removeprefix(label)
            for problem in error.errors
            for label in labels
            if problem.startswith(label)
        ]
        results.append(
            RegisterResult(
                ok=False,
                is_type_schema="$schema" in content,
                error="; ".join(mine) if mine else f"not registered: {error}",
            )
        )
    return results


# -- identifiers (OP#1-OP#5): pure functions of their input ---------------------------------------


def _register_identifiers(api: RestApi) -> None:
    async def validate(call: Call) -> ValidateIdResult:
        gts_id = call.query(GtsIdQuery).gts_id
        return _body(ValidateIdResult, lambda: validate_id(gts_id), {"id": gts_id, "valid": False})

    async def extract(call: Call) -> ExtractIdResult:
        content = call.body(JsonDocument).root
        return _body(
            ExtractIdResult,
            lambda: extract_id(content),
            {"is_type": "$schema" in content},
        )

    async def parse(call: Call) -> ParseIdResult:
        gts_id = call.query(GtsIdQuery).gts_id
        return _body(ParseIdResult, lambda: parse_id(gts_id), {"id": gts_id, "ok": False})

    async def match(call: Call) -> MatchResult:
        params = call.query(MatchQuery)
        return _body(
            MatchResult,
            lambda: match_id_pattern(params.candidate, params.pattern),
            {"candidate": params.candidate, "pattern": params.pattern, "match": False},
        )

    async def uuid(call: Call) -> UuidResult:
        gts_id = call.query(GtsIdQuery).gts_id
        return _body(UuidResult, lambda: id_to_uuid(gts_id), {"id": gts_id})

    (
        _op(api, "GET", "/validate-id", "validate_id")
        .summary("OP#1: is this a valid GTS identifier (or wildcard pattern)?")
        .query(GtsIdQuery)
        .response(200, ValidateIdResult)
        .authenticated()
        .handler(validate)
    )
    (
        _op(api, "POST", "/extract-id", "extract_id")
        .summary("OP#2: the GTS identifier and type of a JSON document")
        .body(JsonDocument)
        .response(200, ExtractIdResult)
        .authenticated()
        .handler(extract)
    )
    (
        _op(api, "GET", "/parse-id", "parse_id")
        .summary("OP#3: a GTS identifier's segments")
        .query(GtsIdQuery)
        .response(200, ParseIdResult)
        .authenticated()
        .handler(parse)
    )
    (
        _op(api, "GET", "/match-id-pattern", "match_id_pattern")
        .summary("OP#4: does a GTS identifier match a wildcard pattern?")
        .query(MatchQuery)
        .response(200, MatchResult)
        .authenticated()
        .handler(match)
    )
    (
        _op(api, "GET", "/uuid", "id_to_uuid")
        .summary("OP#5: the deterministic UUID of a GTS identifier")
        .query(GtsIdQuery)
        .response(200, UuidResult)
        .authenticated()
        .handler(uuid)
    )


# -- validation (OP#6, OP#12, OP#13) -------------------------------------------------------------


def _register_validation(
    api: RestApi, registry: TypesRegistry, config: TypesRegistryConfig
) -> None:
    def policy(call: Call) -> RefValidationPolicy:
        return _policy(call.query(RefValidationQuery).gts_ref_validation, config.ref_validation)

    async def instance(call: Call) -> Reply:
        instance_id = call.body(ValidateInstanceRequest).instance_id
        try:
            mode = policy(call)
        except _UnknownModeError as error:
            return Reply(422, ValidationResult(id=instance_id, ok=False, error=str(error)))
        view = await registry.view(_scope(call))
        return Reply(
            200,
            _body(
                ValidationResult,
                lambda: validate_instance(view, instance_id, mode),
                {"id": instance_id, "ok": False},
            ),
        )

    async def type_schema(call: Call) -> Reply:
        type_id = call.body(ValidateTypeSchemaRequest).type_id
        try:
            mode = policy(call)
        except _UnknownModeError as error:
            return Reply(422, ValidationResult(id=type_id, ok=False, error=str(error)))
        view = await registry.view(_scope(call))
        return Reply(
            200,
            _body(
                ValidationResult,
                lambda: validate_type_schema(view, type_id, mode),
                {"id": type_id, "ok": False},
            ),
        )

    async def entity(call: Call) -> Reply:
        entity_id = call.body(ValidateEntityRequest).entity_id
        try:
            mode = policy(call)
        except _UnknownModeError as error:
            return Reply(422, EntityValidationResult(id=entity_id, ok=False, error=str(error)))
        view = await registry.view(_scope(call))
        return Reply(
            200,
            _body(
                EntityValidationResult,
                lambda: validate_entity(view, entity_id, mode),
                {"id": entity_id, "ok": False},
            ),
        )

    async def transient(call: Call, gts_type: str | None) -> Reply:
        content = call.body(JsonDocument).root
        is_schema = "$schema" in content
        try:
            mode = policy(call)
        except _UnknownModeError as error:
            return Reply(
                422, ValidateJsonResult(ok=False, is_type_schema=is_schema, error=str(error))
            )
        view = await registry.view(_scope(call))
        return Reply(
            200,
            _body(
                ValidateJsonResult,
                lambda: validate_json(view, content, gts_type, mode),
                {"ok": False, "is_type_schema": is_schema},
            ),
        )

    async def transient_any(call: Call) -> Reply:
        return await transient(call, None)

    async def transient_as(call: Call) -> Reply:
        return await transient(call, call.path(GtsTypePath).gts_type)

    mode_refused = "Unknown gts-ref-validation mode"
    (
        _op(api, "POST", "/validate-instance", "validate_instance")
        .summary("OP#6: validate a registered instance against its type schema")
        .query(RefValidationQuery)
        .body(ValidateInstanceRequest)
        .response(200, ValidationResult)
        .response(422, ValidationResult, mode_refused)
        .require(READ)
        .handler(instance)
    )
    (
        _op(api, "POST", "/validate-type-schema", "validate_type_schema")
        .summary("OP#12/OP#13: validate that a type schema correctly extends its base chain")
        .query(RefValidationQuery)
        .body(ValidateTypeSchemaRequest)
        .response(200, ValidationResult)
        .response(422, ValidationResult, mode_refused)
        .require(READ)
        .handler(type_schema)
    )
    (
        _op(api, "POST", "/validate-entity", "validate_entity")
        .summary("Validate a registered entity, instance or type schema")
        .query(RefValidationQuery)
        .body(ValidateEntityRequest)
        .response(200, EntityValidationResult)
        .response(422, EntityValidationResult, mode_refused)
        .require(READ)
        .handler(entity)
    )
    (
        _op(api, "POST", "/validate-json", "validate_json")
        .summary("Validate a JSON document as an instance or type schema, without registering it")
        .query(RefValidationQuery)
        .body(JsonDocument)
        .response(200, ValidateJsonResult)
        .response(422, ValidateJsonResult, mode_refused)
        .require(READ)
        .handler(transient_any)
    )
    (
        _op(api, "POST", "/validate-json/{gts_type}", "validate_json_as_type")
        .summary("Validate a JSON instance against an explicit type schema, without registering")
        .path_params(GtsTypePath)
        .query(RefValidationQuery)
        .body(JsonDocument)
        .response(200, ValidateJsonResult)
        .response(422, ValidateJsonResult, mode_refused)
        .require(READ)
        .handler(transient_as)
    )


# -- relationships, compatibility and casting (OP#7, OP#8, OP#9) ---------------------------------


def _register_evolution(api: RestApi, registry: TypesRegistry) -> None:
    async def relationships(call: Call) -> RelationshipsResult:
        gts_id = call.query(GtsIdQuery).gts_id
        view = await registry.view(_scope(call))
        return _body(
            RelationshipsResult, lambda: resolve_relationships(view, gts_id), {"id": gts_id}
        )

    async def compatibility(call: Call) -> CompatibilityResult:
        params = call.query(CompatibilityQuery)
        view = await registry.view(_scope(call))
        return _body(
            CompatibilityResult,
            lambda: check_compatibility(view, params.old_type_id, params.new_type_id),
            {"old": params.old_type_id, "new": params.new_type_id},
        )

    async def cast_instance(call: Call) -> CastResult:
        body = call.body(CastRequest)
        view = await registry.view(_scope(call))
        return _body(CastResult, lambda: cast(view, body.instance_id, body.to_type_id), {})

    (
        _op(api, "GET", "/resolve-relationships", "resolve_relationships")
        .summary("OP#7: the type schemas and references an entity depends on")
        .query(GtsIdQuery)
        .response(200, RelationshipsResult)
        .require(READ)
        .handler(relationships)
    )
    (
        _op(api, "GET", "/compatibility", "compatibility")
        .summary("OP#8: backward, forward and full compatibility of two type schemas")
        .query(CompatibilityQuery)
        .response(200, CompatibilityResult)
        .require(READ)
        .handler(compatibility)
    )
    (
        _op(api, "POST", "/cast", "cast")
        .summary("OP#9: cast an instance to another minor version of its type")
        .body(CastRequest)
        .response(200, CastResult)
        .require(READ)
        .handler(cast_instance)
    )


# -- query and attribute selector (OP#10, OP#11) -------------------------------------------------


def _register_queries(api: RestApi, registry: TypesRegistry) -> None:
    async def run_query(call: Call) -> QueryResult:
        params = call.query(QueryQuery)
        view = await registry.view(_scope(call))
        return _body(
            QueryResult,
            lambda: query(view, params.expr, params.limit),
            {"count": 0, "limit": params.limit, "results": []},
        )

    async def attribute(call: Call) -> AttrResult:
        path = call.query(AttrQuery).gts_with_path
        view = await registry.view(_scope(call))
        return _body(AttrResult, lambda: attr(view, path), {"resolved": False})

    (
        _op(api, "GET", "/query", "query")
        .summary('OP#10: the entities a GTS query selects (pattern[attr="value", ...])')
        .query(QueryQuery)
        .response(200, QueryResult)
        .require(READ)
        .handler(run_query)
    )
    (
        _op(api, "GET", "/attr", "attr")
        .summary("OP#11: one attribute of an entity (<gts id>@path)")
        .query(AttrQuery)
        .response(200, AttrResult)
        .require(READ)
        .handler(attribute)
    )
