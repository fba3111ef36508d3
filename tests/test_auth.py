"""Bearer tokens: what is accepted, what is refused, and that cached tokens still expire."""

from __future__ import annotations

import time

import jwt
import pytest

from hyperspot.platform.auth import JwtAuthenticator, issue_token
from hyperspot.platform.config import JwtSettings
from hyperspot.platform.gateway.problems import Problem

SECRET = "auth-test-secret-0123456789abcdef0123"
SETTINGS = JwtSettings(secret=SECRET, leeway_s=0)


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "ann",
        "tenant": "acme",
        "permissions": ["notes:read"],
        "iss": "hyperspot",
        "aud": "hyperspot",
        "iat": now,
        "exp": now + 60,
    }
    base.update(overrides)
    return base


def refused(token: str, settings: JwtSettings = SETTINGS) -> str:
    with pytest.raises(Problem) as caught:
        JwtAuthenticator(settings).verify(token)
    assert caught.value.status_code == 401
    return str(caught.value.description)


def test_valid_token_gives_context() -> None:
    token = issue_token(SETTINGS, tenant="acme", subject="ann", permissions=["notes:read"])
    security = JwtAuthenticator(SETTINGS).verify(token)
    assert (security.tenant_id, security.subject) == ("acme", "ann")
    assert security.permissions == frozenset({"notes:read"})
    assert security.visible_tenants == frozenset({"acme"})


@pytest.mark.parametrize(
    ("token_claims", "message"),
    [
        (claims(aud="elsewhere"), "invalid token: Audience doesn't match"),
        (claims(iss="mallory"), "invalid token: Invalid issuer"),
        (claims(tenant=""), "'tenant' and 'sub' must be non-empty strings"),
        (claims(permissions="notes:read"), "'permissions' must be a list of strings"),
        (claims(nbf=int(time.time()) + 600), "invalid token: The token is not yet valid"),
        (
            {k: v for k, v in claims().items() if k != "tenant"},
            'invalid token: Token is missing the "tenant" claim',
        ),
    ],
)
def test_bad_claims_are_refused(token_claims: dict[str, object], message: str) -> None:
    token = jwt.encode(token_claims, SECRET, algorithm="HS256")
    assert message in refused(token)


def test_wrong_key_none_algorithm_and_garbage_are_refused() -> None:
    assert refused(jwt.encode(claims(), "another-secret-0123456789abcdef0123", algorithm="HS256"))
    unsigned = jwt.encode(claims(), "", algorithm="none")
    assert "invalid token" in refused(unsigned)
    assert "invalid token" in refused("not.a.token")
    assert "auth.jwt.secret is not configured" in refused("x.y.z", JwtSettings())


def test_cached_token_still_expires() -> None:
    authenticator = JwtAuthenticator(SETTINGS)
    token = jwt.encode(claims(exp=int(time.time()) + 1), SECRET, algorithm="HS256")
    assert authenticator.verify(token).subject == "ann"
    assert authenticator.verify(token).subject == "ann"  # from the cache
    time.sleep(1.1)
    assert refused(token) == "the token has expired"
