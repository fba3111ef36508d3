"""RFC 9457 problem details: the one shape of every error the gateway answers."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import falcon
from pydantic import BaseModel, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://hyperspot.dev/problems/"


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending value, e.g. body.name.")
    message: str


# Sent with every 401, as RFC 9110 requires.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="hyperspot"'}


class ProblemDetails(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str = ""
    instance: str = Field(default="", description="The request path the problem occurred on.")
    request_id: str = ""
    errors: list[FieldError] | None = Field(
        default=None, description="For validation problems: each offending field."
    )


class ProblemError(Exception):
    """An error of the platform's own APIs that knows the problem it answers as; raised by a
    handler, the gateway answers ``to_problem()`` (e.g. an invalid list query's 400)."""

    def to_problem(self) -> Problem:
        raise NotImplementedError


class Problem(falcon.HTTPError):
    """Raise from a handler to answer with a problem document.

    ``kind`` names the problem type (a slug appended to the platform's problem URI base); it
    defaults to the status phrase, e.g. ``not-found``. ``extensions`` are further members of the
    document (RFC 9457 section 3.2), e.g. ``{"rule": "max_tokens"}``: JSON values whose names are
    not the standard members'.
    """

    def __init__(
        self,
        status: int,
        detail: str = "",
        *,
        title: str | None = None,
        kind: str | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        phrase = HTTPStatus(status).phrase
        super().__init__(status, title=title or phrase, description=detail, headers=headers)
        self.kind = kind or phrase.lower().replace(" ", "-").replace("'", "")
        self.field_errors = errors
        clashing = sorted(set(extensions or {}) & set(ProblemDetails.model_fields))
        if clashing:
            raise ValueError(f"problem extension members shadow standard ones: {clashing}")
        self.extensions = dict(extensions or {})


def problem_document(error: falcon.HTTPError, instance: str, request_id: str) -> dict[str, Any]:
    status = error.status_code
    extensions: dict[str, Any] = {}
    if isinstance(error, Problem):
        kind = error.kind
        errors = error.field_errors
        extensions = error.extensions
    else:
        kind = HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")
        errors = None
    document = ProblemDetails(
        type=PROBLEM_TYPE_BASE + kind,
        # Falcon's own titles repeat the status code ("404 Not Found"); the status field has it.
        title=(error.title or "").removeprefix(f"{status} ") or HTTPStatus(status).phrase,
        status=status,
        detail=error.description or "",
        instance=instance,
        request_id=request_id,
        errors=errors,
    )
    return {**document.model_dump(mode="json", exclude_none=True), **extensions}
