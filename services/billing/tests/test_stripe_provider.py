"""Billing with the Stripe provider: the real SDK against a local fake of Stripe's HTTP API."""

from __future__ import annotations

import uuid

from billing_testkit import ADMIN, DEMO_COURSE_ID, STUDENT, FakeStripe, Platform


async def test_checkout_sends_our_order_to_stripe_with_a_derived_idempotency_key(
        stripe_platform: Platform, fake_stripe: FakeStripe) -> None:
    response = await stripe_platform.checkout(STUDENT, key=f"stripe-{uuid.uuid4()}")
    assert response.status_code == 201, response.text
    order_id = response.json()["order_id"]
    assert response.json()["checkout_url"].startswith("https://checkout.stripe.test/c/pay/cs_test_")

    [call] = [c for c in fake_stripe.calls("/v1/checkout/sessions")
              if c["form"].get("client_reference_id") == order_id]
    assert call["headers"]["idempotency-key"] == f"checkout-{order_id}"
    assert call["headers"]["authorization"] == "Bearer sk_test_fake-key-for-the-fake-api"
    form = call["form"]
    assert form["mode"] == "payment"
    assert form["metadata[order_id]"] == order_id
    assert form["line_items[0][quantity]"] == "1"
    assert form["line_items[0][price_data][unit_amount]"] == "4900"
    assert form["line_items[0][price_data][currency]"] == "eur"
    assert form["line_items[0][price_data][product_data][name]"] == "Protected Video Streaming 101"
    assert form["success_url"] == f"http://testserver/checkout/success?order_id={order_id}"
    assert form["cancel_url"] == f"http://testserver/checkout/cancel?order_id={order_id}"

    # No local checkout page with the real provider.
    assert (await stripe_platform.client.get("/api/billing/local-checkout/cs_local_" + "0" * 40)
            ).status_code == 404


async def test_stripe_outage_then_retry_with_the_same_key(stripe_platform: Platform,
                                                          fake_stripe: FakeStripe) -> None:
    key = f"outage-{uuid.uuid4()}"
    fake_stripe.fail_with = 500
    try:
        down = await stripe_platform.checkout(STUDENT, key=key)
    finally:
        fake_stripe.fail_with = None
    assert down.status_code == 503 and down.json()["code"] == "payment_provider_error"

    retried = await stripe_platform.checkout(STUDENT, key=key)
    assert retried.status_code == 200, retried.text  # the order committed before the outage
    order_id = retried.json()["order_id"]
    assert retried.json()["checkout_url"]
    calls = [c for c in fake_stripe.calls("/v1/checkout/sessions")
             if c["form"].get("client_reference_id") == order_id]
    assert [c["headers"]["idempotency-key"] for c in calls] == [f"checkout-{order_id}"] * 2

    replay = await stripe_platform.checkout(STUDENT, key=key)
    assert replay.json() == retried.json()
    assert len([c for c in fake_stripe.calls("/v1/checkout/sessions")
                if c["form"].get("client_reference_id") == order_id]) == 2  # no third call


async def test_webhook_then_refund_through_stripe(stripe_platform: Platform, fake_stripe: FakeStripe) -> None:
    response = await stripe_platform.checkout(STUDENT, DEMO_COURSE_ID, key=f"refund-{uuid.uuid4()}")
    order_id = response.json()["order_id"]
    session_id = await stripe_platform.session_id(order_id)
    assert session_id.startswith("cs_test_")
    event = stripe_platform.stripe_event("checkout.session.completed", order_id, session_id)
    assert (await stripe_platform.deliver(event)).json()["outcome"] == "fulfilled"
    assert (await stripe_platform.order(order_id))["status"] == "paid"

    refunded = await stripe_platform.client.post(f"/api/billing/orders/{order_id}/refund",
                                                 json={"reason": "duplicate purchase"},
                                                 headers=await stripe_platform.auth(ADMIN))
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["status"] == "refunded"
    [call] = [c for c in fake_stripe.calls("/v1/refunds") if c["form"].get("metadata[order_id]") == order_id]
    assert call["headers"]["idempotency-key"] == f"refund-{order_id}"
    assert call["form"]["payment_intent"] == f"pi_test_{order_id[:8]}"
    assert call["form"]["amount"] == "4900"
    assert call["form"]["metadata[reason]"] == "duplicate purchase"
    assert len(await stripe_platform.events("billing.order.refunded.v1", order_id)) == 1
