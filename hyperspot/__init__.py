"""HyperSpot: a modular platform for multi-tenant, AI-enabled SaaS services."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hyperspot")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
