"""Module-to-module calls across processes: contracts, signed call contexts, transports."""

from hyperspot.platform.rpc.contracts import ContractError, contract, idempotent

__all__ = ["ContractError", "contract", "idempotent"]
