"""The AI gateway: chat and embeddings through provider plugins, governance, usage, quotas."""
