"""The module's domain logic, free of HTTP and storage concerns."""

from collections.abc import Mapping
from dataclasses import dataclass

from hyperspot.modules.hello.contract import Greeting, Language, UnknownLanguageError


@dataclass(frozen=True)
class Phrase:
    name: str
    template: str  # "{names}" is replaced by the joined names
    conjunction: str


class Greeter:
    def __init__(self, phrasebook: Mapping[str, Phrase], default_name: str, shout: bool) -> None:
        self.phrasebook = phrasebook
        self.default_name = default_name
        self.shout = shout

    def languages(self) -> list[Language]:
        return [Language(code=code, name=p.name) for code, p in sorted(self.phrasebook.items())]

    def greet(self, names: list[str], language: str) -> Greeting:
        phrase = self.phrasebook.get(language)
        if phrase is None:
            raise UnknownLanguageError(language)
        people = [name.strip() for name in names if name.strip()] or [self.default_name]
        joined = (
            people[0]
            if len(people) == 1
            else (", ".join(people[:-1]) + f" {phrase.conjunction} {people[-1]}")
        )
        message = phrase.template.format(names=joined)
        return Greeting(language=language, message=message.upper() if self.shout else message)
