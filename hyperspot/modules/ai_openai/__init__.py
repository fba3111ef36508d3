"""OpenAI-compatible AI provider: a plugin of the ``ai`` gateway calling an upstream HTTP API."""
