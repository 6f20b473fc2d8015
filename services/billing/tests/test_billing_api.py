"""Billing with the local provider on real PostgreSQL: checkout, idempotency, signed webhooks,
exactly-once fulfilment, refunds and object-level access."""

from __future__ import annotations

import asyncio
import time
import uuid

from billing_testkit import ADMIN, DEMO_COURSE_ID, FREE_COURSE_ID, STUDENT, Platform

PAID = "billing.order.paid.v1"
REFUNDED = "billing.order.refunded.v1"


async def _pending_order(platform: Platform, who: tuple[str, str] | None = None) -> tuple[str, str]:
    """A pending order of the demo course; by default for a new buyer (a paid order enrols its buyer)."""
    response = await platform.checkout(who or await platform.new_user(), key=f"test-{uuid.uuid4()}")
    assert response.status_code == 201, response.text
    order_id = response.json()["order_id"]
    return order_id, await platform.session_id(order_id)


async def _paid_order(platform: Platform, who: tuple[str, str] | None = None) -> str:
    order_id, session_id = await _pending_order(platform, who)
    response = await platform.deliver(platform.stripe_event("checkout.session.completed", order_id, session_id))
    assert response.status_code == 200 and response.json()["outcome"] == "fulfilled"
    return order_id


async def test_checkout_creates_a_pending_order_with_a_checkout_url(platform: Platform) -> None:
    response = await platform.checkout(STUDENT, key="first-purchase")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending"
    assert body["checkout_url"].startswith("http://testserver/api/billing/local-checkout/cs_local_")
    order = await platform.order(body["order_id"])
    assert order["course_id"] == str(DEMO_COURSE_ID)
    assert (order["amount"], order["currency"], order["paid_at"]) == (4900, "EUR", None)


async def test_same_idempotency_key_returns_the_same_order(platform: Platform) -> None:
    buyer = await platform.new_user()
    first = await platform.checkout(buyer, key="same-key-twice")
    again = await platform.checkout(buyer, key="same-key-twice")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()

    racer = await platform.new_user()
    racing = await asyncio.gather(*(platform.checkout(racer, key="racing-key") for _ in range(5)))
    assert sorted(r.status_code for r in racing) == [200, 200, 200, 200, 201]
    assert len({r.json()["order_id"] for r in racing}) == 1

    reused = await platform.checkout(buyer, FREE_COURSE_ID, key="same-key-twice")
    assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused"


async def test_one_open_checkout_per_learner_and_course(platform: Platform) -> None:
    """The last session's bug: two checkouts with different keys could both be paid."""
    buyer = await platform.new_user()
    first = await platform.checkout(buyer, key=f"a-{uuid.uuid4()}")
    second = await platform.checkout(buyer, key=f"b-{uuid.uuid4()}")
    without_key = await platform.checkout(buyer)
    assert (first.status_code, second.status_code, without_key.status_code) == (201, 200, 200)
    assert first.json() == second.json() == without_key.json()

    racer = await platform.new_user()
    racing = await asyncio.gather(*(platform.checkout(racer, key=f"k{i}-{uuid.uuid4()}") for i in range(6)))
    assert sorted(r.status_code for r in racing) == [200] * 5 + [201]
    assert len({r.json()["order_id"] for r in racing}) == 1
    racer_id = uuid.UUID(await platform.user_id(racer))
    assert await platform.scalar("SELECT count(*) FROM orders WHERE user_id = :u", u=racer_id) == 1

    # Once paid, a new checkout is refused here even before catalog has granted the enrollment.
    order_id = first.json()["order_id"]
    paid = platform.stripe_event("checkout.session.completed", order_id, await platform.session_id(order_id))
    assert (await platform.deliver(paid)).json()["outcome"] == "fulfilled"
    again = await platform.checkout(buyer, key=f"c-{uuid.uuid4()}")
    assert again.status_code == 409 and again.json()["code"] == "already_enrolled"


async def test_local_pay_fulfils_through_the_signed_webhook_and_enrols(platform: Platform) -> None:
    buyer = await platform.new_user()
    response = await platform.checkout(buyer, key=f"pay-{uuid.uuid4()}")
    order_id, checkout_url = response.json()["order_id"], response.json()["checkout_url"]
    path = checkout_url.removeprefix("http://testserver")

    page = await platform.client.get(path)
    assert page.status_code == 200 and "Pay" in page.text and "49.00 EUR" in page.text
    paid = await platform.client.post(f"{path}/pay")
    assert paid.status_code == 200 and "Payment received" in paid.text

    order = await platform.order(order_id, buyer)
    assert order["status"] == "paid" and order["paid_at"]
    events = await platform.events(PAID, order_id)
    assert events == [{"order_id": order_id, "user_id": await platform.user_id(buyer),
                       "course_id": str(DEMO_COURSE_ID), "amount": 4900, "currency": "EUR",
                       "paid_at": events[0]["paid_at"]}]
    # Money -> access: catalog consumed billing.order.paid.v1 and enrolled the buyer.
    assert await platform.enrolled_courses(buyer, expect=1) == [str(DEMO_COURSE_ID)]

    twice = await platform.client.post(f"{path}/pay")
    assert twice.status_code == 200 and "Nothing to pay" in twice.text
    assert len(await platform.events(PAID, order_id)) == 1
    assert (await platform.client.get("/api/billing/local-checkout/cs_local_" + "0" * 40)).status_code == 404


async def test_one_event_delivered_five_times_pays_once(platform: Platform) -> None:
    order_id, session_id = await _pending_order(platform)
    payload = platform.stripe_event("checkout.session.completed", order_id, session_id)
    outcomes = [(await platform.deliver(payload)).json()["outcome"] for _ in range(5)]
    assert outcomes == ["fulfilled"] + ["duplicate"] * 4
    assert len(await platform.events(PAID, order_id)) == 1

    order_id, session_id = await _pending_order(platform)
    payload = platform.stripe_event("checkout.session.completed", order_id, session_id)
    responses = await asyncio.gather(*(platform.deliver(payload) for _ in range(5)))
    assert all(r.status_code == 200 for r in responses)
    assert sorted(r.json()["outcome"] for r in responses) == ["duplicate"] * 4 + ["fulfilled"]
    assert (await platform.order(order_id))["status"] == "paid"
    assert len(await platform.events(PAID, order_id)) == 1

    # Another event reporting the same payment is applied, but fulfilment is a no-op.
    late = platform.stripe_event("checkout.session.async_payment_succeeded", order_id, session_id)
    assert (await platform.deliver(late)).json()["outcome"] == "already_settled"
    assert len(await platform.events(PAID, order_id)) == 1
    assert await platform.count("order_audit", order_id) == 2  # created, paid


async def test_forged_edited_or_stale_webhooks_are_400(platform: Platform) -> None:
    order_id, session_id = await _pending_order(platform)
    payload = platform.stripe_event("checkout.session.completed", order_id, session_id)
    wrong_secret = platform.sign(payload).rsplit("=", 1)[0] + "=" + "0" * 64
    edited = payload.replace('"amount_total": 4900', '"amount_total": 1')
    stale = platform.sign(payload, timestamp=int(time.time()) - 301)
    for body, signature in [(payload, wrong_secret), (edited, platform.sign(payload)), (payload, stale),
                            (payload, ""), (payload, "garbage"), ("not json", platform.sign("not json"))]:
        response = await platform.deliver(body, signature)
        assert response.status_code == 400, (signature, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert (await platform.order(order_id))["status"] == "pending"
    fresh = await platform.deliver(payload, platform.sign(payload, timestamp=int(time.time()) - 200))
    assert fresh.json()["outcome"] == "fulfilled"


async def test_failed_and_expired_sessions(platform: Platform) -> None:
    response = await platform.checkout(await platform.new_user(), key=f"decline-{uuid.uuid4()}")
    order_id = response.json()["order_id"]
    path = response.json()["checkout_url"].removeprefix("http://testserver")
    declined = await platform.client.post(f"{path}/decline")
    assert declined.status_code == 200 and "declined" in declined.text
    assert (await platform.order(order_id))["status"] == "failed"

    order_id, session_id = await _pending_order(platform)
    expired = platform.stripe_event("checkout.session.expired", order_id, session_id, payment_status="unpaid")
    assert (await platform.deliver(expired)).json()["outcome"] == "expired"
    assert (await platform.order(order_id))["status"] == "expired"
    # Out of order: the payment notice arrives after the expiry notice; money taken means paid.
    paid = platform.stripe_event("checkout.session.async_payment_succeeded", order_id, session_id)
    assert (await platform.deliver(paid)).json()["outcome"] == "fulfilled"
    late_failure = platform.stripe_event("checkout.session.async_payment_failed", order_id, session_id,
                                         payment_status="unpaid")
    assert (await platform.deliver(late_failure)).json()["outcome"] == "already_settled"
    assert (await platform.order(order_id))["status"] == "paid"
    assert len(await platform.events(PAID, order_id)) == 1


async def test_unexpected_valid_events_are_acknowledged(platform: Platform) -> None:
    order_id, session_id = await _pending_order(platform)
    unknown_type = platform.stripe_event("customer.created", order_id, session_id)
    assert (await platform.deliver(unknown_type)).json()["outcome"] == "ignored"
    unpaid = platform.stripe_event("checkout.session.completed", order_id, session_id, payment_status="unpaid")
    assert (await platform.deliver(unpaid)).json()["outcome"] == "awaiting_payment"
    stranger = platform.stripe_event("checkout.session.completed", str(uuid.uuid4()), "cs_test_nobody")
    assert (await platform.deliver(stranger)).json()["outcome"] == "unknown_order"
    assert (await platform.order(order_id))["status"] == "pending"


async def test_admin_refund_is_recorded_once_and_revokes_access(platform: Platform) -> None:
    buyer = await platform.new_user()
    order_id = await _paid_order(platform, buyer)
    assert await platform.enrolled_courses(buyer, expect=1) == [str(DEMO_COURSE_ID)]
    url = f"/api/billing/orders/{order_id}/refund"
    student = await platform.client.post(url, json={"reason": "changed my mind"},
                                         headers=await platform.auth(STUDENT))
    assert student.status_code == 403
    for bad in ({"reason": "x", "amount": 12.5}, {"reason": "x", "amount": 0}, {"reason": "x", "currency": "EUR"}):
        assert (await platform.client.post(url, json=bad, headers=await platform.auth(ADMIN))).status_code == 422

    first = await platform.client.post(url, json={"reason": "requested by customer"},
                                       headers=await platform.auth(ADMIN))
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "refunded" and first.json()["refunded_at"]
    again = await platform.client.post(url, json={"reason": "requested by customer"},
                                       headers=await platform.auth(ADMIN))
    assert again.status_code == 200 and again.json() == first.json()
    events = await platform.events(REFUNDED, order_id)
    assert len(events) == 1
    assert events[0]["amount_refunded"] == 4900 and events[0]["currency"] == "EUR"
    assert await platform.count("order_refunds", order_id) == 1
    assert await platform.enrolled_courses(buyer, expect=0) == []
    assert (await platform.checkout(buyer)).status_code == 201  # no longer enrolled: may buy again

    pending_id, _ = await _pending_order(platform)
    not_paid = await platform.client.post(f"/api/billing/orders/{pending_id}/refund",
                                          json={"reason": "nope"}, headers=await platform.auth(ADMIN))
    assert not_paid.status_code == 409
    missing = await platform.client.post(f"/api/billing/orders/{uuid.uuid4()}/refund",
                                         json={"reason": "nope"}, headers=await platform.auth(ADMIN))
    assert missing.status_code == 404


async def test_orders_are_visible_to_their_owner_and_admins_only(platform: Platform) -> None:
    other = await platform.new_user()
    order_id, session_id = await _pending_order(platform, other)
    foreign = await platform.client.get(f"/api/billing/orders/{order_id}", headers=await platform.auth(STUDENT))
    assert foreign.status_code == 404
    foreign_confirm = await platform.client.post(f"/api/billing/orders/{order_id}/confirm",
                                                 headers=await platform.auth(STUDENT))
    assert foreign_confirm.status_code == 404
    assert (await platform.order(order_id, ADMIN))["order_id"] == order_id
    assert (await platform.order(order_id, other))["status"] == "pending"

    expired = platform.stripe_event("checkout.session.expired", order_id, session_id, payment_status="unpaid")
    assert (await platform.deliver(expired)).json()["outcome"] == "expired"
    await _pending_order(platform, other)
    listing = await platform.client.get("/api/billing/orders", params={"page_size": 1},
                                        headers=await platform.auth(other))
    assert listing.status_code == 200
    page = listing.json()
    assert (page["total"], page["page"], page["page_size"], len(page["items"])) == (2, 1, 1, 1)
    assert (await platform.client.get("/api/billing/orders")).status_code == 401


async def test_catalog_refusals(platform: Platform) -> None:
    free = await platform.checkout(STUDENT, FREE_COURSE_ID)
    assert free.status_code == 409 and free.json()["code"] == "course_is_free"
    draft = await platform.checkout(STUDENT, await platform.draft_course())
    assert draft.status_code == 409 and draft.json()["code"] == "course_not_published"
    unknown = await platform.checkout(STUDENT, uuid.uuid4())
    assert unknown.status_code == 404

    buyer = await platform.new_user()
    await _paid_order(platform, buyer)
    await platform.enrolled_courses(buyer, expect=1)
    enrolled = await platform.checkout(buyer, DEMO_COURSE_ID)
    assert enrolled.status_code == 409 and enrolled.json()["code"] == "already_enrolled"

    newcomer = await platform.new_user()
    platform.catalog_outage.down = True
    try:
        down = await platform.checkout(newcomer, DEMO_COURSE_ID)
    finally:
        platform.catalog_outage.down = False
    assert down.status_code == 503
    listing = await platform.client.get("/api/billing/orders", headers=await platform.auth(newcomer))
    assert listing.json()["total"] == 0

    assert (await platform.client.post("/api/billing/checkout", json={"course_id": str(DEMO_COURSE_ID)})
            ).status_code == 401
    bad_body = await platform.client.post("/api/billing/checkout", headers=await platform.auth(STUDENT),
                                          json={"course_id": str(DEMO_COURSE_ID), "amount": 1})
    assert bad_body.status_code == 422
