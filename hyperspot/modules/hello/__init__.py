"""The example module: small, stateless, and laid out the way every module should be."""
