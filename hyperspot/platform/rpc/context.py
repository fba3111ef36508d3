"""The caller's security context, signed for the trip to another process and verified there.

A remote call is scoped exactly like a local one: the receiving side rebuilds the same
``SecurityContext`` (subject, tenant, roles, permissions, visible tenants) from a short-lived
HS256 token signed with ``clients.secret``, which only the platform's own processes hold. Each
token is signed for one call (a retry signs a new one) and verified once: a token seen again
within its lifetime, e.g. captured on the network and replayed, is refused.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict

import jwt

from hyperspot.platform.security import SecurityContext

CONTEXT_HEADER = "X-Hyperspot-Context"
AUDIENCE = "hyperspot-internal"
ALGORITHM = "HS256"
# Long enough for a retried call, short enough that a captured token is soon useless.
TTL_S = 60
# Calls of methods that take no SecurityContext still prove they come from the platform.
SERVICE_SUBJECT = "service"
# Token ids remembered against replay, at most: ~100 bytes each. Past this many calls within one
# TTL the oldest are forgotten first (they are also the first to expire).
MAX_REMEMBERED = 200_000


class ContextRejectedError(Exception):
    """The call carried no valid context: it does not come from the platform's own processes."""


class ContextSigner:
    def __init__(self, secret: str) -> None:
        if len(secret) < 32:
            raise ValueError("clients.secret must be at least 32 characters")
        self._secret = secret
        # Token id -> expiry, oldest first (tokens arrive roughly in the order they expire).
        self._seen: OrderedDict[str, int] = OrderedDict()
        # Verified from the event loop and from worker threads (gRPC).
        self._lock = threading.Lock()

    def sign(self, security: SecurityContext | None, audience_module: str) -> str:
        now = int(time.time())
        claims: dict[str, object] = {
            "aud": AUDIENCE,
            "mod": audience_module,
            "iat": now,
            "exp": now + TTL_S,
            "jti": uuid.uuid4().hex,
        }
        if security is None:
            claims["sub"] = SERVICE_SUBJECT
        else:
            claims.update(
                sub=security.subject,
                ten=security.tenant_id,
                per=sorted(security.permissions),
                rol=sorted(security.roles),
                tid=security.token_id,
                vis=sorted(security.visible_tenants),
                sys=security.system,
                adm=security.platform_admin,
                hom=security.home_tenant,
            )
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str | None, module: str) -> SecurityContext | None:
        """The context the caller signed for ``module`` (None for a service call)."""
        if not token:
            raise ContextRejectedError("no call context")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                options={"require": ["exp", "iat", "sub", "mod", "jti"]},
            )
        except jwt.PyJWTError as error:
            raise ContextRejectedError(f"invalid call context: {error}") from None
        if claims["mod"] != module:
            raise ContextRejectedError(f"the call context was signed for '{claims['mod']}'")
        self._first_use(str(claims["jti"]), int(claims["exp"]))
        if "ten" not in claims:
            return None
        return SecurityContext(
            subject=str(claims["sub"]),
            tenant_id=str(claims["ten"]),
            permissions=frozenset(claims["per"]),
            roles=frozenset(claims["rol"]),
            token_id=str(claims["tid"]),
            visible_tenants=frozenset(claims["vis"]),
            system=bool(claims["sys"]),
            platform_admin=bool(claims["adm"]),
            home_tenant=str(claims["hom"]),
        )

    def _first_use(self, token_id: str, expires: int) -> None:
        now = time.time()
        with self._lock:
            seen = self._seen
            while seen and (len(seen) >= MAX_REMEMBERED or next(iter(seen.values())) < now):
                seen.popitem(last=False)
            if token_id in seen:
                raise ContextRejectedError("the call context was already used (a replay)")
            seen[token_id] = expires
