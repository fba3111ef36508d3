"""A deterministic AI provider for tests and demos: echoes chat, hashes words into embeddings."""
