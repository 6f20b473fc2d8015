"""Billing with the Stripe provider: the real SDK against a local fake of Stripe's HTTP API."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from billing_testkit import ADMIN, DEMO_COURSE_ID, FakeStripe, Platform, eventually, payment_intent_of


async def test_checkout_sends_our_order_to_stripe_with_a_derived_idempotency_key(
        stripe_platform: Platform, fake_stripe: FakeStripe) -> None:
    buyer = await stripe_platform.new_user()
    response = await stripe_platform.checkout(buyer, key=f"stripe-{uuid.uuid4()}")
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
    assert 84_000 < int(form["expires_at"]) - time.time() <= 84_600  # inside Stripe's 30 min - 24 h
    assert form["payment_intent_data[metadata][order_id]"] == order_id
    assert form["customer"].startswith("cus_test_")

    # No local checkout page with the real provider.
    assert (await stripe_platform.client.get("/api/billing/local-checkout/cs_local_" + "0" * 40)
            ).status_code == 404


async def test_stripe_outage_then_retry_with_the_same_key(stripe_platform: Platform,
                                                          fake_stripe: FakeStripe) -> None:
    key = f"outage-{uuid.uuid4()}"
    buyer = await stripe_platform.new_user()
    user_id = await stripe_platform.user_id(buyer)
    with fake_stripe.answering(fail_with=500):
        down = await stripe_platform.checkout(buyer, key=key)
    assert down.status_code == 503 and down.json()["code"] == "payment_provider_error"

    retried = await stripe_platform.checkout(buyer, key=key)
    assert retried.status_code == 200, retried.text  # the order committed before the outage
    order_id = retried.json()["order_id"]
    assert retried.json()["checkout_url"]
    customer_calls = [c for c in fake_stripe.calls("/v1/customers")
                      if c["form"].get("metadata[user_id]") == user_id]
    assert [c["headers"]["idempotency-key"] for c in customer_calls] == [f"customer-{user_id}"] * 2
    calls = [c for c in fake_stripe.calls("/v1/checkout/sessions")
             if c["form"].get("client_reference_id") == order_id]
    assert [c["headers"]["idempotency-key"] for c in calls] == [f"checkout-{order_id}"]
    assert calls[0]["form"]["customer"].startswith("cus_test_")

    replay = await stripe_platform.checkout(buyer, key=key)
    assert replay.json() == retried.json()
    assert len([c for c in fake_stripe.calls("/v1/checkout/sessions")
                if c["form"].get("client_reference_id") == order_id]) == 1  # no second call


async def test_webhook_then_refund_through_stripe(stripe_platform: Platform, fake_stripe: FakeStripe) -> None:
    response = await stripe_platform.checkout(await stripe_platform.new_user(), DEMO_COURSE_ID,
                                              key=f"refund-{uuid.uuid4()}")
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
    refund_id = await stripe_platform.scalar("SELECT id FROM order_refunds WHERE order_id = :o",
                                             o=uuid.UUID(order_id))
    assert call["headers"]["idempotency-key"] == f"refund-{refund_id}"
    assert call["form"]["metadata[refund_id]"] == str(refund_id)
    assert call["form"]["payment_intent"] == payment_intent_of(order_id)
    assert call["form"]["amount"] == "4900"
    assert call["form"]["metadata[reason]"] == "duplicate purchase"
    assert len(await stripe_platform.events("billing.order.refunded.v1", order_id)) == 1


async def test_coupons_map_to_a_stripe_coupon_and_promotion_code_once(stripe_platform: Platform,
                                                                      fake_stripe: FakeStripe) -> None:
    code = f"STRIPE{uuid.uuid4().hex[:6]}".upper()
    created = await stripe_platform.client.post("/api/billing/admin/coupons", headers=await stripe_platform.auth(ADMIN),
                                                json={"code": code, "kind": "fixed", "amount_off": 900,
                                                      "currency": "EUR"})
    coupon_id = created.json()["coupon_id"]
    orders = []
    for _ in range(2):
        response = await stripe_platform.checkout(await stripe_platform.new_user(), coupon=code)
        assert response.status_code == 201, response.text
        assert response.json()["amount"] == 4000
        orders.append(response.json()["order_id"])
    [coupon_call] = [c for c in fake_stripe.calls("/v1/coupons") if c["form"]["metadata[coupon_id]"] == coupon_id]
    assert coupon_call["headers"]["idempotency-key"] == f"coupon-{coupon_id}"
    assert (coupon_call["form"]["amount_off"], coupon_call["form"]["currency"]) == ("900", "eur")
    [promo_call] = [c for c in fake_stripe.calls("/v1/promotion_codes") if c["form"]["code"] == code]
    assert promo_call["form"]["promotion[type]"] == "coupon"
    sessions = [c for c in fake_stripe.calls("/v1/checkout/sessions") if c["form"].get("client_reference_id") in orders]
    assert len(sessions) == 2
    for call in sessions:
        assert call["form"]["discounts[0][promotion_code]"].startswith("promo_test_")
        assert call["form"]["line_items[0][price_data][unit_amount]"] == "4900"  # Stripe applies the discount


async def test_a_changed_offer_expires_the_open_stripe_session(stripe_platform: Platform,
                                                                fake_stripe: FakeStripe) -> None:
    buyer = await stripe_platform.new_user()
    first = (await stripe_platform.checkout(buyer)).json()["order_id"]
    first_session = await stripe_platform.session_id(first)
    code = f"SWAP{uuid.uuid4().hex[:6]}".upper()
    await stripe_platform.client.post("/api/billing/admin/coupons", headers=await stripe_platform.auth(ADMIN),
                                      json={"code": code, "kind": "percent", "percent_off": 10})
    second = await stripe_platform.checkout(buyer, coupon=code)
    assert second.status_code == 201 and second.json()["order_id"] != first
    assert first_session in fake_stripe.expired_sessions
    assert (await stripe_platform.order(first))["status"] == "expired"
    # Customer reused: one create for this user, both sessions carry it.
    user_id = await stripe_platform.user_id(buyer)
    assert len([c for c in fake_stripe.calls("/v1/customers") if c["form"].get("metadata[user_id]") == user_id]) == 1

    # A session Stripe expired on its own (its webhook not here yet) is no obstacle to a new offer.
    second_session = await stripe_platform.session_id(second.json()["order_id"])
    fake_stripe.expired_sessions.add(second_session)
    newer = await stripe_platform.checkout(buyer)
    assert newer.status_code == 201, newer.text
    assert (await stripe_platform.order(second.json()["order_id"]))["status"] == "expired"
    second = newer

    # The second session is being paid: Stripe refuses to expire it, so no third checkout starts.
    second_id = second.json()["order_id"]
    fake_stripe.paid_sessions[await stripe_platform.session_id(second_id)] = payment_intent_of(second_id)
    third = await stripe_platform.checkout(buyer, coupon=code)
    assert third.status_code == 409 and third.json()["code"] == "checkout_in_progress"
    assert (await stripe_platform.order(second_id))["status"] == "pending"


async def test_the_webhook_racing_the_success_page_fulfils_once(stripe_platform: Platform,
                                                                 fake_stripe: FakeStripe) -> None:
    for _ in range(3):
        buyer = await stripe_platform.new_user()
        order_id = (await stripe_platform.checkout(buyer)).json()["order_id"]
        session_id = await stripe_platform.session_id(order_id)
        confirm_url = f"/api/billing/orders/{order_id}/confirm"
        still_open = await stripe_platform.client.post(confirm_url, headers=await stripe_platform.auth(buyer))
        assert still_open.json()["status"] == "pending"
        fake_stripe.paid_sessions[session_id] = payment_intent_of(order_id)
        event = stripe_platform.stripe_event("checkout.session.completed", order_id, session_id)
        headers = await stripe_platform.auth(buyer)
        results = await asyncio.gather(stripe_platform.client.post(confirm_url, headers=headers),
                                       stripe_platform.deliver(event),
                                       stripe_platform.client.post(confirm_url, headers=headers))
        assert [r.status_code for r in results] == [200, 200, 200]
        assert results[0].json()["status"] == results[2].json()["status"] == "paid"
        assert results[1].json()["outcome"] in ("fulfilled", "already_settled")
        assert len(await stripe_platform.events("billing.order.paid.v1", order_id)) == 1
        assert await stripe_platform.scalar(
            "SELECT count(*) FROM order_audit WHERE order_id = :o AND to_status = 'paid'", o=uuid.UUID(order_id)) == 1
        assert await stripe_platform.scalar("SELECT count(*) FROM receipts WHERE order_id = :o",
                                            o=uuid.UUID(order_id)) == 1


async def test_stripe_refund_pending_then_confirmed_by_webhook_and_refusals(stripe_platform: Platform,
                                                                            fake_stripe: FakeStripe) -> None:
    buyer = await stripe_platform.new_user()
    order_id = (await stripe_platform.checkout(buyer)).json()["order_id"]
    session_id = await stripe_platform.session_id(order_id)
    paid = stripe_platform.stripe_event("checkout.session.completed", order_id, session_id)
    assert (await stripe_platform.deliver(paid)).json()["outcome"] == "fulfilled"
    admin = await stripe_platform.auth(ADMIN)
    url = f"/api/billing/orders/{order_id}/refund"

    with fake_stripe.answering(refund_status="pending"):
        pending = await stripe_platform.client.post(url, json={"reason": "partial", "amount": 900}, headers=admin)
    # Accepted but not returned yet: the order shows no refund until Stripe says the money went back.
    assert (pending.json()["status"], pending.json()["amount_refunded"]) == ("paid", 0)
    refund_id, provider_refund_id = await _the_refund(stripe_platform, fake_stripe, order_id)
    confirmed = stripe_platform.refund_event("refund.updated", order_id, provider_refund_id, 900, "succeeded",
                                             our_refund_id=refund_id)
    assert (await stripe_platform.deliver(confirmed)).json()["outcome"] == "refund_applied"
    assert await stripe_platform.scalar("SELECT status FROM order_refunds WHERE id = :r",
                                        r=uuid.UUID(refund_id)) == "succeeded"
    order = await stripe_platform.order(order_id)
    assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 900)

    with fake_stripe.answering(refuse_refunds=True):
        refused = await stripe_platform.client.post(url, json={"reason": "rest"}, headers=admin)
    assert refused.status_code == 409 and refused.json()["code"] == "refund_refused"
    order = await stripe_platform.order(order_id)
    assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 900)
    assert await stripe_platform.events("billing.order.refunded.v1", order_id) == []

    with fake_stripe.answering(fail_with=503):
        outage = await stripe_platform.client.post(url, json={"reason": "rest", "amount": 100},
                                                   headers={**admin, "Idempotency-Key": "rest-100"})
    assert outage.status_code == 503
    assert await stripe_platform.scalar(
        "SELECT status FROM order_refunds WHERE order_id = :o AND idempotency_key = 'rest-100'",
        o=uuid.UUID(order_id)) == "requested"
    retried = await stripe_platform.client.post(url, json={"reason": "rest", "amount": 100},
                                                headers={**admin, "Idempotency-Key": "rest-100"})
    assert retried.json()["amount_refunded"] == 1000

    # The refused full refund does not block a new one.
    final = await stripe_platform.client.post(url, json={"reason": "rest"}, headers=admin)
    assert (final.json()["status"], final.json()["amount_refunded"]) == ("refunded", 4900), final.text
    assert len(await stripe_platform.events("billing.order.refunded.v1", order_id)) == 1


async def test_erasure_deletes_the_stripe_customer(stripe_platform: Platform, fake_stripe: FakeStripe) -> None:
    buyer = await stripe_platform.new_user()
    order_id = (await stripe_platform.checkout(buyer)).json()["order_id"]
    user_id = await stripe_platform.user_id(buyer)
    customer_id = await stripe_platform.scalar("SELECT provider_customer_id FROM customers WHERE user_id = :u",
                                               u=uuid.UUID(user_id))
    assert customer_id and await stripe_platform.scalar(
        "SELECT provider_customer_id FROM orders WHERE id = :o", o=uuid.UUID(order_id)) == customer_id
    await stripe_platform.publish("auth.user.deleted", {"user_id": user_id, "deleted_at": "2026-11-22T00:00:00Z"})
    [call] = await eventually(lambda: _now(fake_stripe.calls(f"/v1/customers/{customer_id}")), "customer deleted")
    assert call["method"] == "DELETE"
    await eventually(lambda: _no_customer(stripe_platform, user_id), "mapping forgotten")
    assert (await stripe_platform.order(order_id))["status"] == "expired"
    # The open session we ended is expired at Stripe too, so it cannot take money we would refund.
    session_id = await stripe_platform.session_id(order_id)
    await eventually(lambda: _now(session_id in fake_stripe.expired_sessions), "session expired at Stripe")


async def _the_refund(platform: Platform, fake_stripe: FakeStripe, order_id: str) -> tuple[str, str]:
    """The one refund Stripe was asked for on this order: our refund id and Stripe's."""
    [call] = [c for c in fake_stripe.calls("/v1/refunds") if c["form"].get("metadata[order_id]") == order_id]
    refund_id = call["form"]["metadata[refund_id]"]
    provider_refund_id = await platform.scalar("SELECT provider_refund_id FROM order_refunds WHERE id = :r",
                                               r=uuid.UUID(refund_id))
    return refund_id, str(provider_refund_id)


async def _now(value: Any) -> Any:
    return value


async def _no_customer(platform: Platform, user_id: str) -> bool:
    return await platform.scalar("SELECT count(*) FROM customers WHERE user_id = :u", u=uuid.UUID(user_id)) == 0


async def test_a_full_refund_revokes_access_only_once_stripe_returned_the_money(
        stripe_platform: Platform, fake_stripe: FakeStripe) -> None:
    """A refund Stripe accepted as pending can still fail: until it succeeded the learner keeps the
    course (no billing.order.refunded.v1), and one that fails leaves the order paid and refundable."""
    buyer = await stripe_platform.new_user()
    order_id = (await stripe_platform.checkout(buyer)).json()["order_id"]
    paid = stripe_platform.stripe_event("checkout.session.completed", order_id,
                                        await stripe_platform.session_id(order_id))
    assert (await stripe_platform.deliver(paid)).json()["outcome"] == "fulfilled"
    assert await stripe_platform.enrolled_courses(buyer, expect=1) == [str(DEMO_COURSE_ID)]
    admin = await stripe_platform.auth(ADMIN)
    url = f"/api/billing/orders/{order_id}/refund"

    with fake_stripe.answering(refund_status="pending"):
        pending = await stripe_platform.client.post(url, json={"reason": "asked"}, headers=admin)
    assert (pending.json()["status"], pending.json()["amount_refunded"]) == ("paid", 0), pending.text
    assert await stripe_platform.events("billing.order.refunded.v1", order_id) == []
    # Asked again while pending: the same refund, no second call to Stripe and nothing more to refund.
    assert (await stripe_platform.client.post(url, json={"reason": "asked"}, headers=admin)).json() == pending.json()
    assert (await stripe_platform.client.post(url, json={"reason": "x", "amount": 1}, headers=admin)
            ).json()["code"] == "refund_exceeds_remaining"
    refund_id, provider_refund_id = await _the_refund(stripe_platform, fake_stripe, order_id)

    failed = stripe_platform.refund_event("refund.failed", order_id, provider_refund_id, 4900, "failed",
                                          our_refund_id=refund_id)
    assert (await stripe_platform.deliver(failed)).json()["outcome"] == "refund_failed"
    order = await stripe_platform.order(order_id)
    assert (order["status"], order["amount_refunded"], order["refunded_at"]) == ("paid", 0, None)
    assert await stripe_platform.events("billing.order.refunded.v1", order_id) == []
    assert await stripe_platform.enrolled_courses(buyer, expect=1) == [str(DEMO_COURSE_ID)]
    assert await stripe_platform.scalar("SELECT count(*) FROM receipts WHERE order_id = :o AND kind = 'refund'",
                                        o=uuid.UUID(order_id)) == 0

    # A new full refund is possible; once Stripe confirms it, access goes, with one event.
    with fake_stripe.answering(refund_status="pending"):
        again = await stripe_platform.client.post(url, json={"reason": "asked again"}, headers=admin)
    assert again.json()["status"] == "paid", again.text
    second = await stripe_platform.scalar(
        "SELECT provider_refund_id FROM order_refunds WHERE order_id = :o AND status = 'pending'",
        o=uuid.UUID(order_id))
    succeeded = stripe_platform.refund_event("refund.updated", order_id, second, 4900, "succeeded")
    assert (await stripe_platform.deliver(succeeded)).json()["outcome"] == "refund_applied"
    order = await stripe_platform.order(order_id)
    assert (order["status"], order["amount_refunded"]) == ("refunded", 4900)
    assert len(await stripe_platform.events("billing.order.refunded.v1", order_id)) == 1
    assert await stripe_platform.enrolled_courses(buyer, expect=0) == []


async def test_stripe_tax_computes_the_tax_and_the_invoice_shows_what_stripe_charged(
        stripe_platform: Platform, fake_stripe: FakeStripe) -> None:
    buyer = await stripe_platform.new_user()
    response = await stripe_platform.checkout(buyer, key=f"tax-{uuid.uuid4()}", country="fr")
    assert response.status_code == 201, response.text
    order_id = response.json()["order_id"]
    assert (response.json()["tax_source"], response.json()["buyer_country"]) == ("stripe", "FR")
    [call] = [c for c in fake_stripe.calls("/v1/checkout/sessions")
              if c["form"].get("client_reference_id") == order_id]
    form = call["form"]
    assert form["automatic_tax[enabled]"] == "true"
    assert form["line_items[0][price_data][tax_behavior]"] == "inclusive"
    assert form["billing_address_collection"] == "required"
    assert form["customer_update[address]"] == "auto"

    charged = {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 817,
               "breakdown": {"taxes": [{"amount": 817, "taxability_reason": "standard_rated"}]}}
    event = stripe_platform.stripe_event("checkout.session.completed", order_id,
                                         await stripe_platform.session_id(order_id), total_details=charged)
    assert (await stripe_platform.deliver(event)).json()["outcome"] == "fulfilled"
    order = await stripe_platform.order(order_id, buyer)
    assert (order["amount"], order["tax_amount"], order["net_amount"]) == (4900, 817, 4083)
    docs = (await stripe_platform.client.get(f"/api/billing/orders/{order_id}/invoices",
                                             headers=await stripe_platform.auth(buyer))).json()
    assert [(d["tax_source"], d["tax_amount"], d["gross_amount"]) for d in docs] == [("stripe", 817, 4900)]

    # A business with a VAT number of another member state: Stripe reverse-charges, tax 0.
    business = await stripe_platform.new_user()
    b2b = await stripe_platform.checkout(business, key=f"tax-{uuid.uuid4()}", country="FR",
                                         vat_number="FR40303265045")
    b2b_id = b2b.json()["order_id"]
    reverse = {"amount_tax": 0, "breakdown": {"taxes": [{"amount": 0, "taxability_reason": "reverse_charge"}]}}
    event = stripe_platform.stripe_event("checkout.session.completed", b2b_id,
                                         await stripe_platform.session_id(b2b_id), total_details=reverse)
    assert (await stripe_platform.deliver(event)).json()["outcome"] == "fulfilled"
    b2b_order = await stripe_platform.order(b2b_id, business)
    assert (b2b_order["tax_amount"], b2b_order["reverse_charge"], b2b_order["buyer_vat_number"]) == (
        0, True, "FR40303265045")


async def test_the_success_page_records_stripe_tax_from_the_retrieved_session(
        stripe_platform: Platform, fake_stripe: FakeStripe) -> None:
    """What Stripe charged is what the order records (here the tax on top, as with exclusive prices),
    also when the buyer's success page confirms the payment before the webhook (which then changes nothing)."""
    buyer = await stripe_platform.new_user()
    order_id = (await stripe_platform.checkout(buyer, key=f"tax-{uuid.uuid4()}", country="IT")).json()["order_id"]
    session_id = await stripe_platform.session_id(order_id)
    fake_stripe.paid_sessions[session_id] = payment_intent_of(order_id)
    fake_stripe.session_totals[session_id] = {"amount_total": 5978, "currency": "eur",
                                              "total_details": {"amount_tax": 1078}}
    confirmed = await stripe_platform.client.post(f"/api/billing/orders/{order_id}/confirm",
                                                  headers=await stripe_platform.auth(buyer))
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert (body["status"], body["amount"], body["tax_amount"], body["net_amount"]) == ("paid", 5978, 1078, 4900)
    assert body["tax_rate_bp"] == 2200
    [paid] = await stripe_platform.events("billing.order.paid.v1", order_id)
    assert paid["amount"] == 5978  # what was charged
    late = stripe_platform.stripe_event("checkout.session.completed", order_id, session_id, amount=5978,
                                        total_details={"amount_tax": 1})
    assert (await stripe_platform.deliver(late)).json()["outcome"] == "already_settled"
    assert (await stripe_platform.order(order_id, buyer))["tax_amount"] == 1078
