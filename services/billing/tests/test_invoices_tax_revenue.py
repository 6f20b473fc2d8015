"""Invoices, tax and instructor revenue on real PostgreSQL: one gap-free series per year under
concurrent payments and webhook replays, PDFs for the buyer and admins only, attached to the
receipt mails, credit notes that add up to the invoice, numbers never reused after an erasure;
VAT by the buyer's country with reverse charge; revenue per course and month for its instructors."""

from __future__ import annotations

import asyncio
import io
import uuid
from email.message import EmailMessage
from typing import Any

import sqlalchemy as sa
from billing_testkit import ADMIN, DEMO_COURSE_ID, Platform, eventually
from pypdf import PdfReader

from billing import invoices
from billing.models import Order
from common.db import utcnow
from common.errors import Conflict
from common.testing import mail_text


def pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def attachment(mail: EmailMessage) -> tuple[str, bytes]:
    parts = [part for part in mail.iter_attachments()]
    assert len(parts) == 1, [p.get_filename() for p in parts]
    return str(parts[0].get_filename()), bytes(parts[0].get_content())


async def documents(platform: Platform, order_id: str, who: tuple[str, str] = ADMIN) -> list[dict[str, Any]]:
    response = await platform.client.get(f"/api/billing/orders/{order_id}/invoices", headers=await platform.auth(who))
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


async def series_numbers(platform: Platform, prefix: str) -> list[int]:
    async with platform.billing_db.session() as session:
        return list(await session.scalars(sa.text("SELECT number FROM invoices WHERE series = :s ORDER BY number"),
                                          {"s": f"{prefix}-{utcnow().year}"}))


async def test_invoice_issued_once_downloadable_by_buyer_and_admin_and_mailed(platform: Platform) -> None:
    buyer = await platform.new_user("Zoë Invoice-Reader")
    response = await platform.checkout(buyer, key=f"t-{uuid.uuid4()}")
    order_id = response.json()["order_id"]
    headers = await platform.auth(buyer)
    unpaid = await platform.client.get(f"/api/billing/orders/{order_id}/invoice", headers=headers)
    assert unpaid.status_code == 404 and unpaid.json()["code"] == "invoice_not_found"

    event_id = f"evt_test_{uuid.uuid4().hex}"
    assert await platform.pay(order_id, event_id=event_id) == "fulfilled"
    assert await platform.pay(order_id, event_id=event_id) == "duplicate"  # the same event, replayed
    assert await platform.pay(order_id) == "already_settled"  # another event for the same payment
    docs = await documents(platform, order_id, buyer)
    assert len(docs) == 1 and docs[0]["kind"] == "invoice"
    number = docs[0]["invoice_number"]
    assert number.startswith(f"INV-{utcnow().year}-") and len(number) == len("INV-2026-000001")
    # No country given: the seller's (DE, 19 % inside the price).
    assert (docs[0]["net_amount"], docs[0]["tax_amount"], docs[0]["gross_amount"]) == (4118, 782, 4900)

    pdf = await platform.client.get(f"/api/billing/orders/{order_id}/invoice", headers=headers)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert f'filename="{number}.pdf"' in pdf.headers["content-disposition"]
    text = pdf_text(pdf.content)
    for expected in (number, "Zoë Invoice-Reader", "Protected Video Streaming 101", "49.00 EUR", "Triple Academy"):
        assert expected in text, expected
    admin_pdf = await platform.client.get(f"/api/billing/orders/{order_id}/invoices/{number}",
                                          headers=await platform.auth(ADMIN))
    assert admin_pdf.status_code == 200 and number in pdf_text(admin_pdf.content)

    stranger = await platform.auth(await platform.new_user())
    for path in ("invoice", "invoices", f"invoices/{number}"):
        refused = await platform.client.get(f"/api/billing/orders/{order_id}/{path}", headers=stranger)
        assert refused.status_code == 404 and refused.json()["code"] == "order_not_found", path
    bad = await platform.client.get(f"/api/billing/orders/{order_id}/invoices/INV-1", headers=headers)
    assert bad.status_code == 422

    mail = await platform.mailbox.wait_for(buyer[0], subject_contains="Receipt")
    filename, content = attachment(mail)
    assert filename == f"{number}.pdf" and number in pdf_text(content)
    assert f"Attached: {number}" in mail_text(mail)


async def test_concurrent_payments_and_replays_take_consecutive_numbers(platform: Platform) -> None:
    orders = []
    for _ in range(8):
        buyer = await platform.new_user()
        orders.append((await platform.checkout(buyer, key=f"t-{uuid.uuid4()}")).json()["order_id"])
    before = await series_numbers(platform, "INV")
    events = [(order_id, f"evt_test_{uuid.uuid4().hex}") for order_id in orders]
    # Every payment delivered three times at once: the same event twice and a second event.
    outcomes = await asyncio.gather(*[platform.pay(order_id, event_id=event_id)
                                      for order_id, event_id in events for _ in range(2)],
                                    *[platform.pay(order_id) for order_id in orders])
    assert outcomes.count("fulfilled") == len(orders)
    numbers = await series_numbers(platform, "INV")
    assert numbers == list(range(1, len(numbers) + 1))  # gap-free and unique from the first one
    assert len(numbers) == len(before) + len(orders)
    for order_id in orders:
        assert len(await documents(platform, order_id)) == 1


async def test_a_rolled_back_payment_gives_its_number_back(platform: Platform) -> None:
    """A crash after the number was taken (here: an error in the same transaction) leaves no gap."""
    _, first = await platform.paid_order()
    buyer = await platform.new_user()
    second = (await platform.checkout(buyer, key=f"t-{uuid.uuid4()}")).json()["order_id"]
    try:
        async with platform.billing_db.transaction() as session:
            order = await session.get(Order, uuid.UUID(second))
            assert order is not None
            await invoices.issue_invoice(session, order)
            raise Conflict("simulated crash before the commit")
    except Conflict:
        pass
    assert await platform.pay(second) == "fulfilled"
    first_number = (await documents(platform, first))[0]["invoice_number"]
    second_number = (await documents(platform, second))[0]["invoice_number"]
    assert int(second_number[-6:]) == int(first_number[-6:]) + 1


async def test_credit_notes_for_partial_and_full_refunds_add_up_to_the_invoice(platform: Platform) -> None:
    buyer, order_id = await platform.paid_order()
    admin = await platform.auth(ADMIN)
    partial = await platform.client.post(f"/api/billing/orders/{order_id}/refund", headers=admin,
                                         json={"reason": "goodwill", "amount": 1000})
    assert partial.status_code == 200, partial.text
    rest = await platform.client.post(f"/api/billing/orders/{order_id}/refund", headers=admin,
                                      json={"reason": "goodwill"})
    assert rest.status_code == 200 and rest.json()["status"] == "refunded"
    again = await platform.client.post(f"/api/billing/orders/{order_id}/refund", headers=admin,
                                       json={"reason": "goodwill"})
    assert again.status_code == 200
    docs = await documents(platform, order_id, buyer)
    invoice, notes = docs[0], docs[1:]
    assert [d["kind"] for d in docs] == ["invoice", "credit_note", "credit_note"]
    assert [n["gross_amount"] for n in notes] == [1000, 3900]
    assert all(n["credited_invoice_number"] == invoice["invoice_number"] for n in notes)
    assert sum(n["gross_amount"] for n in notes) == invoice["gross_amount"]
    assert sum(n["tax_amount"] for n in notes) == invoice["tax_amount"]
    cn = notes[0]["invoice_number"]
    assert cn.startswith(f"CN-{utcnow().year}-")
    numbers = await series_numbers(platform, "CN")
    assert numbers == list(range(1, len(numbers) + 1))
    pdf = await platform.client.get(f"/api/billing/orders/{order_id}/invoices/{cn}", headers=await platform.auth(buyer))
    text = pdf_text(pdf.content)
    assert "Credit note" in text and invoice["invoice_number"] in text and "-10.00 EUR" in text

    async def refund_mails() -> list[EmailMessage]:
        mails = [m for m in platform.mailbox.messages if m["To"] == buyer[0] and "Refund" in str(m["Subject"])]
        return mails if len(mails) == 2 else []

    names = sorted(attachment(m)[0] for m in await eventually(refund_mails, "two refund receipts"))
    assert names == sorted(f"{n['invoice_number']}.pdf" for n in notes)


async def test_erasure_keeps_numbers_and_drops_the_name(platform: Platform) -> None:
    buyer, order_id = await platform.paid_order()
    number = (await documents(platform, order_id))[0]["invoice_number"]
    user_id = await platform.user_id(buyer)
    gone = await platform.client.request("DELETE", "/api/auth/me", json={"password": buyer[1]},
                                         headers=await platform.auth(buyer))
    assert gone.status_code == 204, gone.text

    async def anonymised() -> bool:
        order = await platform.client.get("/api/billing/admin/orders", params={"user_id": user_id},
                                          headers=await platform.auth(ADMIN))
        return bool(order.json()["items"][0]["anonymized"])

    await eventually(anonymised, "billing applied the erasure")
    assert (await documents(platform, order_id))[0]["invoice_number"] == number  # kept for the accounts
    pdf = await platform.client.get(f"/api/billing/orders/{order_id}/invoice", headers=await platform.auth(ADMIN))
    assert pdf.status_code == 200
    text = pdf_text(pdf.content)
    assert "[erased]" in text and number in text
    _, later = await platform.paid_order()
    later_number = (await documents(platform, later))[0]["invoice_number"]
    assert int(later_number[-6:]) > int(number[-6:])  # the series goes on, the number is not reused


async def test_local_tax_by_country_reverse_charge_and_admin_totals(platform: Platform) -> None:
    code = f"TAX{uuid.uuid4().hex[:6]}".upper()
    admin = await platform.auth(ADMIN)
    created = await platform.client.post("/api/billing/admin/coupons", headers=admin,
                                         json={"code": code, "kind": "percent", "percent_off": 10})
    assert created.status_code == 201, created.text
    consumer, order_id = await platform.paid_order(coupon=code, country="fr")
    order = await platform.order(order_id, consumer)
    # 49.00 - 10 % = 44.10 paid, French VAT 20 % inside it: 44.10 / 1.2 = 36.75 net, 7.35 tax.
    assert (order["amount"], order["net_amount"], order["tax_amount"], order["tax_rate_bp"]) == (4410, 3675, 735, 2000)
    assert (order["buyer_country"], order["tax_source"], order["tax_inclusive"]) == ("FR", "local", True)
    text = pdf_text((await platform.client.get(f"/api/billing/orders/{order_id}/invoice",
                                               headers=await platform.auth(consumer))).content)
    for expected in ("VAT 20 %", "7.35 EUR", "36.75 EUR", "44.10 EUR", "Country: FR", f"coupon {code}"):
        assert expected in text, expected

    business, b2b_id = await platform.paid_order(coupon=code, country="NL", vat_number="NL004495445B01")
    b2b = await platform.order(b2b_id, business)
    assert (b2b["tax_amount"], b2b["reverse_charge"], b2b["buyer_vat_number"]) == (0, True, "NL004495445B01")
    text = pdf_text((await platform.client.get(f"/api/billing/orders/{b2b_id}/invoice",
                                               headers=await platform.auth(business))).content)
    assert "reverse charge" in text.lower() and "NL004495445B01" in text

    partial = await platform.client.post(f"/api/billing/orders/{order_id}/refund", headers=admin,
                                         json={"reason": "goodwill", "amount": 1410})
    assert partial.status_code == 200, partial.text
    totals = (await platform.client.get("/api/billing/admin/orders", params={"coupon_code": code},
                                        headers=admin)).json()["totals"]
    # Tax credited for 14.10 of 44.10: 735 * 1410 / 4410 = 235; kept 500.
    assert totals == [{"currency": "EUR", "orders": 2, "gross_amount": 8820, "discount_amount": 980,
                       "refunded_amount": 1410, "net_amount": 7410, "tax_amount": 500,
                       "net_of_tax_amount": 6910}]


async def test_checkout_tax_input_is_checked(platform: Platform) -> None:
    buyer = await platform.new_user()
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"country": "ZZ"}, 400, "invalid_country"),
        ({"country": "DEU"}, 422, None),
        ({"country": "D\u0000"}, 422, None),
        ({"vat_number": "DE136695976"}, 400, "country_required"),
        ({"country": "DE", "vat_number": "DE123456789"}, 400, "invalid_vat_number"),
        ({"country": "FR", "vat_number": "DE136695976"}, 400, "vat_country_mismatch"),
        ({"country": "US", "vat_number": "DE136695976"}, 400, "vat_number_not_applicable"),
        ({"country": "DE", "vat_number": "DE" + "1" * 30}, 422, None),
        ({"country": "DE", "vat_number": "DE13669597\u0000"}, 422, None),
    ]
    for fields, status, code in cases:
        response = await platform.checkout(buyer, key=f"t-{uuid.uuid4()}", **fields)
        assert response.status_code == status, (fields, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        if code:
            assert response.json()["code"] == code, fields
    listing = await platform.client.get("/api/billing/orders", headers=await platform.auth(buyer))
    assert listing.json()["total"] == 0  # nothing half-written


INSTRUCTOR = ("instructor@triple.academy", "Instructor-Demo-2026!")
AMOUNTS = ("units_sold", "gross_amount", "discount_amount", "refunded_amount", "tax_amount", "net_amount")


async def demo_course_line(platform: Platform, who: tuple[str, str] = INSTRUCTOR) -> dict[str, int]:
    response = await platform.client.get("/api/billing/revenue", headers=await platform.auth(who),
                                         params={"from": f"{utcnow():%Y-%m}", "to": f"{utcnow():%Y-%m}"})
    assert response.status_code == 200, response.text
    lines = [i for i in response.json()["items"] if i["course_id"] == str(DEMO_COURSE_ID)]
    return {name: lines[0][name] for name in AMOUNTS} if lines else dict.fromkeys(AMOUNTS, 0)


async def test_instructor_revenue_with_coupons_partial_refunds_and_tax(platform: Platform) -> None:
    admin = await platform.auth(ADMIN)
    before = await demo_course_line(platform)
    code = f"REV{uuid.uuid4().hex[:6]}".upper()
    assert (await platform.client.post("/api/billing/admin/coupons", headers=admin, json={
        "code": code, "kind": "percent", "percent_off": 10})).status_code == 201
    await platform.paid_order(country="DE")  # 49.00, 7.82 German VAT inside
    _, discounted = await platform.paid_order(coupon=code, country="FR")  # 44.10, 7.35 French VAT inside
    refund = await platform.client.post(f"/api/billing/orders/{discounted}/refund", headers=admin,
                                        json={"reason": "goodwill", "amount": 1410})
    assert refund.status_code == 200, refund.text
    after = await demo_course_line(platform)
    delta = {name: after[name] - before[name] for name in AMOUNTS}
    # Tax: 782 + 735 charged, 235 credited with the partial refund; net = gross - refunds - tax.
    assert delta == {"units_sold": 2, "gross_amount": 9310, "discount_amount": 490, "refunded_amount": 1410,
                     "tax_amount": 1282, "net_amount": 6618}
    assert await demo_course_line(platform, ADMIN) == after  # admins see every course, the same numbers

    instructor = await platform.auth(INSTRUCTOR)
    csv_response = await platform.client.get("/api/billing/revenue", headers=instructor,
                                             params={"format": "csv", "course_id": str(DEMO_COURSE_ID)})
    assert csv_response.status_code == 200 and csv_response.headers["content-type"].startswith("text/csv")
    rows = csv_response.text.strip().split("\r\n")
    assert rows[0] == "course_id,course_title,month,currency," + ",".join(AMOUNTS)
    assert any(row.startswith(f"{DEMO_COURSE_ID},Protected Video Streaming 101,{utcnow():%Y-%m},EUR,") for row in rows)
    empty = await platform.client.get("/api/billing/revenue", headers=instructor,
                                      params={"from": "2001-01", "to": "2001-12"})
    assert empty.json() == {"items": [], "totals": []}


async def test_revenue_is_for_a_courses_own_instructors_and_admins(platform: Platform) -> None:
    instructor = await platform.auth(INSTRUCTOR)
    foreign_course = await platform.draft_course()  # the admin's, not the demo instructor's
    refused = await platform.client.get("/api/billing/revenue", headers=instructor,
                                        params={"course_id": str(foreign_course)})
    assert refused.status_code == 404 and refused.json()["code"] == "course_not_found"
    admin_id = await platform.user_id(ADMIN)
    assert (await platform.client.get("/api/billing/revenue", headers=instructor,
                                      params={"instructor_id": admin_id})).status_code == 403
    learner = await platform.auth(await platform.new_user())
    assert (await platform.client.get("/api/billing/revenue", headers=learner)).status_code == 403
    for bad in ({"from": "2026-13"}, {"to": "26-01"}, {"format": "xml"}, {"course_id": "nope"}):
        assert (await platform.client.get("/api/billing/revenue", headers=instructor, params=bad)
                ).status_code == 422, bad
    own = (await platform.client.get("/api/billing/revenue", headers=instructor)).json()["items"]
    assert {line["course_id"] for line in own} <= {str(DEMO_COURSE_ID), "10000000-0000-4000-8000-000000000002"}
    instructor_id = await platform.user_id(INSTRUCTOR)
    as_admin = await platform.client.get("/api/billing/revenue", headers=await platform.auth(ADMIN),
                                         params={"instructor_id": instructor_id})
    assert as_admin.json()["items"] == own
