"""API keys: ``hsk_<tenant>_<key id>_<secret>``, stored as the secret's SHA-256 only.

The tenant is part of the key so that looking a key up is an ordinary tenant-scoped query. The
secret has 256 random bits, so a fast hash is enough: guessing is hopeless without a slow one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from hyperspot.platform.auth import API_KEY_PREFIX


@dataclass(frozen=True)
class ParsedKey:
    tenant_id: str
    key_id: str
    secret: str


def new_key(tenant_id: str) -> tuple[str, str, str]:
    """(key id, the key to show once, the hash to store)."""
    key_id = uuid.uuid4().hex
    secret = secrets.token_urlsafe(32)
    return key_id, f"{API_KEY_PREFIX}{tenant_id}_{key_id}_{secret}", hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(key: str) -> ParsedKey | None:
    if not key.startswith(API_KEY_PREFIX):
        return None
    parts = key[len(API_KEY_PREFIX) :].split("_", 2)
    if len(parts) != 3 or not all(parts) or len(parts[1]) != 32:
        return None
    return ParsedKey(*parts)


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
