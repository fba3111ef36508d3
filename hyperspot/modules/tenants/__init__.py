"""Tenants: the tenant tree, its administration, and the lineage every request is checked by."""
