"""Forged and misdirected access tokens at every service, through the gateway, in both run modes.

Each service verifies auth's JWTs itself (libs/common, keys from auth's JWKS); this checks that
every one of them really does, on a route the genuine token opens: `alg: none`, HS256 keyed
with the published public key, a stranger's Ed25519 key under auth's `kid`, claims edited under
the original signature, and a genuine token of another issuer and audience (playback's).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PAID_COURSE = "10000000-0000-4000-8000-000000000001"
PREVIEW_LESSON = "30000000-0000-4000-8000-000000000001"
USER_ROUTES = ["/api/auth/me", "/api/catalog/me/enrollments", "/api/billing/orders",
               f"/api/playback/progress?course_id={PAID_COURSE}"]


def new_account(client: httpx.Client, prefix: str, password: str) -> tuple[str, str, str]:
    """A fresh student through the gateway: (email, user id, access token)."""
    email = f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"
    registered = client.post("/api/auth/register", json={"email": email, "password": password,
                                                          "full_name": f"E2E {prefix}"})
    assert registered.status_code == 201, registered.text
    login = client.post("/api/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    return email, registered.json()["id"], login.json()["access_token"]


def _b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _forgeries(client: httpx.Client, genuine: str) -> dict[str, str]:
    header, claims = jwt.get_unverified_header(genuine), jwt.decode(genuine, options={"verify_signature": False})
    jwk = next(k for k in client.get("/api/auth/.well-known/jwks.json").json()["keys"] if k["kid"] == header["kid"])
    forged = {"alg none": f"{_b64({**header, 'alg': 'none'})}.{_b64(claims)}."}
    hs_input = f"{_b64({'alg': 'HS256', 'kid': header['kid'], 'typ': 'JWT'})}.{_b64(claims)}"
    for name, secret in (("HS256 raw public key", base64.urlsafe_b64decode(jwk["x"] + "==")),
                         ("HS256 public key as text", jwk["x"].encode()),
                         ("HS256 JWK as text", json.dumps(jwk).encode())):
        forged[name] = f"{hs_input}.{_b64(hmac.new(secret, hs_input.encode(), hashlib.sha256).digest())}"
    forged["stranger key, auth's kid"] = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                                                    headers={"kid": header["kid"]})
    signing_input, signature = genuine.rsplit(".", 1)
    head = signing_input.split(".")[0]
    forged["roles edited"] = f"{head}.{_b64({**claims, 'roles': ['admin']})}.{signature}"
    forged["subject edited"] = f"{head}.{_b64({**claims, 'sub': str(uuid.uuid4())})}.{signature}"
    return forged


def test_every_service_refuses_forged_and_misdirected_tokens(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=15) as client:
        _email, _user_id, genuine = new_account(client, "tokens", "a passphrase for tokens")
        for route in USER_ROUTES:  # the control: the genuine token opens each route
            assert client.get(route, headers={"Authorization": f"Bearer {genuine}"}).status_code == 200, route

        playback = client.post("/api/playback/token", json={"lesson_id": PREVIEW_LESSON},
                               headers={"Authorization": f"Bearer {genuine}"})
        assert playback.status_code == 200, playback.text
        forgeries = {**_forgeries(client, genuine), "playback's token": playback.json()["token"]}
        for name, token in forgeries.items():
            for route in USER_ROUTES:
                response = client.get(route, headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 401, (name, route, response.status_code)
        admin_only = client.get("/api/billing/admin/orders",
                                headers={"Authorization": f"Bearer {forgeries['roles edited']}"})
        assert admin_only.status_code == 401
