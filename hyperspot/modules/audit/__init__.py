"""Audit: the tenant-scoped, append-only log of administrative actions."""
