"""Bearer tokens: HS256 and JWKS (RS256/ES256, file and URL); what is accepted and refused."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hyperspot.platform.auth import TokenVerifier, issue_token
from hyperspot.platform.config import JwtSettings
from hyperspot.platform.errors import ConfigError
from hyperspot.platform.identity import CredentialRejectedError, Principal

SECRET = "auth-test-secret-0123456789abcdef0123"
SETTINGS = JwtSettings(secret=SECRET, leeway_s=0)


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "ann",
        "tenant": "acme",
        "roles": ["member"],
        "iss": "hyperspot",
        "aud": "hyperspot",
        "iat": now,
        # Parametrized cases build their claims at collection time: valid for a whole run.
        "exp": now + 3600,
        "jti": "token-1",
    }
    base.update(overrides)
    return base


def verify(token: str, settings: JwtSettings = SETTINGS) -> Principal:
    return asyncio.run(TokenVerifier(settings).verify(token))


def refused(token: str, settings: JwtSettings = SETTINGS) -> str:
    with pytest.raises(CredentialRejectedError) as caught:
        verify(token, settings)
    return str(caught.value)


def test_valid_token_gives_principal() -> None:
    token = issue_token(SETTINGS, tenant="acme", subject="ann", roles=["member", "auditor"])
    principal = verify(token)
    assert (principal.tenant_id, principal.subject, principal.kind) == ("acme", "ann", "token")
    assert principal.roles == frozenset({"member", "auditor"})
    assert principal.credential_id


@pytest.mark.parametrize(
    ("token_claims", "message"),
    [
        (claims(aud="elsewhere"), "invalid token: Audience doesn't match"),
        (claims(iss="mallory"), "invalid token: Invalid issuer"),
        (claims(tenant=""), "'tenant' and 'sub' must be non-empty strings"),
        (claims(roles="member"), "'roles' must be a list of strings"),
        (claims(nbf=int(time.time()) + 600), "invalid token: The token is not yet valid"),
        (claims(exp=int(time.time()) - 5), "the token has expired"),
        (
            {k: v for k, v in claims().items() if k != "tenant"},
            'invalid token: Token is missing the "tenant" claim',
        ),
    ],
)
def test_bad_claims_are_refused(token_claims: dict[str, object], message: str) -> None:
    token = jwt.encode(token_claims, SECRET, algorithm="HS256")
    assert message in refused(token)


def test_clock_skew_is_configurable() -> None:
    late = jwt.encode(claims(exp=int(time.time()) - 20), SECRET, algorithm="HS256")
    assert refused(late) == "the token has expired"
    assert verify(late, JwtSettings(secret=SECRET, leeway_s=60)).subject == "ann"


def test_wrong_key_none_algorithm_and_garbage_are_refused() -> None:
    wrong = jwt.encode(claims(), "another-secret-0123456789abcdef0123", algorithm="HS256")
    assert "Signature verification failed" in refused(wrong)
    unsigned = jwt.encode(claims(), "", algorithm="none")
    assert refused(unsigned) == "invalid token: algorithm 'none' is not accepted"
    assert "invalid token" in refused("not.a.token")
    assert "accepts no tokens" in refused(jwt.encode(claims(), SECRET, "HS256"), JwtSettings())


def test_cached_token_still_expires() -> None:
    verifier = TokenVerifier(SETTINGS)
    token = jwt.encode(claims(exp=int(time.time()) + 1), SECRET, algorithm="HS256")
    assert asyncio.run(verifier.verify(token)).subject == "ann"
    assert asyncio.run(verifier.verify(token)).subject == "ann"  # from the cache
    time.sleep(1.1)
    with pytest.raises(CredentialRejectedError, match="the token has expired"):
        asyncio.run(verifier.verify(token))


# ---- asymmetric keys from a JWKS -----------------------------------------------------------


def _jwk(private: Any, kid: str, algorithm: str) -> dict[str, Any]:
    public = json.loads(
        jwt.algorithms.get_default_algorithms()[algorithm].to_jwk(private.public_key())
    )
    return {**public, "kid": kid, "alg": algorithm, "use": "sig"}


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
JWKS = {"keys": [_jwk(RSA_KEY, "rsa-1", "RS256"), _jwk(EC_KEY, "ec-1", "ES256")]}


@pytest.fixture
def jwks_file(tmp_path: Path) -> JwtSettings:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(JWKS), encoding="utf-8")
    return JwtSettings(jwks_file=path, leeway_s=0)


def test_rs256_and_es256_tokens_verify_against_the_jwks_file(jwks_file: JwtSettings) -> None:
    rs = jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})
    es = jwt.encode(claims(sub="bob"), EC_KEY, algorithm="ES256", headers={"kid": "ec-1"})
    assert verify(rs, jwks_file).subject == "ann"
    assert verify(es, jwks_file).subject == "bob"


def test_jwks_refusals(jwks_file: JwtSettings) -> None:
    forged = jwt.encode(claims(), OTHER_RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})
    assert "Signature verification failed" in refused(forged, jwks_file)
    unknown_kid = jwt.encode(claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-9"})
    assert refused(unknown_kid, jwks_file) == "invalid token: no signing key for kid 'rsa-9'"
    # Several keys and no kid: the server will not guess.
    assert "several keys" in refused(jwt.encode(claims(), RSA_KEY, algorithm="RS256"), jwks_file)
    # With only a JWKS configured, an HS256 token (e.g. signed with the public key) is refused.
    hs = jwt.encode(claims(), "any-secret-0123456789abcdef0123456789", algorithm="HS256")
    assert refused(hs, jwks_file) == "invalid token: algorithm 'HS256' is not accepted"


def test_unreadable_jwks_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        TokenVerifier(JwtSettings(jwks_file=tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not a JWKS"):
        TokenVerifier(JwtSettings(jwks_file=tmp_path / "bad.json"))


@pytest.fixture
def jwks_url() -> Iterator[str]:
    body = json.dumps(JWKS).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


def test_tokens_verify_against_a_jwks_url(jwks_url: str) -> None:
    settings = JwtSettings(jwks_url=jwks_url, leeway_s=0)
    token = jwt.encode(claims(), EC_KEY, algorithm="ES256", headers={"kid": "ec-1"})
    assert verify(token, settings).subject == "ann"


def test_unreachable_jwks_url_refuses_without_crashing() -> None:
    settings = JwtSettings(jwks_url="http://127.0.0.1:9/jwks.json", leeway_s=0)
    token = jwt.encode(claims(), EC_KEY, algorithm="ES256", headers={"kid": "ec-1"})
    assert refused(token, settings) == "the token's signing keys cannot be read"
