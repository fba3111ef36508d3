"""``x-gts-ref`` (spec §9.6, ADR-0007): a string field holds a reference to a GTS entity.

The operand is a concrete GTS identifier, a GTS wildcard pattern (§10), or the reserved ``/$id``
(the top-level ``$id`` of the leaf type selected for validation, rooted there even when the
constraint is inherited through ``$ref``/``allOf``). Every other slash- or dot-prefixed operand is
refused. A value matches a concrete operand when the operand covers it (a ``~``-terminated type
covers itself and everything derived from it; an instance id only itself, on segment
boundaries), and a wildcard operand by §10 pattern matching.

The keyword is plugged into the JSON Schema validator, so combinators (``oneOf``, ``not``, ...),
``$ref`` and tuple forms apply to it with their standard semantics. The registry side (is the
target registered, is it valid) follows the selected policy: ``none`` (syntax and matching only),
``any-present`` (targets registered) or ``any-valid`` (targets registered and valid; the caller
validates the targets collected in :attr:`RefContext.referenced`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, get_args

from jsonschema.exceptions import ValidationError

from hyperspot.platform.gts.ids import GtsError, GtsIdError, is_valid_id, is_valid_pattern
from hyperspot.platform.gts.ids import match_pattern as _match_pattern
from hyperspot.platform.gts.store import GtsEntity, RefValidation

KEYWORD = "x-gts-ref"
SELF_ID = "/$id"
REF_VALIDATION_MODES: tuple[str, ...] = get_args(RefValidation)
DEFAULT_REF_VALIDATION: RefValidation = "any-valid"


def check_mode(mode: str) -> RefValidation:
    """``mode`` as a :data:`RefValidation`; raises :class:`GtsError` for an unknown mode."""
    if mode == "none":
        return "none"
    if mode == "any-present":
        return "any-present"
    if mode == "any-valid":
        return "any-valid"
    raise GtsError(f"unknown gts-ref-validation mode {mode!r} (none, any-present, any-valid)")


def operand_error(operand: object) -> str | None:
    """Why ``operand`` is not an admissible ``x-gts-ref`` operand, or None (checked always)."""
    if not isinstance(operand, str):
        return f"x-gts-ref operand must be a string, not {type(operand).__name__}"
    if operand == SELF_ID:
        return None
    if operand.startswith(("/", ".")):
        return f"unsupported x-gts-ref pointer {operand!r} (only '/$id' is allowed)"
    if is_valid_id(operand) or ("*" in operand and is_valid_pattern(operand)):
        return None
    return f"Invalid GTS identifier: {operand}"


def is_wildcard(operand: str) -> bool:
    return "*" in operand


def resolve_operand(operand: str, selected_type_id: str | None) -> str | None:
    """The pattern the operand stands for: ``/$id`` becomes the selected leaf type."""
    if operand == SELF_ID:
        return selected_type_id
    return operand


def value_error(pattern: str, value: str) -> str | None:
    """Why ``value`` does not satisfy the (resolved) operand ``pattern``, or None."""
    if not is_valid_id(value):
        return f"{value!r} is not a valid GTS identifier (x-gts-ref {pattern!r})"
    try:
        matched = _match_pattern(pattern, value)
    except GtsIdError as error:  # a stored schema registered without validation
        return f"x-gts-ref operand {pattern!r} is malformed: {error}"
    if not matched:
        return f"{value!r} does not match pattern {pattern!r} (x-gts-ref)"
    return None


@dataclass(slots=True)
class RefContext:
    """What the ``x-gts-ref`` keyword needs during one validation run.

    ``lookup`` fetches a registered entity (it also records the dependency for result caching);
    ``referenced`` collects every target identifier the keyword accepted, for ``any-valid``.
    """

    lookup: Callable[[str], GtsEntity | None]
    mode: RefValidation
    selected_type_id: str | None
    referenced: set[str] = field(default_factory=set)


_context: ContextVar[RefContext | None] = ContextVar("gts_ref_context", default=None)


@contextlib.contextmanager
def ref_context(context: RefContext) -> Iterator[RefContext]:
    """Make ``context`` current for the ``x-gts-ref`` keyword while validating."""
    token = _context.set(context)
    try:
        yield context
    finally:
        _context.reset(token)


def keyword(validator: Any, operand: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """The ``x-gts-ref`` JSON Schema keyword (a string assertion, like ``pattern``)."""
    context = _context.get()
    if context is None or not isinstance(instance, str):
        return
    problem = operand_error(operand)
    if problem is not None:
        yield ValidationError(problem)
        return
    pattern = resolve_operand(operand, context.selected_type_id)
    if pattern is None:
        return
    problem = value_error(pattern, instance)
    if problem is not None:
        yield ValidationError(problem)
        return
    if context.mode == "none":
        return
    if context.lookup(instance) is None:
        yield ValidationError(f"x-gts-ref target {instance!r} is not registered")
        return
    context.referenced.add(instance)
