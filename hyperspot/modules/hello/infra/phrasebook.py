"""Where the module's data lives: here a fixed phrasebook, elsewhere a database."""

from hyperspot.modules.hello.domain.greeter import Phrase

PHRASEBOOK: dict[str, Phrase] = {
    "de": Phrase("German", "Hallo, {names}!", "und"),
    "en": Phrase("English", "Hello, {names}!", "and"),
    "es": Phrase("Spanish", "¡Hola, {names}!", "y"),
    "fr": Phrase("French", "Bonjour, {names} !", "et"),
}
