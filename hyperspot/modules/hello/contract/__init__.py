"""The hello module's public face: the only part other modules may import."""

from typing import Protocol

from pydantic import BaseModel, Field


class Greeting(BaseModel):
    language: str = Field(description="ISO 639-1 code of the greeting's language.")
    message: str


class Language(BaseModel):
    code: str
    name: str


class UnknownLanguageError(LookupError):
    """No phrase for that language."""


class GreeterApi(Protocol):
    """What other modules may ask of the hello module through the client hub."""

    def languages(self) -> list[Language]: ...

    def greet(self, names: list[str], language: str) -> Greeting: ...
