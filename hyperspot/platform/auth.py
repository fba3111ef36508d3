"""Bearer-token authentication: a verified JWT becomes the request's security context.

The tenant always comes from the verified token, never from a header the client chooses.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable

import falcon.asgi
import jwt

from hyperspot.platform.config import JwtSettings
from hyperspot.platform.errors import HyperspotError
from hyperspot.platform.gateway.problems import Problem
from hyperspot.platform.security import SecurityContext

ALGORITHM = "HS256"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="hyperspot"'}


def unauthorized(detail: str) -> Problem:
    return Problem(401, detail, headers=CHALLENGE)


class JwtAuthenticator:
    # Verifying a signature costs more than the rest of a small request; a verified token is
    # immutable, so its context is reused until the token expires.
    CACHE_SIZE = 10_000

    def __init__(self, settings: JwtSettings) -> None:
        self.settings = settings
        self._verified: OrderedDict[str, tuple[float, SecurityContext]] = OrderedDict()

    async def __call__(self, req: falcon.asgi.Request) -> SecurityContext | None:
        """The caller's context; None when the request carries no credential at all."""
        header = req.get_header("Authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("send the credential as 'Authorization: Bearer <token>'")
        return self.verify(token.strip())

    def verify(self, token: str) -> SecurityContext:
        cached = self._verified.get(token)
        if cached is not None:
            expires_at, security = cached
            if time.time() < expires_at + self.settings.leeway_s:
                self._verified.move_to_end(token)
                return security
            del self._verified[token]
        security, expires_at = self._decode(token)
        self._verified[token] = (expires_at, security)
        if len(self._verified) > self.CACHE_SIZE:
            self._verified.popitem(last=False)
        return security

    def _decode(self, token: str) -> tuple[SecurityContext, float]:
        if not self.settings.secret:
            raise unauthorized("this server accepts no tokens: auth.jwt.secret is not configured")
        try:
            claims = jwt.decode(
                token,
                self.settings.secret,
                algorithms=[ALGORITHM],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_s,
                options={"require": ["exp", "sub", "tenant"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("the token has expired") from None
        except jwt.InvalidTokenError as error:
            raise unauthorized(f"invalid token: {error}") from None
        tenant, subject = claims["tenant"], claims["sub"]
        permissions = claims.get("permissions", [])
        if not (isinstance(tenant, str) and tenant and isinstance(subject, str) and subject):
            raise unauthorized("invalid token: 'tenant' and 'sub' must be non-empty strings")
        if not (isinstance(permissions, list) and all(isinstance(p, str) for p in permissions)):
            raise unauthorized("invalid token: 'permissions' must be a list of strings")
        security = SecurityContext(
            subject=subject,
            tenant_id=tenant,
            permissions=frozenset(permissions),
            token_id=str(claims.get("jti", "")),
        )
        return security, float(claims["exp"])


def issue_token(
    settings: JwtSettings,
    *,
    tenant: str,
    subject: str,
    permissions: Iterable[str],
    ttl_s: int = 3600,
) -> str:
    """Mint a token this server accepts (for development and tests)."""
    if not settings.secret:
        raise HyperspotError(
            "cannot issue tokens: set auth.jwt.secret (HYPERSPOT_AUTH__JWT__SECRET)"
        )
    now = int(time.time())
    claims = {
        "sub": subject,
        "tenant": tenant,
        "permissions": sorted(set(permissions)),
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.secret, algorithm=ALGORITHM)
