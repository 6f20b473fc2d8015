"""Sessions: rotation, concurrent refreshes, reuse detection, lifetimes, logout, sign out
everywhere, own session list, and the browser cookie with its CSRF check."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from http.cookies import SimpleCookie

import sqlalchemy as sa
from auth_testkit import Auth, bearer, claims

from auth.models import LoginSession, RefreshToken
from auth.sessions import digest
from common.db import utcnow


async def refresh(auth: Auth, token: str) -> tuple[int, dict[str, str]]:
    response = await auth.client.post("/refresh", json={"refresh_token": token})
    return response.status_code, response.json()


async def test_concurrent_refreshes_with_one_token_give_exactly_one_success(auth: Auth) -> None:
    _user, tokens = await auth.user_with_tokens()
    results = await asyncio.gather(*(refresh(auth, tokens["refresh_token"]) for _ in range(6)))
    winners = [body for status, body in results if status == 200]
    assert len(winners) == 1
    assert sorted(status for status, _ in results) == [200, 401, 401, 401, 401, 401]
    # Within the grace period the losers did not kill the session: the winner's token works.
    status, _body = await refresh(auth, winners[0]["refresh_token"])
    assert status == 200


async def test_reuse_after_the_grace_period_revokes_the_family(auth: Auth) -> None:
    user, tokens = await auth.user_with_tokens()
    status, rotated = await refresh(auth, tokens["refresh_token"])
    assert status == 200
    # The grace period passes (moved back in the database rather than slept through).
    long_ago = utcnow() - dt.timedelta(seconds=auth.settings.refresh_reuse_grace_seconds + 1)
    async with auth.runtime.db.transaction() as session:
        await session.execute(sa.update(RefreshToken).where(RefreshToken.token_hash == digest(tokens["refresh_token"]))
                              .values(used_at=long_ago))
    assert (await refresh(auth, tokens["refresh_token"]))[0] == 401  # replay of a rotated token
    assert (await refresh(auth, rotated["refresh_token"]))[0] == 401  # the newest token died with it
    # The session is over for access tokens too (auth checks `sid`), and the reuse is audited.
    assert (await auth.client.get("/me", headers=bearer(rotated))).status_code == 401
    [entry] = await auth.audit("refresh_token_reuse", user["id"])
    assert entry.outcome == "revoked" and entry.details["session_id"] == claims(rotated["access_token"])["sid"]


async def test_idle_and_absolute_lifetimes(auth: Auth) -> None:
    _user, idle = await auth.user_with_tokens()
    _user2, absolute = await auth.user_with_tokens()
    past = utcnow() - dt.timedelta(seconds=1)
    async with auth.runtime.db.transaction() as session:
        await session.execute(sa.update(RefreshToken).where(RefreshToken.token_hash == digest(idle["refresh_token"]))
                              .values(expires_at=past))
        sid = uuid.UUID(claims(absolute["access_token"])["sid"])
        await session.execute(sa.update(LoginSession).where(LoginSession.id == sid).values(expires_at=past))
    assert (await refresh(auth, idle["refresh_token"]))[0] == 401
    assert (await refresh(auth, absolute["refresh_token"]))[0] == 401
    # A fresh session's refresh token never outlives the session's absolute end.
    _user3, fresh = await auth.user_with_tokens()
    async with auth.runtime.db.session() as session:
        token = await session.scalar(sa.select(RefreshToken).where(
            RefreshToken.token_hash == digest(fresh["refresh_token"])))
        assert token is not None
        login_session = await session.get(LoginSession, token.family_id)
        assert login_session is not None
    assert token.expires_at <= login_session.expires_at
    assert token.expires_at - token.created_at == dt.timedelta(hours=auth.settings.refresh_token_idle_hours)


async def test_logout_ends_the_session_and_its_access_tokens_here(auth: Auth) -> None:
    _user, tokens = await auth.user_with_tokens()
    assert (await auth.client.post("/logout", json={"refresh_token": tokens["refresh_token"]})).status_code == 204
    assert (await refresh(auth, tokens["refresh_token"]))[0] == 401
    assert (await auth.client.get("/me", headers=bearer(tokens))).status_code == 401
    # Unknown tokens: nothing to do, nothing revealed.
    assert (await auth.client.post("/logout", json={"refresh_token": "x" * 40})).status_code == 204


async def test_sign_out_everywhere(auth: Auth) -> None:
    user = await auth.register()
    laptop, phone = await auth.login(user["email"]), await auth.login(user["email"])
    response = await auth.client.post("/logout-all", headers=bearer(phone))
    assert response.status_code == 204
    for tokens in (laptop, phone):
        assert (await refresh(auth, tokens["refresh_token"]))[0] == 401
        assert (await auth.client.get("/me", headers=bearer(tokens))).status_code == 401
    [event] = await auth.events("auth.user.sessions_revoked.v1", user_id=user["id"])
    assert set(event) == {"user_id", "revoked_at"}
    assert await auth.audit("logout_all", user["id"])


async def test_list_and_revoke_own_sessions(auth: Auth) -> None:
    user = await auth.register()
    first, second = await auth.login(user["email"]), await auth.login(user["email"])
    listed = (await auth.client.get("/me/sessions", headers=bearer(second))).json()
    assert len(listed) == 2
    current = [s for s in listed if s["current"]]
    assert [s["id"] for s in current] == [claims(second["access_token"])["sid"]]
    assert all(s["ip"] and s["user_agent"] for s in listed)

    # Someone else's session id is a 404, and stays alive.
    _other, other_tokens = await auth.user_with_tokens()
    other_sid = claims(other_tokens["access_token"])["sid"]
    assert (await auth.client.delete(f"/me/sessions/{other_sid}", headers=bearer(second))).status_code == 404
    assert (await auth.client.get("/me", headers=bearer(other_tokens))).status_code == 200

    first_sid = claims(first["access_token"])["sid"]
    assert (await auth.client.delete(f"/me/sessions/{first_sid}", headers=bearer(second))).status_code == 204
    assert (await refresh(auth, first["refresh_token"]))[0] == 401
    assert [s["id"] for s in (await auth.client.get("/me/sessions", headers=bearer(second))).json()] == \
        [claims(second["access_token"])["sid"]]


def _set_cookie(response_headers: list[str], name: str) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response_headers:
        if header.startswith(name + "="):
            jar.load(header)
    return jar


async def test_refresh_cookie_for_browsers_with_origin_check(auth: Auth) -> None:
    user = await auth.register()
    name = auth.settings.refresh_cookie_name
    login = await auth.client.post("/login", json={"email": user["email"], "password": "correct horse battery",
                                                   "refresh_transport": "cookie"})
    assert login.status_code == 200
    assert "refresh_token" not in login.json() and login.json()["access_token"]
    headers = login.headers.get_list("set-cookie")
    cookie = _set_cookie(headers, name)[name]
    raw = next(h for h in headers if h.startswith(name)).lower()
    assert "; httponly" in raw and "; secure" in raw and "; samesite=strict" in raw
    assert cookie["path"] == "/refresh" and int(cookie["max-age"]) > 0
    jar = {"Cookie": f"{name}={cookie.value}"}
    origin = {"Origin": auth.settings.public_base_url}

    # CSRF: no Origin/Referer, or a foreign one, is refused before the token is touched.
    assert (await auth.client.post("/refresh", headers=jar)).status_code == 403
    evil = await auth.client.post("/refresh", headers={**jar, "Origin": "https://evil.example"})
    assert evil.status_code == 403 and evil.json()["code"] == "csrf_origin"
    by_referer = await auth.client.post("/refresh", headers={**jar, "Referer": f"{auth.settings.public_base_url}/x"})
    assert by_referer.status_code == 200
    rotated = _set_cookie(by_referer.headers.get_list("set-cookie"), name)[name].value
    assert rotated != cookie.value and "refresh_token" not in by_referer.json()

    ok = await auth.client.post("/refresh", headers={"Cookie": f"{name}={rotated}", **origin})
    assert ok.status_code == 200
    newest = _set_cookie(ok.headers.get_list("set-cookie"), name)[name].value

    # Browser logout lives under the cookie's path; it clears the cookie and ends the session.
    out = await auth.client.post("/refresh/logout", headers={"Cookie": f"{name}={newest}", **origin})
    assert out.status_code == 204
    cleared = _set_cookie(out.headers.get_list("set-cookie"), name)[name]
    assert cleared.value in ("", '""') and cleared["path"] == "/refresh"
    assert (await auth.client.post("/refresh", headers={"Cookie": f"{name}={newest}", **origin})).status_code == 401
    # No cookie and no body: nothing to refresh.
    assert (await auth.client.post("/refresh", headers=origin)).status_code == 401
