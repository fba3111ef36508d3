"""Notes: a tenant-scoped resource showing the data layer end to end."""
