"""Access tokens are verified locally by every service, so auth's revocations travel as events: after
"sign out everywhere", an admin's disable or an erasure, the user's still-unexpired access token is
refused by catalog, billing and playback too, not only by auth."""

from __future__ import annotations

import time
import uuid

import httpx

PASSWORD = "a revocation e2e passphrase"
ADMIN = {"email": "admin@triple.academy", "password": "Admin-Demo-2026!"}
FREE_COURSE = "10000000-0000-4000-8000-000000000002"
FREE_PREVIEW_LESSON = "30000000-0000-4000-8000-000000000004"
# One read per service that needs nothing but a valid user token.
PROBES = [("GET", "/api/catalog/me/enrollments", None),
          ("GET", "/api/billing/orders", None),
          ("POST", "/api/playback/token", {"lesson_id": FREE_PREVIEW_LESSON})]


def _signed_in(client: httpx.Client, email: str) -> dict[str, str]:
    login = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return _bearer(login.json())


def _bearer(tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _statuses(client: httpx.Client, headers: dict[str, str]) -> list[int]:
    return [client.request(method, path, headers=headers, json=body).status_code for method, path, body in PROBES]


def _until_all_refused(client: httpx.Client, headers: dict[str, str]) -> list[int]:
    deadline = time.monotonic() + 20
    statuses = _statuses(client, headers)
    while any(status != 401 for status in statuses) and time.monotonic() < deadline:
        time.sleep(0.2)
        statuses = _statuses(client, headers)
    return statuses


def test_sign_out_everywhere_and_disable_reach_every_service(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=15) as client:
        email = f"revoke-{uuid.uuid4().hex[:8]}@example.com"
        registered = client.post("/api/auth/register", json={"email": email, "password": PASSWORD,
                                                              "full_name": "Revoked"})
        assert registered.status_code == 201, registered.text
        headers = _signed_in(client, email)
        user_id = client.get("/api/auth/me", headers=headers).json()["id"]
        assert client.post(f"/api/catalog/courses/{FREE_COURSE}/enroll", headers=headers).status_code in (200, 201)
        assert all(status < 300 for status in _statuses(client, headers)), _statuses(client, headers)

        assert client.post("/api/auth/logout-all", headers=headers).status_code == 204
        assert _until_all_refused(client, headers) == [401, 401, 401]

        # A token issued after the revocation works everywhere (iat has whole seconds: wait out the
        # second of the revocation first).
        time.sleep(1.1)
        fresh = _signed_in(client, email)
        assert all(status < 300 for status in _statuses(client, fresh)), _statuses(client, fresh)

        admin = _signed_in_admin(client)
        assert client.post(f"/api/auth/admin/users/{user_id}/disable", headers=admin).status_code == 200
        assert _until_all_refused(client, fresh) == [401, 401, 401]


def _signed_in_admin(client: httpx.Client) -> dict[str, str]:
    login = client.post("/api/auth/login", json=ADMIN)
    assert login.status_code == 200, login.text
    return _bearer(login.json())
