"""Account erasure across the platform, through the gateway, in both run modes.

A learner enrols in the free demo course, buys the paid one through the local checkout and
watches it (playback token + heartbeat), then deletes their account. `auth.user.deleted.v1`
then has to reach every service: login fails, catalog forgets the enrollments, billing keeps the
orders for the books but anonymised, playback anonymises its watermark log, and the learner's
unexpired access token is refused everywhere. Every response is checked for password hashes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .test_auth_tokens import new_account
from .test_core_path import eventually

DEMO_ADMIN = {"email": "admin@triple.academy", "password": "Admin-Demo-2026!"}
PAID_COURSE = "10000000-0000-4000-8000-000000000001"
PAID_LESSON = "30000000-0000-4000-8000-000000000003"
FREE_COURSE = "10000000-0000-4000-8000-000000000002"
PASSWORD = "an erasure e2e passphrase"
ERASURE_DEADLINE = 30.0  # seconds for auth.user.deleted.v1 to reach a service and take effect


def _no_password_hash(response: httpx.Response) -> None:
    response.read()
    assert b"$argon2" not in response.content, response.request.url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=15, event_hooks={"response": [_no_password_hash]}) as http:
        yield http


def _login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    return client.post("/api/auth/login", json={"email": email, "password": password})


def _bearer(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _course_learners(client: httpx.Client, admin: dict[str, str], course_id: str) -> set[str]:
    """Every user id enrolled (active or revoked) in a course, all pages, as an admin sees them."""
    users: set[str] = set()
    page = 1
    while True:
        response = client.get(f"/api/catalog/courses/{course_id}/enrollments", headers=admin,
                              params={"page": page, "page_size": 100})
        assert response.status_code == 200, response.text
        body = response.json()
        users |= {item["user_id"] for item in body["items"]}
        if page * 100 >= body["total"]:
            return users
        page += 1


def _orders(client: httpx.Client, admin: dict[str, str], user_id: str) -> list[dict[str, Any]]:
    response = client.get("/api/billing/admin/orders", headers=admin, params={"user_id": user_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _watermark(client: httpx.Client, admin: dict[str, str], mark: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/playback/admin/watermarks/{mark}", headers=admin)
    assert response.status_code == 200, response.text
    sessions: list[dict[str, Any]] = response.json()["sessions"]
    return sessions


def _leftover_token_statuses(client: httpx.Client, learner: dict[str, str]) -> list[int]:
    return [client.get("/api/catalog/me/enrollments", headers=learner).status_code,
            client.get("/api/billing/orders", headers=learner).status_code,
            client.post("/api/playback/token", headers=learner, json={"lesson_id": PAID_LESSON}).status_code]


def _position(client: httpx.Client, learner: dict[str, str]) -> float:
    """Where playback would resume the paid lesson for this learner."""
    response = client.get("/api/playback/progress", params={"course_id": PAID_COURSE}, headers=learner)
    assert response.status_code == 200, response.text
    [lesson] = [item for item in response.json()["lessons"] if item["lesson_id"] == PAID_LESSON]
    return float(lesson["position_seconds"])


def test_erasure_reaches_every_service(client: httpx.Client) -> None:
    admin = _bearer(_login(client, DEMO_ADMIN["email"], DEMO_ADMIN["password"]))
    email, user_id, access = new_account(client, "erase-me", PASSWORD)
    learner = {"Authorization": f"Bearer {access}"}

    # Free course: enrolled at once. Paid course: local checkout, signed webhook, order paid.
    assert client.post(f"/api/catalog/courses/{FREE_COURSE}/enroll", headers=learner).status_code == 201
    checkout = client.post("/api/billing/checkout", json={"course_id": PAID_COURSE},
                           headers={**learner, "Idempotency-Key": uuid.uuid4().hex})
    assert checkout.status_code == 201, checkout.text
    assert client.post(checkout.json()["checkout_url"] + "/pay").status_code == 200
    order_url = f"/api/billing/orders/{checkout.json()['order_id']}"
    eventually(lambda: client.get(order_url, headers=learner).json()["status"] == "paid", what="order paid")

    # Watching: a token once the entitlement arrived, then a heartbeat that records progress.
    def playback_token() -> dict[str, Any] | None:
        response = client.post("/api/playback/token", headers=learner, json={"lesson_id": PAID_LESSON})
        return response.json() if response.status_code == 200 else None

    token = eventually(playback_token, what="playback entitlement")
    beat = client.post(f"/api/playback/sessions/{token['session_id']}/heartbeat", headers=learner,
                       json={"position_seconds": 3.0})
    assert beat.status_code == 200, beat.text

    # The controls: every trace the erasure must remove is there before it.
    assert user_id in _course_learners(client, admin, FREE_COURSE)
    assert user_id in _course_learners(client, admin, PAID_COURSE)
    [order] = _orders(client, admin, user_id)
    assert order["status"] == "paid" and order["anonymized"] is False
    assert _position(client, learner) == 3.0
    assert [s["user_id"] for s in _watermark(client, admin, token["watermark"])] == [user_id]

    # Erasure needs the password; a wrong one changes nothing.
    refused = client.request("DELETE", "/api/auth/me", headers=learner, json={"password": "not my password"})
    assert refused.status_code == 403
    assert client.get("/api/auth/me", headers=learner).status_code == 200
    erased = client.request("DELETE", "/api/auth/me", headers=learner, json={"password": PASSWORD})
    assert erased.status_code == 204, erased.text

    # Auth at once: no login (the same answer as a wrong password), no session, no account.
    gone = _login(client, email, PASSWORD)
    assert gone.status_code == 401 and gone.json()["code"] == "invalid_credentials"
    assert client.get("/api/auth/me", headers=learner).status_code == 401
    users = client.get("/api/auth/admin/users", headers=admin, params={"q": email}).json()
    assert users["total"] == 0

    # The other services, eventually.
    eventually(lambda: user_id not in _course_learners(client, admin, FREE_COURSE)
               and user_id not in _course_learners(client, admin, PAID_COURSE),
               within=ERASURE_DEADLINE, what="catalog enrollments erased")
    eventually(lambda: all(o["anonymized"] for o in _orders(client, admin, user_id)),
               within=ERASURE_DEADLINE, what="billing orders anonymised")
    [kept] = _orders(client, admin, user_id)  # the books keep the sale, without the person
    assert (kept["order_id"], kept["status"], kept["amount"]) == (order["order_id"], "paid", order["amount"])
    eventually(lambda: [s["user_id"] for s in _watermark(client, admin, token["watermark"])] == [None],
               within=ERASURE_DEADLINE, what="playback watermark log anonymised")
    # The learner's access token has not expired, but every service learnt of the erasure
    # (auth.user.deleted.v1) and refuses it, so nothing can recreate the learner's data with it.
    # (That playback erased the progress itself is tested in playback's own suite.)
    eventually(lambda: _leftover_token_statuses(client, learner) == [401, 401, 401],
               within=ERASURE_DEADLINE, what="leftover token refused everywhere")
    audit = client.get("/api/catalog/admin/enrollments/audit", headers=admin, params={"user_id": user_id})
    assert audit.status_code == 200 and audit.json()["total"] == 0
