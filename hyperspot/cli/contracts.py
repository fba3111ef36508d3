"""``hyperspot contracts``: the client contracts of the enabled modules, and their wire form."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from hyperspot.cli.common import ConfigOption, fail, out
from hyperspot.platform.errors import HyperspotError


def contracts(
    config: ConfigOption = None,
    proto: Annotated[
        bool, typer.Option(help="Print the gRPC service definitions generated from them.")
    ] = False,
) -> None:
    """List the client contracts: provider, where it runs, methods (* = idempotent), errors."""
    from hyperspot.platform.rpc.contracts import ContractError, is_contract, spec_of
    from hyperspot.platform.rpc.grpc_transport import describe_service
    from hyperspot.platform.server import prepare

    try:
        _, runtime = prepare(config, quiet=True)
        provided = [
            (record.module.name, record.runtime, protocol)
            for record in runtime.records
            if record.state != "disabled"
            for protocol in record.module.provides
        ]
        specs = {
            protocol: spec_of(protocol) for _, _, protocol in provided if is_contract(protocol)
        }
    except (HyperspotError, ContractError) as error:
        raise fail(str(error)) from None
    if proto:
        for module, _, protocol in provided:
            if protocol in specs:
                typer.echo(describe_service(module, specs[protocol]))
        return
    table = Table(title="Client contracts")
    for column in ("contract", "provider", "runs", "methods", "errors"):
        table.add_column(column)
    for module, runtime_kind, protocol in provided:
        spec = specs.get(protocol)
        if spec is None:
            table.add_row(protocol.__qualname__, module, runtime_kind, "in-process only", "-")
            continue
        methods = ", ".join(
            f"{name}{'*' if method.idempotent else ''}" for name, method in spec.methods.items()
        )
        table.add_row(spec.name, module, runtime_kind, methods, ", ".join(spec.errors) or "-")
    out.print(table)
