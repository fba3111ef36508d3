"""Roles, role assignments, API keys: who may do what in which tenant."""
