"""Auth's core path on real PostgreSQL and Redis: register, login, me, refresh, JWKS, client
credentials, and what other services rely on (claims, demo accounts, the internal user endpoint)."""

from __future__ import annotations

import asyncio
import threading

import jwt
import pytest
from auth_testkit import BILLING_SECRET, CATALOG_SECRET, Auth, HasherSpy, bearer, claims

from auth import passwords


async def test_register_login_me_refresh(auth: Auth) -> None:
    user = await auth.register("  Learner.One@Example.COM ")
    assert user["email"] == "learner.one@example.com"
    assert user["roles"] == ["student"] and user["email_verified"] is False
    assert "password" not in str(user).lower()

    tokens = await auth.login("learner.one@example.com")
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900

    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "EdDSA" and header["kid"] and header["typ"] == "at+jwt"
    body = claims(tokens["access_token"])
    assert body["sub"] == user["id"] and body["roles"] == ["student"]
    assert body["iss"] == auth.settings.jwt_issuer and body["aud"] == auth.settings.jwt_audience
    assert body["exp"] - body["iat"] == 900 and body["jti"] and body["sid"]
    me = await auth.client.get("/me", headers=bearer(tokens))
    assert me.status_code == 200 and me.json()["id"] == user["id"]

    rotated = await auth.client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != tokens["refresh_token"]
    assert claims(rotated.json()["access_token"])["sid"] == body["sid"]


async def test_bad_input_is_a_clear_4xx(auth: Auth) -> None:
    response = await auth.client.post("/register", json={"email": "not-an-email", "password": "x",
                                                          "full_name": "A"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    extra = await auth.client.post("/register", json={"email": "mass@example.com", "password": "long enough pw",
                                                       "full_name": "A", "roles": ["admin"]})
    assert extra.status_code == 422
    await auth.register("dupe@example.com")
    dupe = await auth.client.post("/register", json={"email": "DUPE@example.com", "password": "long enough pw",
                                                      "full_name": "A"})
    assert dupe.status_code == 409


async def test_tampered_or_missing_token_is_401(auth: Auth) -> None:
    assert (await auth.client.get("/me")).status_code == 401
    assert (await auth.client.get("/me", headers=bearer("abc.def.ghi"))).status_code == 401
    _user, tokens = await auth.user_with_tokens()
    head, body, sig = tokens["access_token"].split(".")
    forged = f"{head}.{body}.{sig[:-4]}AAAA"
    assert (await auth.client.get("/me", headers=bearer(forged))).status_code == 401


async def test_demo_accounts_keep_their_ids_and_passwords(auth: Auth) -> None:
    for user_id, email, password in [
        ("00000000-0000-4000-8000-000000000001", "admin@triple.academy", "Admin-Demo-2026!"),
        ("00000000-0000-4000-8000-000000000002", "instructor@triple.academy", "Instructor-Demo-2026!"),
        ("00000000-0000-4000-8000-000000000003", "student@triple.academy", "Student-Demo-2026!"),
    ]:
        tokens = await auth.login(email, password)
        assert claims(tokens["access_token"])["sub"] == user_id
        me = (await auth.client.get("/me", headers=bearer(tokens))).json()
        assert me["email_verified"] is True


async def test_client_credentials_and_jwks(auth: Auth) -> None:
    response = await auth.client.get("/.well-known/jwks.json")
    keys = response.json()["keys"]
    assert keys and all("d" not in key and key["alg"] == "EdDSA" and key["kid"] for key in keys)
    assert "max-age" in response.headers["cache-control"]
    ok = await auth.client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "billing",
                                                      "client_secret": BILLING_SECRET, "audience": "catalog"})
    assert ok.status_code == 200
    body = claims(ok.json()["access_token"])
    assert body["aud"] == "catalog" and body["sub"] == "service:billing" and body["roles"] == ["service"]
    for client_id, secret, audience, expected in [
        ("billing", "wrong", "catalog", 401),
        ("nobody", BILLING_SECRET, "catalog", 401),
        ("billing", BILLING_SECRET, "elsewhere", 400),
        ("billing", BILLING_SECRET, "billing", 403),
    ]:
        refused = await auth.client.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
            "audience": audience})
        assert refused.status_code == expected, (client_id, audience)


async def test_internal_user_endpoint_for_billing(auth: Auth) -> None:
    user, tokens = await auth.user_with_tokens()
    billing = bearer(await auth.service_token("billing", BILLING_SECRET))
    found = await auth.client.get(f"/internal/users/{user['id']}", headers=billing)
    assert found.status_code == 200
    assert found.json() == {"user_id": user["id"], "email": user["email"], "full_name": "Test User",
                            "is_active": True}
    missing = await auth.client.get("/internal/users/00000000-0000-4000-8000-0000000000ff", headers=billing)
    assert missing.status_code == 404
    # Only billing, only with a service token.
    catalog = bearer(await auth.service_token("catalog", CATALOG_SECRET))
    assert (await auth.client.get(f"/internal/users/{user['id']}", headers=catalog)).status_code == 403
    assert (await auth.client.get(f"/internal/users/{user['id']}", headers=bearer(tokens))).status_code == 403
    assert (await auth.client.get(f"/internal/users/{user['id']}")).status_code == 401


async def test_argon2_runs_off_the_event_loop(auth: Auth, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every hash and verify of a register and a login runs on the bounded argon2 pool, never on
    the event loop's thread (the bench measures what that buys under load)."""
    spy = HasherSpy(passwords._state.hasher)
    monkeypatch.setattr(passwords._state, "hasher", spy)
    user = await auth.register()
    await asyncio.gather(*(auth.login(user["email"]) for _ in range(3)))
    assert len(spy.threads) == 4
    assert all(name.startswith("argon2") for name in spy.threads), spy.threads
    assert threading.main_thread().name not in spy.threads
