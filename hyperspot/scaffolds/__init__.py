"""Module scaffolds: what ``hyperspot new`` writes into a project (templates are package data)."""

from hyperspot.scaffolds.project import Plan, apply, plan
from hyperspot.scaffolds.render import Kind, Scaffold, ScaffoldError, find_gateways

__all__ = ["Kind", "Plan", "Scaffold", "ScaffoldError", "apply", "find_gateways", "plan"]
