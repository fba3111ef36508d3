"""The module's REST operations: declared once, they drive routing, validation and OpenAPI."""

from pydantic import BaseModel, Field

from hyperspot.modules.hello.config import HelloConfig
from hyperspot.modules.hello.contract import GreeterApi, Greeting, Language, UnknownLanguageError
from hyperspot.platform import Call, ModuleContext, Problem, RestApi


class LanguageList(BaseModel):
    items: list[Language]


class GreetingPath(BaseModel):
    language: str = Field(pattern=r"^[a-z]{2}$", description="ISO 639-1 language code.")


class GreetingQuery(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=64, description="Who to greet.")


class ComposeRequest(BaseModel):
    names: list[str] = Field(min_length=1, max_length=50, description="Everyone to greet at once.")
    language: str = Field(default="en", pattern=r"^[a-z]{2}$")


def register_rest(ctx: ModuleContext[HelloConfig], api: RestApi) -> None:
    greeter = ctx.clients.get(GreeterApi)
    max_length = ctx.config.max_name_length
    # The contract's error, as every operation answers it.
    api.problems(
        UnknownLanguageError, lambda error: Problem(404, f"no greeting in language '{error}'")
    )

    def greet(names: list[str], language: str) -> Greeting:
        too_long = [name for name in names if len(name) > max_length]
        if too_long:
            raise Problem(400, f"names longer than {max_length} characters: {', '.join(too_long)}")
        return greeter.greet(names, language)

    async def list_languages(call: Call) -> LanguageList:
        return LanguageList(items=greeter.languages())

    async def get_greeting(call: Call) -> Greeting:
        name = call.query(GreetingQuery).name
        return greet([name] if name else [], call.path(GreetingPath).language)

    async def compose(call: Call) -> Greeting:
        body = call.body(ComposeRequest)
        return greet(body.names, body.language)

    (
        api.operation("GET", "/hello/v1/languages", "hello.list_languages")
        .summary("List the languages greetings come in")
        .response(200, LanguageList)
        .public()
        .handler(list_languages)
    )
    (
        api.operation("GET", "/hello/v1/greetings/{language}", "hello.get_greeting")
        .summary("Greet someone (or the configured default name) in one language")
        .path_params(GreetingPath)
        .query(GreetingQuery)
        .response(200, Greeting)
        .error(404, "No greeting in that language")
        .public()
        .handler(get_greeting)
    )
    (
        api.operation("POST", "/hello/v1/greetings", "hello.compose_greeting")
        .summary("Greet several people at once")
        .body(ComposeRequest)
        .response(200, Greeting)
        .error(404, "No greeting in that language")
        .public()
        .rate_limit("standard")
        .handler(compose)
    )
