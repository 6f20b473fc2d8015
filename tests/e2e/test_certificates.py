"""Certificates of completion through the gateway: a learner buys the demo course and watches every
video lesson to the end (playback heartbeats), gets one certificate that anyone can verify by code,
learning nothing else; a learner refunded before finishing gets none."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from .test_auth_tokens import new_account
from .test_core_path import eventually, login

DEMO_ADMIN = ("admin@triple.academy", "Admin-Demo-2026!")
DEMO_COURSE = "10000000-0000-4000-8000-000000000001"
TRAILER = "30000000-0000-4000-8000-000000000001"  # a preview: watchable without an enrollment
PAID_LESSON = "30000000-0000-4000-8000-000000000003"
LESSON_SECONDS = 6.0  # the demo asset
# Watch time is credited at most at 2x real time: 6 s of video need 3 s between two heartbeats.
WATCH_WAIT_SECONDS = LESSON_SECONDS / 2 + 0.5
PASSWORD = "a certificates e2e passphrase"


def _buy(client: httpx.Client, learner: dict[str, str]) -> str:
    checkout = client.post("/api/billing/checkout", json={"course_id": DEMO_COURSE},
                           headers={**learner, "Idempotency-Key": uuid.uuid4().hex})
    assert checkout.status_code == 201, checkout.text
    assert client.post(checkout.json()["checkout_url"] + "/pay").status_code == 200
    return f"/api/billing/orders/{checkout.json()['order_id']}"


def _start(client: httpx.Client, learner: dict[str, str], lesson_id: str) -> str:
    """A playback session (once the entitlement arrived) with its first heartbeat at 0."""
    def token() -> dict[str, Any] | None:
        response = client.post("/api/playback/token", headers=learner, json={"lesson_id": lesson_id})
        return response.json() if response.status_code == 200 else None

    session_id = str(eventually(token, what="playback entitlement")["session_id"])
    _beat(client, learner, session_id, 0.0)
    return session_id


def _beat(client: httpx.Client, learner: dict[str, str], session_id: str, position: float) -> dict[str, Any]:
    response = client.post(f"/api/playback/sessions/{session_id}/heartbeat", headers=learner,
                           json={"position_seconds": position})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _certificates(client: httpx.Client, learner: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get("/api/catalog/me/certificates", headers=learner)
    assert response.status_code == 200, response.text
    return [item for item in response.json()["items"] if item["course_id"] == DEMO_COURSE]


def test_watching_every_lesson_issues_one_verifiable_certificate(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=15) as client:
        admin = login(client, *DEMO_ADMIN)
        _, _, access = new_account(client, "certified", PASSWORD)
        learner = {"Authorization": f"Bearer {access}"}
        _, _, refunded_access = new_account(client, "refunded", PASSWORD)
        refunded = {"Authorization": f"Bearer {refunded_access}"}
        refunded_order = _buy(client, refunded)
        _buy(client, learner)

        # Both learners start both lessons, then real time passes once for all four streams.
        sessions = {lesson: _start(client, learner, lesson) for lesson in (TRAILER, PAID_LESSON)}
        refunded_sessions = {lesson: _start(client, refunded, lesson) for lesson in (TRAILER, PAID_LESSON)}
        time.sleep(WATCH_WAIT_SECONDS)

        # The refunded learner finishes the paid lesson, is refunded, then finishes the preview:
        # the course is complete only after the enrollment ended, so no certificate.
        assert _beat(client, refunded, refunded_sessions[PAID_LESSON], LESSON_SECONDS)["watched_seconds"] >= 5.4
        refund = client.post(f"{refunded_order}/refund", json={"reason": "requested_by_customer"}, headers=admin)
        assert refund.status_code == 200, refund.text

        def revoked() -> bool:
            items = client.get("/api/catalog/me/enrollments", headers=refunded).json()["items"]
            return DEMO_COURSE not in [item["course_id"] for item in items]  # active ones only

        eventually(revoked, what="enrollment revoked")
        assert _beat(client, refunded, refunded_sessions[TRAILER], LESSON_SECONDS)["watched_seconds"] >= 5.4

        for session_id in sessions.values():
            assert _beat(client, learner, session_id, LESSON_SECONDS)["watched_seconds"] >= 5.4
        [certificate] = eventually(lambda: _certificates(client, learner), what="certificate issued")
        assert certificate["course_title"] == "Protected Video Streaming 101"
        assert _certificates(client, learner) == [certificate]  # issued once
        assert _certificates(client, refunded) == []

        # Anyone may verify: name, course and date, and nothing else.
        code = certificate["code"]
        verified = client.get(f"/api/catalog/certificates/{code}")
        assert verified.status_code == 200, verified.text
        assert verified.json() == {"valid": True, "learner_name": "E2E certified", "learner_erased": False,
                                   "course_title": "Protected Video Streaming 101",
                                   "issued_on": certificate["issued_at"][:10]}
        pdf = client.get(f"/api/catalog/certificates/{code}/pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        assert client.get(f"/api/catalog/certificates/{code[:-1]}!").status_code in (404, 422)
        assert client.get(f"/api/catalog/certificates/{'A' * 22}").status_code == 404
