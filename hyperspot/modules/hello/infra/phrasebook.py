"""Where the module's data lives: here a fixed phrasebook, elsewhere a database."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Phrase:
    name: str
    template: str  # "{names}" is replaced by the joined names
    conjunction: str


PHRASEBOOK: dict[str, Phrase] = {
    "de": Phrase("German", "Hallo, {names}!", "und"),
    "en": Phrase("English", "Hello, {names}!", "and"),
    "es": Phrase("Spanish", "¡Hola, {names}!", "y"),
    "fr": Phrase("French", "Bonjour, {names} !", "et"),
}
