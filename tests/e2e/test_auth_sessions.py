"""Auth through the real edge, in both run modes: the browser refresh cookie scoped to
/api/auth/refresh with its Origin check, sign out everywhere, admin disable/enable, and the
internal user endpoint (private at the edge, answered to billing's service token)."""

from __future__ import annotations

import uuid
from http.cookies import SimpleCookie

import httpx

from gateway.distributed import Topology

PASSWORD = "an e2e passphrase for auth"
ADMIN = {"email": "admin@triple.academy", "password": "Admin-Demo-2026!"}
COOKIE = "__Secure-triple-refresh"


def _cookie(response: httpx.Response) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(COOKIE + "="):
            jar.load(header)
    return jar


def _register(client: httpx.Client) -> str:
    email = f"auth-e2e-{uuid.uuid4().hex[:8]}@example.com"
    response = client.post("/api/auth/register", json={"email": email, "password": PASSWORD, "full_name": "E2E"})
    assert response.status_code == 201, response.text
    return email


def test_browser_cookie_sign_out_everywhere_and_disable(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=15) as client:
        email = _register(client)
        browser = client.post("/api/auth/login", json={"email": email, "password": PASSWORD,
                                                       "refresh_transport": "cookie"})
        assert browser.status_code == 200, browser.text
        cookie = _cookie(browser)[COOKIE]
        assert cookie["path"] == "/api/auth/refresh" and cookie["httponly"] and cookie["secure"]
        assert cookie["samesite"].lower() == "strict" and "refresh_token" not in browser.json()

        sent = {"Cookie": f"{COOKIE}={cookie.value}"}
        foreign = client.post("/api/auth/refresh", headers={**sent, "Origin": "https://evil.example"})
        assert foreign.status_code == 403
        rotated = client.post("/api/auth/refresh", headers={**sent, "Origin": base_url})
        assert rotated.status_code == 200, rotated.text
        browser_cookie = _cookie(rotated)[COOKIE].value
        assert browser_cookie != cookie.value

        cli = client.post("/api/auth/login", json={"email": email, "password": PASSWORD}).json()
        bearer = {"Authorization": f"Bearer {cli['access_token']}"}
        me = client.get("/api/auth/me", headers=bearer).json()
        assert client.post("/api/auth/logout-all", headers=bearer).status_code == 204
        assert client.post("/api/auth/refresh", json={"refresh_token": cli["refresh_token"]}).status_code == 401
        assert client.post("/api/auth/refresh", headers={"Cookie": f"{COOKIE}={browser_cookie}",
                                                         "Origin": base_url}).status_code == 401
        assert client.get("/api/auth/me", headers=bearer).status_code == 401

        admin_tokens = client.post("/api/auth/login", json=ADMIN).json()
        admin = {"Authorization": f"Bearer {admin_tokens['access_token']}"}
        disabled = client.post(f"/api/auth/admin/users/{me['id']}/disable", headers=admin)
        assert disabled.status_code == 200 and disabled.json()["is_active"] is False
        enabled = client.post(f"/api/auth/admin/users/{me['id']}/enable", headers=admin)
        assert enabled.status_code == 200 and enabled.json()["is_active"] is True
        again = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert again.status_code == 200


def test_internal_user_endpoint_is_private_at_the_edge(distributed: Topology) -> None:
    with httpx.Client(base_url=distributed.gateway_url, timeout=15) as client:
        email = _register(client)
        auth_direct = f"http://127.0.0.1:{distributed.ports['auth'][0]}"
        token = httpx.post(f"{auth_direct}/oauth/token", data={
            "grant_type": "client_credentials", "client_id": "billing",
            "client_secret": distributed.secrets["billing_client_secret"], "audience": "auth"}).json()
        service = {"Authorization": f"Bearer {token['access_token']}"}
        admin_tokens = client.post("/api/auth/login", json=ADMIN).json()
        users = client.get("/api/auth/admin/users", params={"q": email},
                           headers={"Authorization": f"Bearer {admin_tokens['access_token']}"}).json()
        user_id = users["items"][0]["id"]
        assert client.get(f"/api/auth/internal/users/{user_id}", headers=service).status_code == 404
        direct = httpx.get(f"{auth_direct}/internal/users/{user_id}", headers=service)
        assert direct.status_code == 200
        assert direct.json() == {"user_id": user_id, "email": email, "full_name": "E2E", "is_active": True}
