"""Money paths with the local provider on real PostgreSQL: coupons under concurrency, duplicate
payments, refunds (partial, full, self-service, from the provider, out of order), receipts, erasure,
session expiry and the admin view."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from billing_testkit import ADMIN, DEMO_COURSE_ID, FREE_COURSE_ID, Platform, eventually

from billing.resources import BillingResources
from billing.worker import BillingWorker
from common.db import utcnow
from common.mail import Mail
from common.testing import mail_text

PAID = "billing.order.paid.v1"
REFUNDED = "billing.order.refunded.v1"


async def _coupon(platform: Platform, **fields: Any) -> dict[str, Any]:
    body = {"code": f"C{uuid.uuid4().hex[:8]}", "kind": "percent", "percent_off": 20, **fields}
    response = await platform.client.post("/api/billing/admin/coupons", json=body,
                                          headers=await platform.auth(ADMIN))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _pay(platform: Platform, order_id: str) -> str:
    return await platform.pay(order_id)


async def _paid_order(platform: Platform, who: tuple[str, str] | None = None) -> tuple[tuple[str, str], str]:
    return await platform.paid_order(who)


async def _order_if(platform: Platform, order_id: str, status: str) -> dict[str, Any] | None:
    order = await platform.order(order_id)
    return order if order["status"] == status else None


def _worker(platform: Platform) -> BillingWorker:
    worker = platform.runtime.resources_as(BillingResources).worker
    return worker


async def _refund(platform: Platform, order_id: str, amount: int | None = None,
                  key: str | None = None) -> Any:
    body: dict[str, Any] = {"reason": "goodwill"}
    if amount is not None:
        body["amount"] = amount
    headers = await platform.auth(ADMIN)
    if key:
        headers["Idempotency-Key"] = key
    return await platform.client.post(f"/api/billing/orders/{order_id}/refund", json=body, headers=headers)


async def test_coupons_price_the_order_and_are_validated(platform: Platform) -> None:
    admin = await platform.auth(ADMIN)
    for bad in ({"code": "BAD1", "kind": "percent", "percent_off": 120},
                {"code": "BAD2", "kind": "fixed", "amount_off": 500},  # no currency
                {"code": "BAD3", "kind": "percent", "percent_off": 10, "amount_off": 5},
                {"code": "BAD4", "kind": "fixed", "amount_off": 9.5, "currency": "EUR"}):
        assert (await platform.client.post("/api/billing/admin/coupons", json=bad, headers=admin)
                ).status_code == 422, bad
    student = await platform.new_user()
    assert (await platform.client.post("/api/billing/admin/coupons", headers=await platform.auth(student),
                                       json={"code": "MINE", "kind": "percent", "percent_off": 99})
            ).status_code == 403

    percent = await _coupon(platform, percent_off=15, course_id=str(DEMO_COURSE_ID))
    buyer = await platform.new_user()
    response = await platform.checkout(buyer, coupon=percent["code"].lower())
    assert response.status_code == 201, response.text
    assert (response.json()["amount"], response.json()["discount_amount"]) == (4165, 735)  # 15% of 4900, half up
    order = await platform.order(response.json()["order_id"])
    assert (order["subtotal_amount"], order["coupon_code"]) == (4900, percent["code"])
    page = await platform.client.get(response.json()["checkout_url"].removeprefix("http://testserver"))
    assert "41.65 EUR" in page.text

    fixed = await _coupon(platform, kind="fixed", percent_off=None, amount_off=900, currency="EUR")
    response = await platform.checkout(await platform.new_user(), coupon=fixed["code"])
    assert (response.json()["amount"], response.json()["discount_amount"]) == (4000, 900)

    refusals = {
        (await _coupon(platform, kind="fixed", percent_off=None, amount_off=900, currency="USD"))["code"]:
            "coupon_currency_mismatch",
        (await _coupon(platform, course_id=str(uuid.uuid4())))["code"]: "coupon_not_applicable",
        (await _coupon(platform, valid_until=(utcnow() - dt.timedelta(minutes=1)).isoformat()))["code"]:
            "coupon_not_valid",
        (await _coupon(platform, valid_from=(utcnow() + dt.timedelta(days=1)).isoformat()))["code"]:
            "coupon_not_valid",
        (await _coupon(platform, percent_off=100))["code"]: "coupon_covers_full_price",
    }
    refused_buyer = await platform.new_user()
    for code, expected in refusals.items():
        refused = await platform.checkout(refused_buyer, coupon=code)
        assert refused.status_code == 409 and refused.json()["code"] == expected, refused.text
    unknown = await platform.checkout(refused_buyer, coupon="NOSUCHCODE")
    assert unknown.status_code == 404 and unknown.json()["code"] == "coupon_not_found"
    listing = await platform.client.get("/api/billing/orders", headers=await platform.auth(refused_buyer))
    assert listing.json()["total"] == 0  # nothing half-written

    # Deactivated coupons are refused; the course stays free of coupons on free courses.
    deactivated = await platform.client.put(f"/api/billing/admin/coupons/{percent['coupon_id']}/active",
                                            json={"active": False}, headers=admin)
    assert deactivated.status_code == 200 and deactivated.json()["active"] is False
    assert (await platform.checkout(refused_buyer, coupon=percent["code"])).json()["code"] == "coupon_not_valid"
    assert (await platform.checkout(refused_buyer, FREE_COURSE_ID, coupon=fixed["code"])).status_code == 409


async def test_max_redemptions_hold_under_20_concurrent_checkouts(platform: Platform) -> None:
    coupon = await _coupon(platform, max_redemptions=5)
    buyers = await asyncio.gather(*(platform.new_user() for _ in range(20)))
    for buyer in buyers:
        await platform.login(*buyer)
    responses = await asyncio.gather(*(platform.checkout(b, key=f"cap-{uuid.uuid4()}", coupon=coupon["code"])
                                       for b in buyers))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 5 + [409] * 15, [r.text for r in responses if r.status_code not in (201, 409)]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"coupon_exhausted"}
    assert await platform.scalar("SELECT redemptions FROM coupons WHERE code = :c", c=coupon["code"]) == 5
    assert await platform.scalar("SELECT count(*) FROM orders WHERE coupon_code = :c", c=coupon["code"]) == 5

    # An expired checkout gives its redemption back; paying it after all takes it again.
    order_id = next(r.json()["order_id"] for r in responses if r.status_code == 201)
    session_id = await platform.session_id(order_id)
    expired = platform.stripe_event("checkout.session.expired", order_id, session_id, payment_status="unpaid")
    assert (await platform.deliver(expired)).json()["outcome"] == "expired"
    assert await platform.scalar("SELECT redemptions FROM coupons WHERE code = :c", c=coupon["code"]) == 4
    late = platform.stripe_event("checkout.session.completed", order_id, session_id, amount=3920)
    assert (await platform.deliver(late)).json()["outcome"] == "fulfilled"
    assert await platform.scalar("SELECT redemptions FROM coupons WHERE code = :c", c=coupon["code"]) == 5


async def test_a_second_payment_for_an_owned_course_is_refunded_without_events(platform: Platform) -> None:
    buyer = await platform.new_user()
    first = (await platform.checkout(buyer, key=f"a-{uuid.uuid4()}")).json()["order_id"]
    first_session = await platform.session_id(first)
    # A new coupon supersedes the open checkout (expired), so a second order exists.
    coupon = await _coupon(platform, percent_off=10)
    second = await platform.checkout(buyer, key=f"b-{uuid.uuid4()}", coupon=coupon["code"])
    assert second.status_code == 201 and second.json()["order_id"] != first
    assert (await platform.order(first))["status"] == "expired"
    second_id = second.json()["order_id"]

    # Both sessions get paid anyway (the first one's completion was in flight): one keeps access.
    late_first = platform.stripe_event("checkout.session.completed", first, first_session)
    assert (await platform.deliver(late_first)).json()["outcome"] == "fulfilled"
    assert await _pay(platform, second_id) == "fulfilled"
    assert len(await platform.events(PAID, first)) == 1
    assert await platform.events(PAID, second_id) == []
    assert await platform.events(REFUNDED, second_id) == []
    # The worker refunds the duplicate right after the commit.
    duplicate = await eventually(lambda: _order_if(platform, second_id, "refunded"), "duplicate refunded")
    assert (duplicate["status"], duplicate["amount_refunded"]) == ("refunded", 4410)
    assert await platform.scalar("SELECT kind FROM order_refunds WHERE order_id = :o", o=uuid.UUID(second_id)) \
        == "duplicate"
    assert await platform.enrolled_courses(buyer, expect=1) == [str(DEMO_COURSE_ID)]
    mail = await platform.mailbox.wait_for(buyer[0], subject_contains="Refund")
    assert "44.10 EUR" in mail_text(mail)


async def test_a_refund_event_before_the_completion_ends_refunded_and_not_enrolled(platform: Platform) -> None:
    buyer = await platform.new_user()
    order_id = (await platform.checkout(buyer)).json()["order_id"]
    early_refund = platform.charge_refunded_event(order_id, 4900)
    assert (await platform.deliver(early_refund)).json()["outcome"] == "deferred"
    assert (await platform.order(order_id))["status"] == "pending"
    assert await _pay(platform, order_id) == "fulfilled"
    order = await platform.order(order_id)
    assert (order["status"], order["amount_refunded"]) == ("refunded", 4900)
    assert len(await platform.events(PAID, order_id)) == 1
    assert len(await platform.events(REFUNDED, order_id)) == 1
    assert await platform.enrolled_courses(buyer, expect=0) == []
    assert (await platform.deliver(early_refund)).json()["outcome"] == "duplicate"
    audit = await platform.scalar(
        "SELECT string_agg(to_status || ':' || coalesce(provider_event_id, '-'), ',' ORDER BY at) "
        "FROM order_audit WHERE order_id = :o", o=uuid.UUID(order_id))
    assert audit.startswith("pending:-,paid:evt_test_") and ",refunded:evt_test_" in audit


async def test_partial_then_full_refund_and_a_refund_that_fails_later(platform: Platform) -> None:
    buyer, order_id = await _paid_order(platform)
    await platform.mailbox.wait_for(buyer[0], subject_contains="Receipt")
    key = f"partial-{uuid.uuid4()}"
    partial = await _refund(platform, order_id, 1000, key)
    assert partial.status_code == 200, partial.text
    assert (partial.json()["status"], partial.json()["amount_refunded"]) == ("partially_refunded", 1000)
    again = await _refund(platform, order_id, 1000, key)
    assert again.json() == partial.json()  # same key: the same refund
    too_much = await _refund(platform, order_id, 3901)
    assert too_much.status_code == 409 and too_much.json()["refundable_amount"] == 3900
    assert await platform.events(REFUNDED, order_id) == []
    assert await platform.enrolled_courses(buyer, expect=1) == [str(DEMO_COURSE_ID)]  # partial keeps access

    rest = await _refund(platform, order_id)
    assert (rest.json()["status"], rest.json()["amount_refunded"]) == ("refunded", 4900)
    assert len(await platform.events(REFUNDED, order_id)) == 1
    assert await platform.enrolled_courses(buyer, expect=0) == []
    assert (await _refund(platform, order_id)).json() == rest.json()
    assert (await _refund(platform, order_id, 1)).status_code == 409
    mail = await platform.mailbox.wait_for(buyer[0], subject_contains="Refund")
    assert "39.00 EUR" in mail_text(mail) or "10.00 EUR" in mail_text(mail)

    # The provider later reports the first refund failed: that money is the learner's no more.
    partial_refund_id = await platform.scalar(
        "SELECT id FROM order_refunds WHERE order_id = :o AND amount = 1000", o=uuid.UUID(order_id))
    failed = platform.refund_event("refund.failed", order_id, f"re_local_{partial_refund_id.hex}", 1000, "failed",
                                   our_refund_id=str(partial_refund_id))
    assert (await platform.deliver(failed)).json()["outcome"] == "refund_failed"
    order = await platform.order(order_id)
    assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 3900)
    # Out of order: the older "succeeded" update after the failure changes nothing.
    stale = platform.refund_event("refund.updated", order_id, f"re_local_{partial_refund_id.hex}", 1000,
                                  "succeeded", our_refund_id=str(partial_refund_id))
    assert (await platform.deliver(stale)).json()["outcome"] == "refund_recorded"
    assert (await platform.order(order_id))["amount_refunded"] == 3900


async def test_refunds_made_at_the_provider_are_recorded(platform: Platform) -> None:
    buyer, order_id = await _paid_order(platform)
    dashboard = platform.charge_refunded_event(order_id, 1500, refunds=[
        {"id": "re_dash_1", "object": "refund", "amount": 1500, "status": "succeeded", "metadata": {}}])
    assert (await platform.deliver(dashboard)).json()["outcome"] == "refund_applied"
    assert (await platform.order(order_id))["status"] == "partially_refunded"
    # The running total grows with a second dashboard refund the event does not list.
    full = platform.charge_refunded_event(order_id, 4900)
    assert (await platform.deliver(full)).json()["outcome"] == "refund_applied"
    order = await platform.order(order_id)
    assert (order["status"], order["amount_refunded"]) == ("refunded", 4900)
    assert await platform.count("order_refunds", order_id) == 2
    assert len(await platform.events(REFUNDED, order_id)) == 1
    assert (await platform.deliver(dashboard)).json()["outcome"] == "duplicate"
    # A stale snapshot (a new event with the smaller running total) is recorded and changes nothing.
    stale = platform.charge_refunded_event(order_id, 1500, refunds=[
        {"id": "re_dash_1", "object": "refund", "amount": 1500, "status": "succeeded", "metadata": {}}])
    assert (await platform.deliver(stale)).json()["outcome"] == "refund_recorded"
    assert (await platform.order(order_id))["amount_refunded"] == 4900
    assert await platform.enrolled_courses(buyer, expect=0) == []


async def test_refund_events_after_the_running_total_are_not_counted_twice(platform: Platform) -> None:
    """charge.refunded (a total, no refund ids) before the refund events of the same Dashboard refunds:
    each refund event is matched to the money already recorded, and the order's total stays Stripe's."""
    buyer, order_id = await _paid_order(platform)
    assert (await platform.deliver(platform.charge_refunded_event(order_id, 1500))).json()["outcome"] \
        == "refund_applied"
    first = platform.refund_event("refund.created", order_id, "re_late_1", 1500, "succeeded")
    assert (await platform.deliver(first)).json()["outcome"] == "refund_recorded"
    order = await platform.order(order_id)
    assert (order["status"], order["amount_refunded"]) == ("partially_refunded", 1500)
    assert await platform.count("order_refunds", order_id) == 1

    # Two more refunds summed up in one running total, then their own events one by one.
    assert (await platform.deliver(platform.charge_refunded_event(order_id, 3500))).json()["outcome"] \
        == "refund_recorded"
    assert (await platform.order(order_id))["amount_refunded"] == 3500
    for refund_id, amount in (("re_late_2", 1200), ("re_late_3", 800)):
        event = platform.refund_event("refund.updated", order_id, refund_id, amount, "succeeded")
        assert (await platform.deliver(event)).json()["outcome"] == "refund_recorded"
        assert (await platform.order(order_id))["amount_refunded"] == 3500
    assert await platform.scalar(
        "SELECT string_agg(provider_refund_id || ':' || amount, ',' ORDER BY provider_refund_id) "
        "FROM order_refunds WHERE order_id = :o", o=uuid.UUID(order_id)) \
        == "re_late_1:1500,re_late_2:1200,re_late_3:800"
    assert await platform.enrolled_courses(buyer, expect=1) == [str(DEMO_COURSE_ID)]


async def test_self_refund_policy(platform: Platform) -> None:
    buyer, order_id = await _paid_order(platform)
    url = f"/api/billing/orders/{order_id}/self-refund"
    stranger = await platform.new_user()
    assert (await platform.client.post(url, json={"reason": "x"}, headers=await platform.auth(stranger))
            ).status_code == 404

    # The watched share comes from playback's real /internal/progress (30% or more: no self-refund).
    for share in (0.45, 0.3):
        await platform.watch(buyer, share)
        mostly = await platform.client.post(url, json={"reason": "meh"}, headers=await platform.auth(buyer))
        assert mostly.status_code == 409 and mostly.json()["code"] == "course_mostly_watched", (share, mostly.text)

    await platform.watch(buyer, 0.29)
    platform.playback_outage.down = True
    try:
        down = await platform.client.post(url, json={"reason": "meh"}, headers=await platform.auth(buyer))
    finally:
        platform.playback_outage.down = False
    assert down.status_code == 503 and down.json()["code"] == "progress_unavailable"
    assert (await platform.order(order_id))["status"] == "paid"

    granted = await platform.client.post(url, json={"reason": "not for me"}, headers=await platform.auth(buyer))
    assert granted.status_code == 200, granted.text
    assert granted.json()["status"] == "refunded"
    assert len(await platform.events(REFUNDED, order_id)) == 1
    repeat = await platform.client.post(url, json={"reason": "again"}, headers=await platform.auth(buyer))
    assert repeat.json() == granted.json()

    late_buyer, late_order = await _paid_order(platform)
    async with platform.billing_db.transaction() as session:
        await session.execute(sa.text("UPDATE orders SET paid_at = paid_at - interval '15 days' WHERE id = :o"),
                              {"o": uuid.UUID(late_order)})
    closed = await platform.client.post(f"/api/billing/orders/{late_order}/self-refund", json={"reason": "late"},
                                        headers=await platform.auth(late_buyer))
    assert closed.status_code == 409 and closed.json()["code"] == "refund_window_closed"


async def test_receipts_go_to_the_address_and_name_auth_knows(platform: Platform) -> None:
    """Pay on the local page and refund, then read both mails off the real SMTP server: the address
    and the name come from auth's real /internal/users/{id}, the amounts from the order."""
    name = f"Ada Receipt {uuid.uuid4().hex[:6]}"
    buyer = await platform.new_user(full_name=name)
    checkout = await platform.checkout(buyer)
    order_id = checkout.json()["order_id"]
    page = await platform.client.post(checkout.json()["checkout_url"].removeprefix("http://testserver") + "/pay")
    assert "Payment received" in page.text, page.text
    receipt = await platform.mailbox.wait_for(buyer[0], subject_contains="Receipt for Protected Video Streaming 101")
    text = mail_text(receipt)
    assert f"Hello {name}," in text and "Paid:     49.00 EUR" in text and order_id in text, text
    # Marked sent (with its address) just after the SMTP server took it.
    await eventually(lambda: _receipts_sent(platform, order_id, 1), "payment receipt marked sent")
    assert await platform.scalar("SELECT recipient FROM receipts WHERE order_id = :o AND kind = 'payment'",
                                 o=uuid.UUID(order_id)) == buyer[0]

    refunded = await _refund(platform, order_id)
    assert refunded.json()["status"] == "refunded", refunded.text
    refund_mail = await platform.mailbox.wait_for(buyer[0], subject_contains="Refund for Protected Video")
    text = mail_text(refund_mail)
    assert f"Hello {name}," in text and "We refunded 49.00 EUR" in text and order_id in text, text
    await eventually(lambda: _receipts_sent(platform, order_id, 2), "both receipts marked sent")
    assert len([m for m in platform.mailbox.messages if m["To"] == buyer[0]]) == 2


async def _receipts_sent(platform: Platform, order_id: str, expected: int) -> bool:
    """The mail reaches the server just before the worker marks its row sent."""
    sent = await platform.scalar("SELECT count(*) FROM receipts WHERE order_id = :o AND status = 'sent'",
                                 o=uuid.UUID(order_id))
    return bool(sent == expected)


class FailingMailer:
    async def send(self, mail: Mail) -> None:
        raise ConnectionRefusedError("smtp is down")


async def test_a_failed_receipt_never_touches_the_payment_and_is_retried(platform: Platform) -> None:
    mailer = platform.runtime.mailer
    platform.runtime.mailer = FailingMailer()
    try:
        buyer, order_id = await _paid_order(platform)
        await eventually(lambda: platform.scalar("SELECT attempts FROM receipts WHERE order_id = :o",
                                                 o=uuid.UUID(order_id)), "a failed send attempt")
    finally:
        platform.runtime.mailer = mailer
    assert (await platform.order(order_id))["status"] == "paid"
    assert len(await platform.events(PAID, order_id)) == 1
    await _worker(platform).run_once(now=utcnow() + dt.timedelta(hours=2))
    mail = await platform.mailbox.wait_for(buyer[0], subject_contains="Receipt")
    assert "49.00 EUR" in mail_text(mail) and order_id in mail_text(mail)
    assert await platform.scalar("SELECT status FROM receipts WHERE order_id = :o", o=uuid.UUID(order_id)) == "sent"
    assert len([m for m in platform.mailbox.messages if m["To"] == buyer[0]]) == 1


async def test_local_sessions_expire_through_the_signed_webhook(platform: Platform) -> None:
    buyer = await platform.new_user()
    order_id = (await platform.checkout(buyer)).json()["order_id"]
    worker = _worker(platform)
    await worker.expire_local_sessions(utcnow())
    assert (await platform.order(order_id))["status"] == "pending"  # not yet
    ttl = dt.timedelta(seconds=platform.settings.checkout_session_ttl_seconds + 1)
    await worker.expire_local_sessions(utcnow() + ttl)
    assert (await platform.order(order_id))["status"] == "expired"
    event_id = await platform.scalar("SELECT provider_event_id FROM order_audit WHERE order_id = :o AND "
                                     "to_status = 'expired'", o=uuid.UUID(order_id))
    assert event_id.startswith("evt_local_")
    page = await platform.client.post(f"/api/billing/local-checkout/{await platform.session_id(order_id)}/pay")
    assert "Nothing to pay" in page.text
    assert (await platform.checkout(buyer)).status_code == 201  # a new checkout can start


async def test_erasure_anonymises_orders_and_keeps_the_accounting(platform: Platform) -> None:
    buyer, paid_id = await _paid_order(platform)
    await platform.mailbox.wait_for(buyer[0], subject_contains="Receipt")
    user_id = await platform.user_id(buyer)
    await _refund(platform, paid_id, 500)
    # Auth erases the account (its own auth.user.deleted.v1 reaches billing); the event again is a no-op.
    erased = await platform.client.request("DELETE", "/api/auth/me", json={"password": buyer[1]},
                                           headers=await platform.auth(buyer))
    assert erased.status_code == 204, erased.text
    gone = await platform.runtime.client("auth").get(f"/internal/users/{user_id}")
    assert gone.status_code == 404  # what the receipt sender reads as "erased"
    await platform.publish("auth.user.deleted", {"user_id": user_id, "deleted_at": utcnow().isoformat()})
    await platform.publish("auth.user.deleted", {"user_id": user_id, "deleted_at": utcnow().isoformat()})
    assert await platform.scalar("SELECT anonymized_at IS NOT NULL FROM orders WHERE id = :o", o=uuid.UUID(paid_id))
    assert await platform.scalar("SELECT count(*) FROM receipts WHERE order_id = :o AND recipient IS NOT NULL",
                                 o=uuid.UUID(paid_id)) == 0
    assert await platform.scalar("SELECT reason FROM order_refunds WHERE order_id = :o", o=uuid.UUID(paid_id)) \
        == "[erased]"
    order = await platform.order(paid_id)
    assert (order["amount"], order["currency"], order["amount_refunded"]) == (4900, "EUR", 500)
    assert order["paid_at"] and await platform.scalar(
        "SELECT provider_payment_id FROM orders WHERE id = :o", o=uuid.UUID(paid_id))

    # An open checkout of an erased user ends; paying it anyway refunds it (nobody to give access to).
    leaving = await platform.new_user()
    pending_id = (await platform.checkout(leaving)).json()["order_id"]
    session_id = await platform.session_id(pending_id)
    leaving_id = await platform.user_id(leaving)
    await platform.publish("auth.user.deleted", {"user_id": leaving_id, "deleted_at": utcnow().isoformat()})
    assert (await platform.order(pending_id))["status"] == "expired"
    late = platform.stripe_event("checkout.session.completed", pending_id, session_id)
    assert (await platform.deliver(late)).json()["outcome"] == "fulfilled"
    assert await platform.events(PAID, pending_id) == []
    await eventually(lambda: _order_if(platform, pending_id, "refunded"), "erased buyer's payment refunded")

    # The erasure event also revoked the erased accounts' tokens at billing: no checkout after it.
    for erased in (buyer, leaving):
        assert (await platform.checkout(erased, key=f"after-{uuid.uuid4()}")).json()["code"] == "token_revoked"

    # A checkout opened while the erasure was being applied (the erasure did not see it): its payment
    # gives nobody access, so it is refunded instead of fulfilled.
    racer = await platform.new_user()
    racing_id = (await platform.checkout(racer)).json()["order_id"]
    async with platform.billing_db.transaction() as session:
        await session.execute(sa.text("INSERT INTO erased_users (user_id, erased_at) VALUES (:u, now())"),
                              {"u": uuid.UUID(await platform.user_id(racer))})
    assert await _pay(platform, racing_id) == "fulfilled"
    assert await platform.events(PAID, racing_id) == []
    await eventually(lambda: _order_if(platform, racing_id, "refunded"), "racing payment refunded")


async def test_admin_list_filters_and_totals(platform: Platform) -> None:
    coupon = await _coupon(platform, percent_off=50)
    buyer = await platform.new_user()
    response = await platform.checkout(buyer, coupon=coupon["code"])
    order_id = response.json()["order_id"]
    assert await _pay(platform, order_id) == "fulfilled"
    await _refund(platform, order_id, 450)
    admin = await platform.auth(ADMIN)
    listing = await platform.client.get("/api/billing/admin/orders", headers=admin,
                                        params={"coupon_code": coupon["code"].lower()})
    assert listing.status_code == 200, listing.text
    body = listing.json()
    assert body["total"] == 1 and body["items"][0]["order_id"] == order_id
    assert body["items"][0]["user_id"] == await platform.user_id(buyer)
    assert body["totals"] == [{"currency": "EUR", "orders": 1, "gross_amount": 2450, "discount_amount": 2450,
                               "refunded_amount": 450, "net_amount": 2000,
                               "tax_amount": 319, "net_of_tax_amount": 1681}]
    by_status = await platform.client.get("/api/billing/admin/orders", headers=admin,
                                          params={"status": "partially_refunded", "page_size": 100})
    assert order_id in [item["order_id"] for item in by_status.json()["items"]]
    assert all(item["status"] == "partially_refunded" for item in by_status.json()["items"])
    everything = (await platform.client.get("/api/billing/admin/orders", headers=admin)).json()
    eur = next(t for t in everything["totals"] if t["currency"] == "EUR")
    assert eur["net_amount"] == eur["gross_amount"] - eur["refunded_amount"] and eur["orders"] >= 1
    assert (await platform.client.get("/api/billing/admin/orders", headers=await platform.auth(buyer))
            ).status_code == 403
    assert (await platform.client.get("/api/billing/admin/orders", headers=admin, params={"status": "lost"})
            ).status_code == 422

