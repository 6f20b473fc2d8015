"""Auth's core path on real PostgreSQL and Redis: register, login, me, refresh rotation, JWKS,
client credentials, throttling."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from auth.main import create_app
from auth.settings import AuthSettings
from common.http import LazyASGITransport
from common.testing import REDIS_URL, TEST_BASE_URL, postgres_database, serve_in_process, unique_name


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    with postgres_database(["auth"]) as urls:
        settings = AuthSettings(
            database_url=urls["auth"], migrate_on_start=True, redis_url=REDIS_URL,
            redis_key_prefix=unique_name("t") + ":", auth_url=TEST_BASE_URL, log_json=False,
            service_clients="billing:billing-test-secret-123456",
        )
        transport = LazyASGITransport()
        async with serve_in_process(create_app(settings, http_transport=transport), transport) as c:
            yield c


async def _register(client: httpx.AsyncClient, email: str, password: str = "correct horse battery") -> dict:
    response = await client.post("/register", json={"email": email, "password": password,
                                                    "full_name": "Test User"})
    assert response.status_code == 201, response.text
    return response.json()


async def test_register_login_me_refresh(client: httpx.AsyncClient) -> None:
    user = await _register(client, "  Learner.One@Example.COM ")
    assert user["email"] == "learner.one@example.com"
    assert "password" not in str(user).lower()

    login = await client.post("/login", json={"email": "learner.one@example.com",
                                              "password": "correct horse battery"})
    assert login.status_code == 200
    tokens = login.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900

    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "EdDSA" and header["kid"]
    me = await client.get("/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200 and me.json()["id"] == user["id"]

    rotated = await client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    new_refresh = rotated.json()["refresh_token"]
    assert new_refresh != tokens["refresh_token"]

    # Reusing the rotated token revokes the family: the newest token dies with it.
    reuse = await client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reuse.status_code == 401
    after = await client.post("/refresh", json={"refresh_token": new_refresh})
    assert after.status_code == 401


async def test_bad_input_is_a_clear_4xx(client: httpx.AsyncClient) -> None:
    response = await client.post("/register", json={"email": "not-an-email", "password": "x",
                                                     "full_name": "A"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    extra = await client.post("/register", json={"email": "mass@example.com", "password": "long enough pw",
                                                  "full_name": "A", "roles": ["admin"]})
    assert extra.status_code == 422
    await _register(client, "dupe@example.com")
    dupe = await client.post("/register", json={"email": "DUPE@example.com", "password": "long enough pw",
                                                "full_name": "A"})
    assert dupe.status_code == 409


async def test_tampered_or_missing_token_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get("/me")).status_code == 401
    assert (await client.get("/me", headers={"Authorization": "Bearer abc.def.ghi"})).status_code == 401
    await _register(client, "tamper@example.com")
    login = await client.post("/login", json={"email": "tamper@example.com",
                                              "password": "correct horse battery"})
    token = login.json()["access_token"]
    head, body, sig = token.split(".")
    forged = f"{head}.{body}.{sig[:-4]}AAAA"
    assert (await client.get("/me", headers={"Authorization": f"Bearer {forged}"})).status_code == 401


async def test_login_throttled_per_ip(client: httpx.AsyncClient) -> None:
    headers = {"X-Real-IP": "203.0.113.77"}
    for _ in range(5):
        wrong = await client.post("/login", json={"email": "nobody@example.com", "password": "wrong-pass"},
                                  headers=headers)
        assert wrong.status_code == 401
        assert wrong.json()["detail"] == "email or password is incorrect"
    blocked = await client.post("/login", json={"email": "nobody@example.com", "password": "wrong-pass"},
                                headers=headers)
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0


async def test_client_credentials_and_jwks(client: httpx.AsyncClient) -> None:
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert jwks["keys"] and all("d" not in key for key in jwks["keys"])
    ok = await client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "billing",
                                                 "client_secret": "billing-test-secret-123456",
                                                 "audience": "catalog"})
    assert ok.status_code == 200
    claims = jwt.decode(ok.json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "catalog" and claims["sub"] == "service:billing"
    bad = await client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "billing",
                                                  "client_secret": "wrong", "audience": "catalog"})
    assert bad.status_code == 401
