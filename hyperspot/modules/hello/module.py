"""The hello module's declaration: the one value the ``hyperspot.modules`` entry point names."""

from hyperspot.modules.hello.api.rest import register_rest
from hyperspot.modules.hello.config import HelloConfig
from hyperspot.modules.hello.contract import GreeterApi
from hyperspot.modules.hello.domain.greeter import Greeter
from hyperspot.modules.hello.infra.phrasebook import PHRASEBOOK
from hyperspot.platform import Capability, Module, ModuleContext


def init(ctx: ModuleContext[HelloConfig]) -> None:
    greeter = Greeter(PHRASEBOOK, default_name=ctx.config.default_name, shout=ctx.config.shout)
    ctx.clients.register(GreeterApi, greeter, owner=ctx.module.name)


module = Module(
    name="hello",
    version="1.0.0",
    description="Greets people in several languages: the example of a module's layout.",
    config_model=HelloConfig,
    capabilities=frozenset({Capability.REST}),
    init=init,
    register_rest=register_rest,
    provides=(GreeterApi,),
)
