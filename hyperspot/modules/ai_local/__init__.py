"""A local embeddings provider: a small sentence-embedding model (wordllama) in the process."""
