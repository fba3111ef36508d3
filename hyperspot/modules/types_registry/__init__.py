"""The GTS types registry: type schemas and well-known instances, persisted and served."""
