"""The evidence trail: one admin call tells an order's story across billing, catalog and playback in
time order, each step with the request (or event correlation) id that caused it; a peer that is
down leaves its part missing and the trail flagged, never a 500."""

from __future__ import annotations

import json
import uuid
from typing import Any

from billing_testkit import ADMIN, DEMO_COURSE_ID, STUDENT, Platform, eventually

PAID_LESSON = "30000000-0000-4000-8000-000000000003"


def _rid(name: str) -> dict[str, str]:
    return {"X-Request-ID": f"{name}-{uuid.uuid4().hex[:12]}"}


async def _trail(platform: Platform, path: str, **params: Any) -> dict[str, Any]:
    response = await platform.client.get(f"/api/billing/admin/evidence/{path}", params=params,
                                         headers=await platform.auth(ADMIN))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _first(trail: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(entry for entry in trail["entries"] if entry["kind"] == kind)


async def test_an_orders_trail_spans_services_in_time_order_with_request_ids(platform: Platform) -> None:
    buyer = await platform.new_user("Eve Evidence")
    headers = await platform.auth(buyer)
    checkout_rid = _rid("checkout")
    checkout = await platform.client.post("/api/billing/checkout", json={"course_id": str(DEMO_COURSE_ID)},
                                          headers={**headers, **checkout_rid, "Idempotency-Key": uuid.uuid4().hex})
    assert checkout.status_code == 201, checkout.text
    order_id = checkout.json()["order_id"]
    event = platform.stripe_event("checkout.session.completed", order_id, await platform.session_id(order_id),
                                  amount=checkout.json()["amount"])
    provider_event_id = json.loads(event)["id"]
    webhook_rid = _rid("webhook")
    paid = await platform.client.post("/api/billing/webhooks/stripe", content=event.encode(), headers={
        "Content-Type": "application/json", "Stripe-Signature": platform.sign(event), **webhook_rid})
    assert paid.json()["outcome"] == "fulfilled"

    token_rid = _rid("token")

    async def token() -> dict[str, Any] | None:
        response = await platform.client.post("/api/playback/token", json={"lesson_id": PAID_LESSON},
                                              headers={**headers, **token_rid})
        return dict(response.json()) if response.status_code == 200 else None

    session = await eventually(token, "playback entitlement")
    refund_rid = _rid("refund")
    refund = await platform.client.post(f"/api/billing/orders/{order_id}/refund", json={"reason": "chargeback"},
                                        headers={**await platform.auth(ADMIN), **refund_rid})
    assert refund.status_code == 200 and refund.json()["status"] == "refunded", refund.text

    async def story() -> dict[str, Any] | None:
        trail = await _trail(platform, f"orders/{order_id}")
        kinds = {entry["kind"] for entry in trail["entries"]}
        return trail if {"enrollment.revoked", "playback.session_ended"} <= kinds else None

    trail = await eventually(story, "revocation reaching catalog and playback")
    assert trail["partial"] is False and trail["order_id"] == order_id
    assert {part["service"]: part["status"] for part in trail["parts"]} == {
        "billing": "ok", "catalog": "ok", "playback": "ok"}
    times = [entry["at"] for entry in trail["entries"]]
    assert times == sorted(times)

    checkout_entry = _first(trail, "order.checkout")
    assert checkout_entry["service"] == "billing" and checkout_entry["request_id"] == checkout_rid["X-Request-ID"]
    payment = _first(trail, "order.paid")
    assert payment["detail"]["provider_event_id"] == provider_event_id
    assert payment["request_id"] == webhook_rid["X-Request-ID"]
    # Catalog granted on billing's event: the grant carries the webhook's request id as correlation.
    granted = _first(trail, "enrollment.granted")
    assert granted["service"] == "catalog" and granted["request_id"] == webhook_rid["X-Request-ID"]
    assert granted["detail"]["order_id"] == order_id
    started = _first(trail, "playback.session_started")
    assert started["request_id"] == token_rid["X-Request-ID"]
    assert started["detail"]["session_id"] == session["session_id"] and started["detail"]["watermark"]
    assert _first(trail, "playback.token_granted")["request_id"] == token_rid["X-Request-ID"]
    assert _first(trail, "refund.requested")["request_id"] == refund_rid["X-Request-ID"]
    assert [e["detail"]["to_status"] for e in trail["entries"] if e["kind"].startswith("order.")
            and e["kind"] not in ("order.placed", "order.checkout")] == ["paid", "paid", "refunded"]
    assert [e["kind"] for e in trail["entries"] if e["kind"] in ("order.paid", "order.noted")] == [
        "order.paid", "order.noted"]  # the refund's progress is noted, not a second payment
    assert _first(trail, "invoice.issued")["detail"]["invoice_number"].startswith("INV-")
    # The refund's request id travels through billing's event to catalog, then to playback.
    revoked = _first(trail, "enrollment.revoked")
    ended = _first(trail, "playback.session_ended")
    assert revoked["request_id"] == ended["request_id"] == refund_rid["X-Request-ID"]
    assert ended["detail"]["end_reason"] == "enrollment_revoked"
    order_of = [entry["kind"] for entry in trail["entries"]]
    assert order_of.index("order.checkout") < order_of.index("order.paid") < order_of.index(
        "enrollment.granted") < order_of.index("playback.session_started") < order_of.index("enrollment.revoked")

    # For the user: the same steps plus auth's account audit (registration, sign-in).
    user_id = trail["user_id"]
    everything = await _trail(platform, f"users/{user_id}")
    assert {"account.register", "account.login", "order.paid", "enrollment.granted"} <= {
        entry["kind"] for entry in everything["entries"]}
    # Capped: catalog has two steps (granted, revoked) and gives the newest one, saying so.
    capped = await _trail(platform, f"orders/{order_id}", limit=1)
    assert capped["partial"] is True
    assert {part["service"]: part["status"] for part in capped["parts"]}["catalog"] == "truncated"
    assert [e["kind"] for e in capped["entries"] if e["kind"].startswith("enrollment.")] == ["enrollment.revoked"]


async def test_a_peer_down_leaves_its_part_missing_and_the_trail_flagged(platform: Platform) -> None:
    _, order_id = await platform.paid_order()
    platform.playback_outage.down = True
    try:
        trail = await _trail(platform, f"orders/{order_id}")
    finally:
        platform.playback_outage.down = False
    assert trail["partial"] is True
    parts = {part["service"]: part["status"] for part in trail["parts"]}
    assert parts == {"billing": "ok", "catalog": "ok", "playback": "missing"}
    assert "order.paid" in {entry["kind"] for entry in trail["entries"]}
    assert not any(entry["service"] == "playback" for entry in trail["entries"])


async def test_the_trail_is_for_admins_and_bounded(platform: Platform) -> None:
    _, order_id = await platform.paid_order()
    student = await platform.client.get(f"/api/billing/admin/evidence/orders/{order_id}",
                                        headers=await platform.auth(STUDENT))
    assert student.status_code == 403 and student.headers["content-type"] == "application/problem+json"
    assert (await platform.client.get(f"/api/billing/admin/evidence/orders/{order_id}")).status_code == 401
    admin = await platform.auth(ADMIN)
    missing = await platform.client.get(f"/api/billing/admin/evidence/orders/{uuid.uuid4()}", headers=admin)
    assert missing.status_code == 404
    for bad in ({"limit": 0}, {"limit": 1001}):
        response = await platform.client.get(f"/api/billing/admin/evidence/orders/{order_id}", params=bad,
                                             headers=admin)
        assert response.status_code == 422
