"""Authentication: a request's credential becomes a verified ``Principal``.

Bearer JWTs are verified with pyjwt: HS256 with ``auth.jwt.secret``, RS256/ES256 with the keys of a
JWKS file or URL. A bearer value that starts with ``hsk_`` is a per-tenant API key, checked by the
identity resolver (the keys live in the database). The tenant always comes from the verified
credential, never from a header the client chooses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import falcon.asgi
import jwt

from hyperspot.platform.config import AuthSettings, JwtSettings
from hyperspot.platform.errors import ConfigError, HyperspotError
from hyperspot.platform.gateway.problems import CHALLENGE, Problem
from hyperspot.platform.identity import TENANT_ADMIN, CredentialRejectedError, Principal

logger = logging.getLogger("hyperspot.auth")

HMAC_ALGORITHMS = ("HS256",)
KEY_ALGORITHMS = ("RS256", "ES256")
API_KEY_PREFIX = "hsk_"
REQUIRED_CLAIMS = ["exp", "sub", "tenant"]

ApiKeyVerifier = Callable[[str], Awaitable[Principal]]


def unauthorized(detail: str) -> Problem:
    return Problem(401, detail, headers=CHALLENGE)


def _string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    tenant, subject, roles = claims["tenant"], claims["sub"], claims.get("roles", [])
    if not (isinstance(tenant, str) and tenant and isinstance(subject, str) and subject):
        raise CredentialRejectedError("invalid token: 'tenant' and 'sub' must be non-empty strings")
    if not _string_list(roles):
        raise CredentialRejectedError("invalid token: 'roles' must be a list of strings")
    return Principal(
        subject=subject,
        tenant_id=tenant,
        roles=frozenset(roles),
        credential_id=str(claims.get("jti", "")),
        kind="token",
    )


class TokenVerifier:
    """Verifies bearer JWTs; a verified token's principal is reused until the token expires."""

    # Verifying a signature costs more than the rest of a small request. Room for well over the
    # tokens in use at once: at exactly 10,000 entries, 10,000 cycling users missed every time
    # (benchmarks/load_bench.py); an entry is ~1 KB.
    CACHE_SIZE = 32_768

    def __init__(self, settings: JwtSettings) -> None:
        self.settings = settings
        self._verified: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._jwks: jwt.PyJWKSet | None = None
        self._jwks_client: jwt.PyJWKClient | None = None
        if settings.jwks_file is not None:
            self._jwks = _load_jwks_file(settings)
        if settings.jwks_url is not None:
            self._jwks_client = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, timeout=5)

    async def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            expires_at, principal = cached
            if time.time() < expires_at + self.settings.leeway_s:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        key, algorithms = await self._key_for(token)
        principal, expires_at = self._decode(token, key, algorithms)
        self._verified[token] = (expires_at, principal)
        if len(self._verified) > self.CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    async def _key_for(self, token: str) -> tuple[Any, list[str]]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise CredentialRejectedError(f"invalid token: {error}") from None
        algorithm = header.get("alg")
        if algorithm in HMAC_ALGORITHMS and self.settings.secret:
            return self.settings.secret, list(HMAC_ALGORITHMS)
        if algorithm in KEY_ALGORITHMS and (self._jwks or self._jwks_client):
            return await self._public_key(header.get("kid")), [str(algorithm)]
        if not self.settings.configured:
            raise CredentialRejectedError(
                "this server accepts no tokens: configure auth.jwt.secret, jwks_file or jwks_url"
            )
        raise CredentialRejectedError(f"invalid token: algorithm {algorithm!r} is not accepted")

    async def _public_key(self, kid: Any) -> Any:
        try:
            if self._jwks is not None:
                return _select_key(self._jwks.keys, kid).key
            assert self._jwks_client is not None
            # PyJWKClient fetches with blocking urllib: keep it off the event loop.
            client = self._jwks_client
            keys = await asyncio.to_thread(client.get_signing_keys)
            return _select_key(keys, kid).key
        except jwt.PyJWKClientError as error:
            logger.warning("cannot read the JWKS at %s: %s", self.settings.jwks_url, error)
            raise CredentialRejectedError("the token's signing keys cannot be read") from None

    def _decode(self, token: str, key: Any, algorithms: list[str]) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_s,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise CredentialRejectedError("the token has expired") from None
        except jwt.InvalidTokenError as error:
            raise CredentialRejectedError(f"invalid token: {error}") from None
        return principal_from_claims(claims), float(claims["exp"])


def _select_key(keys: Iterable[jwt.PyJWK], kid: Any) -> jwt.PyJWK:
    candidates = [key for key in keys if key.key_id == kid] if kid else list(keys)
    if len(candidates) != 1:
        wanted = f"kid {kid!r}" if kid else "a token without kid (several keys)"
        raise CredentialRejectedError(f"invalid token: no signing key for {wanted}")
    return candidates[0]


def _load_jwks_file(settings: JwtSettings) -> jwt.PyJWKSet:
    assert settings.jwks_file is not None
    try:
        return jwt.PyJWKSet.from_json(settings.jwks_file.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(
            [f"auth.jwt.jwks_file: cannot read {settings.jwks_file}: {error.strerror}"]
        ) from None
    except (jwt.PyJWKSetError, json.JSONDecodeError) as error:
        raise ConfigError(
            [f"auth.jwt.jwks_file: {settings.jwks_file} is not a JWKS: {error}"]
        ) from None


class Authenticator:
    """The request's principal: from a bearer token, an API key, or development mode."""

    def __init__(self, settings: AuthSettings, verify_api_key: ApiKeyVerifier) -> None:
        self.settings = settings
        self.tokens = TokenVerifier(settings.jwt)
        self.verify_api_key = verify_api_key
        self._dev = (
            Principal(
                subject=settings.dev.subject,
                tenant_id=settings.dev.tenant,
                roles=frozenset({TENANT_ADMIN}),
                credential_id="dev",
                kind="dev",
            )
            if settings.mode == "dev"
            else None
        )

    async def __call__(self, req: falcon.asgi.Request) -> Principal | None:
        """None when the request carries no credential (and the server is not in dev mode)."""
        header = req.get_header("Authorization")
        if not header:
            return self._dev
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise unauthorized("send the credential as 'Authorization: Bearer <token or API key>'")
        try:
            if credential.startswith(API_KEY_PREFIX):
                return await self.verify_api_key(credential)
            return await self.tokens.verify(credential)
        except CredentialRejectedError as error:
            raise unauthorized(str(error)) from None


def issue_token(
    settings: JwtSettings,
    *,
    tenant: str,
    subject: str,
    roles: Iterable[str],
    ttl_s: int = 3600,
) -> str:
    """Mint an HS256 token this server accepts (for development and tests)."""
    if not settings.secret:
        raise HyperspotError(
            "cannot issue tokens: set auth.jwt.secret (HYPERSPOT_AUTH__JWT__SECRET)"
        )
    now = int(time.time())
    claims = {
        "sub": subject,
        "tenant": tenant,
        "roles": sorted(set(roles)),
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.secret, algorithm="HS256")
