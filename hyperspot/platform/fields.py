"""Field types for contract models that keep what the API accepts and shows in line with storage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, Field


def _as_utc(value: datetime) -> datetime:
    # The databases hold naive UTC (the platform's convention); written without an offset, such a
    # value is not an RFC 3339 date-time (the OpenAPI format) and clients would read local time.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _not_blank(value: str) -> str:
    # Python's strip, not the validator's: storage strips text this way (Pony's autostrip), and a
    # value that strips to nothing would otherwise fail there, as a server error.
    stripped = value.strip()
    if not stripped:
        raise ValueError("must contain a character other than white space")
    return stripped


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
"""A timestamp: a naive value is taken as UTC; the API writes it with its offset (``Z``)."""

NonBlank = Annotated[str, Field(pattern=r"\S"), AfterValidator(_not_blank)]
"""Text that must say something: surrounding white space is dropped, blank text refused.

Give the length bounds with ``Field`` where it is used, e.g.
``title: NonBlank = Field(max_length=200)``.
"""

UuidText = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
"""A UUID as the platform writes ids (``str(uuid.uuid4())``: lower case, with hyphens), e.g. a
path parameter naming a row; anything else is refused before a query is made."""
