"""Abuse resistance: login throttling per IP and per account on Redis, no lock-out of password
reset, and no difference between an unknown account and a wrong password."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from auth_testkit import PASSWORD, Auth, HasherSpy, random_ip
from fastapi import Request

from auth import passwords
from auth.api.deps import client_ip
from auth.settings import AuthSettings
from common.testing import REDIS_URL


async def _login(auth: Auth, email: str, password: str, ip: str) -> Any:
    return await auth.client.post("/login", json={"email": email, "password": password}, headers={"X-Real-IP": ip})


async def test_sixth_failed_login_from_one_ip_within_a_minute_is_429(auth: Auth) -> None:
    ip = random_ip()
    user = await auth.register()
    for _ in range(8):  # successes never count
        assert (await _login(auth, user["email"], PASSWORD, ip)).status_code == 200
    for i in range(5):
        wrong = await _login(auth, f"nobody{i}@example.com", "wrong-pass", ip)
        assert wrong.status_code == 401
    blocked = await _login(auth, "nobody@example.com", "wrong-pass", ip)
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 60
    # The block is on the address: even the right password waits; another address does not.
    assert (await _login(auth, user["email"], PASSWORD, ip)).status_code == 429
    assert (await _login(auth, user["email"], PASSWORD, random_ip())).status_code == 200
    assert [e.outcome for e in await auth.audit("login") if e.ip == ip][-2:] == ["throttled", "throttled"]


async def test_only_loopback_proxies_pick_the_client_address_by_default(auth: Auth) -> None:
    """A host on the LAN (embedded mode answers it directly) cannot rotate X-Real-IP to get a fresh
    per-IP budget: it is counted by its socket address. Loopback (the gateway on the same host) is
    believed, which is what every other test here relies on."""
    assert AuthSettings.model_fields["trusted_proxies"].default == "127.0.0.1/32,::1/128"
    peer = f"192.168.{random.randrange(256)}.{random.randrange(1, 255)}"
    lan = httpx.AsyncClient(transport=httpx.ASGITransport(app=auth.app, client=(peer, 50000)),
                            base_url=str(auth.client.base_url))
    async with lan:
        for i in range(5):
            wrong = await lan.post("/login", json={"email": f"lan{i}@example.com", "password": "wrong-pass"},
                                   headers={"X-Real-IP": random_ip()})
            assert wrong.status_code == 401
        blocked = await lan.post("/login", json={"email": "lan@example.com", "password": "wrong-pass"},
                                 headers={"X-Real-IP": random_ip()})
        assert blocked.status_code == 429
    assert [e.outcome for e in await auth.audit("login") if e.ip == peer] == ["failure"] * 5 + ["throttled"]
    # Configured, the same network is a proxy whose X-Real-IP is the client.
    request = Request({"type": "http", "client": (peer, 50000), "headers": [(b"x-real-ip", b"203.0.113.9")]})
    assert await client_ip(request, auth.settings) == peer
    trusting = auth.settings.model_copy(update={"trusted_proxies": "192.168.0.0/16"})
    assert await client_ip(request, trusting) == "203.0.113.9"


async def test_throttle_keys_always_expire(auth: Auth) -> None:
    await _login(auth, "ttl-check@example.com", "wrong-pass", random_ip())
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{auth.settings.redis_key_prefix}*")]
        assert keys
        for key in keys:
            assert await client.ttl(key) > 0, key
    finally:
        await client.aclose()


async def test_account_throttle_does_not_lock_the_owner_out_of_reset(auth: Auth) -> None:
    user = await auth.register()
    limit = auth.settings.login_failures_per_account_per_15_minutes
    for _ in range(limit):  # an attacker spreading guesses over many addresses
        assert (await _login(auth, user["email"], "attacker guess", random_ip())).status_code == 401
    locked = await _login(auth, user["email"], PASSWORD, random_ip())
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0

    # The owner can still recover the account, and recovering lifts the lock.
    assert (await auth.client.post("/password/forgot", json={"email": user["email"]})).status_code == 202
    code = await auth.code_from_mail(user["email"], "Reset your password")
    reset = await auth.client.post("/password/reset", json={"code": code, "new_password": "owner is back again"})
    assert reset.status_code == 204
    assert (await _login(auth, user["email"], "owner is back again", random_ip())).status_code == 200


async def test_unknown_account_and_wrong_password_look_the_same(auth: Auth,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    user = await auth.register()
    spy = HasherSpy(passwords._state.hasher)
    monkeypatch.setattr(passwords._state, "hasher", spy)
    unknown = await _login(auth, "no-such-account@example.com", "some password", random_ip())
    wrong = await _login(auth, user["email"], "some password", random_ip())
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert unknown.headers.get("www-authenticate") == wrong.headers.get("www-authenticate")
    # Same work: one argon2 verification each, with the same parameters (the dummy hash for the
    # unknown account), so timing does not tell them apart either (the bench measures it).
    assert len(spy.verified) == 2 and spy.verified[0] == spy.verified[1]
    assert spy.verified[0].startswith("$argon2id$v=19$m=19456,t=2,p=1")


async def test_forgot_password_requests_are_limited_silently(auth: Auth) -> None:
    user = await auth.register()
    for _ in range(auth.settings.password_reset_requests_per_account_per_hour + 2):
        response = await auth.client.post("/password/forgot", json={"email": user["email"]},
                                          headers={"X-Real-IP": random_ip()})
        assert response.status_code == 202
    sent = [m for m in auth.mailbox.messages if m["To"] == user["email"] and "Reset" in str(m["Subject"])]
    assert len(sent) == auth.settings.password_reset_requests_per_account_per_hour
