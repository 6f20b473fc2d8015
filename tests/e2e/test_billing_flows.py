"""Billing through the gateway, in both run modes: one open checkout per learner and course, the
local provider's signed webhook, a coupon, partial then full refunds, the admin view and what a
stranger cannot see."""

from __future__ import annotations

import json
import time
import uuid

import httpx

from .test_core_path import eventually, login

DEMO_ADMIN = ("admin@triple.academy", "Admin-Demo-2026!")
DEMO_COURSE = "10000000-0000-4000-8000-000000000001"


def _new_learner(client: httpx.Client) -> dict[str, str]:
    email, password = f"billing-{uuid.uuid4().hex[:8]}@example.com", "a long enough passphrase"
    response = client.post("/api/auth/register", json={"email": email, "password": password, "full_name": "Buyer"})
    assert response.status_code == 201, response.text
    return login(client, email, password)


def _enrolled(client: httpx.Client, learner: dict[str, str]) -> bool:
    items = client.get("/api/catalog/me/enrollments", headers=learner).json()["items"]
    return DEMO_COURSE in [item["course_id"] for item in items]


def test_billing_through_the_gateway(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=15) as client:
        admin = login(client, *DEMO_ADMIN)
        learner = _new_learner(client)
        code = f"E2E{uuid.uuid4().hex[:6]}".upper()
        coupon = client.post("/api/billing/admin/coupons", headers=admin,
                             json={"code": code, "kind": "percent", "percent_off": 10, "max_redemptions": 3})
        assert coupon.status_code == 201, coupon.text

        # Two checkouts with different keys: the second returns the open one (no second payment).
        first = client.post("/api/billing/checkout", json={"course_id": DEMO_COURSE, "coupon_code": code},
                            headers={**learner, "Idempotency-Key": uuid.uuid4().hex})
        assert first.status_code == 201, first.text
        assert (first.json()["amount"], first.json()["discount_amount"]) == (4410, 490)
        second = client.post("/api/billing/checkout", json={"course_id": DEMO_COURSE, "coupon_code": code},
                             headers={**learner, "Idempotency-Key": uuid.uuid4().hex})
        assert second.status_code == 200 and second.json()["order_id"] == first.json()["order_id"]
        order_id, checkout_url = first.json()["order_id"], first.json()["checkout_url"]

        # A forged webhook is refused at the service, whatever the edge.
        forged = json.dumps({"id": "evt_forged", "type": "checkout.session.completed",
                             "data": {"object": {"client_reference_id": order_id, "payment_status": "paid"}}})
        refused = client.post("/api/billing/webhooks/stripe", content=forged,
                              headers={"Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}",
                                       "Content-Type": "application/json"})
        assert refused.status_code == 400

        paid = client.post(checkout_url + "/pay")
        assert paid.status_code == 200 and "Payment received" in paid.text
        order_url = f"/api/billing/orders/{order_id}"
        eventually(lambda: client.get(order_url, headers=learner).json()["status"] == "paid", what="order paid")
        eventually(lambda: _enrolled(client, learner), what="enrollment granted")
        stranger = _new_learner(client)
        assert client.get(order_url, headers=stranger).status_code == 404
        # The invoice: numbered once, a PDF for the buyer and admins, nobody else.
        invoice = client.get(f"{order_url}/invoice", headers=learner)
        assert invoice.status_code == 200 and invoice.headers["content-type"] == "application/pdf"
        assert invoice.content.startswith(b"%PDF-")
        assert client.get(f"{order_url}/invoice", headers=admin).status_code == 200
        assert client.get(f"{order_url}/invoice", headers=stranger).status_code == 404
        again = client.post("/api/billing/checkout", json={"course_id": DEMO_COURSE}, headers=learner)
        assert again.status_code == 409 and again.json()["code"] == "already_enrolled"

        # A partial refund keeps access; refunding the rest revokes it.
        partial = client.post(f"{order_url}/refund", json={"reason": "goodwill", "amount": 410},
                              headers={**admin, "Idempotency-Key": uuid.uuid4().hex})
        assert partial.status_code == 200, partial.text
        assert (partial.json()["status"], partial.json()["amount_refunded"]) == ("partially_refunded", 410)
        assert _enrolled(client, learner)
        documents = client.get(f"{order_url}/invoices", headers=learner).json()
        assert [(d["kind"], d["gross_amount"]) for d in documents] == [("invoice", 4410), ("credit_note", 410)]
        assert documents[1]["credited_invoice_number"] == documents[0]["invoice_number"]
        credit_note = client.get(f"{order_url}/invoices/{documents[1]['invoice_number']}", headers=learner)
        assert credit_note.status_code == 200 and credit_note.content.startswith(b"%PDF-")
        listing = client.get("/api/billing/admin/orders", headers=admin, params={"coupon_code": code}).json()
        assert [item["order_id"] for item in listing["items"]] == [order_id]
        # No country at checkout: the seller's (DE, 19 % inside 44.10 = 7.04; 0.65 of it credited back).
        assert listing["totals"] == [{"currency": "EUR", "orders": 1, "gross_amount": 4410,
                                      "discount_amount": 490, "refunded_amount": 410, "net_amount": 4000,
                                      "tax_amount": 639, "net_of_tax_amount": 3361}]
        rest = client.post(f"{order_url}/refund", json={"reason": "requested_by_customer"}, headers=admin)
        assert (rest.json()["status"], rest.json()["amount_refunded"]) == ("refunded", 4410)
        eventually(lambda: not _enrolled(client, learner), what="enrollment revoked")
        mine = client.get("/api/billing/orders", headers=learner).json()
        assert mine["total"] == 1 and mine["items"][0]["status"] == "refunded"


def test_self_refund_reads_playback_progress(base_url: str) -> None:
    """The learner's own refund, with the watched share from playback's real internal endpoint."""
    with httpx.Client(base_url=base_url, timeout=15) as client:
        learner = _new_learner(client)
        checkout = client.post("/api/billing/checkout", json={"course_id": DEMO_COURSE}, headers=learner)
        assert checkout.status_code == 201, checkout.text
        assert client.post(checkout.json()["checkout_url"] + "/pay").status_code == 200
        order_url = f"/api/billing/orders/{checkout.json()['order_id']}"
        eventually(lambda: client.get(order_url, headers=learner).json()["status"] == "paid", what="order paid")
        eventually(lambda: _enrolled(client, learner), what="enrollment granted")
        refund = client.post(f"{order_url}/self-refund", json={"reason": "not what I expected"}, headers=learner)
        assert refund.status_code == 200, refund.text
        assert (refund.json()["status"], refund.json()["amount_refunded"]) == ("refunded", 4900)
        eventually(lambda: not _enrolled(client, learner), what="enrollment revoked")


def test_tax_at_checkout_and_instructor_revenue(base_url: str) -> None:
    """A French business's reverse-charged purchase and its invoice, then the course's revenue for its
    instructor (catalog's internal list decides the courses), as JSON and CSV; learners get a 403."""
    with httpx.Client(base_url=base_url, timeout=15) as client:
        learner = _new_learner(client)
        refused = client.post("/api/billing/checkout", headers=learner,
                              json={"course_id": DEMO_COURSE, "country": "FR", "vat_number": "FR00000000000"})
        assert refused.status_code == 400 and refused.json()["code"] == "invalid_vat_number"
        checkout = client.post("/api/billing/checkout", headers=learner,
                               json={"course_id": DEMO_COURSE, "country": "FR", "vat_number": "FR40303265045"})
        assert checkout.status_code == 201, checkout.text
        assert (checkout.json()["tax_amount"], checkout.json()["reverse_charge"]) == (0, True)
        assert client.post(checkout.json()["checkout_url"] + "/pay").status_code == 200
        order_url = f"/api/billing/orders/{checkout.json()['order_id']}"
        eventually(lambda: client.get(order_url, headers=learner).json()["status"] == "paid", what="order paid")
        [invoice] = client.get(f"{order_url}/invoices", headers=learner).json()
        assert (invoice["reverse_charge"], invoice["buyer_country"], invoice["gross_amount"]) == (True, "FR", 4900)

        instructor = login(client, "instructor@triple.academy", "Instructor-Demo-2026!")
        report = client.get("/api/billing/revenue", headers=instructor, params={"course_id": DEMO_COURSE})
        assert report.status_code == 200, report.text
        assert report.json()["items"] and all(line["course_id"] == DEMO_COURSE for line in report.json()["items"])
        assert sum(line["units_sold"] for line in report.json()["items"]) >= 1
        csv = client.get("/api/billing/revenue", headers=instructor, params={"format": "csv"})
        assert csv.status_code == 200 and csv.text.startswith("course_id,course_title,month,currency,units_sold")
        assert client.get("/api/billing/revenue", headers=learner).status_code == 403
