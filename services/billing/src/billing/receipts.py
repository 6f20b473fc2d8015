"""Receipt mails: owed in the transaction of the money change (a `receipts` row), sent after it.

Sending never touches the money: a failed send is retried with backoff and finally marked dead
(logged), and a row is claimed for a minute before sending so two replicas do not both send it.
A crash between the send and the "sent" mark can repeat one mail; it can never lose one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid

import sqlalchemy as sa

from billing import invoices
from billing.invoices import format_money
from billing.models import Order, Receipt, Refund
from billing.settings import BillingSettings
from common.db import Database, utcnow
from common.http import ServiceClient
from common.mail import Attachment, Mail, Mailer
from common.observability.metrics import count
from contracts.peers import AuthUser

log = logging.getLogger(__name__)

CLAIM_SECONDS = 60


class _Erased(Exception):
    """Auth answered 404: the account was erased."""


async def account(auth: ServiceClient, user_id: uuid.UUID) -> AuthUser | None:
    """The buyer as auth knows them now (receipts, invoice PDFs); None once the account was erased."""
    try:
        return await auth.get_model(f"/internal/users/{user_id}", AuthUser, missing=_Erased())
    except _Erased:
        return None
def render(receipt: Receipt, order: Order, refund: Refund | None, user: AuthUser,
           attachments: tuple[Attachment, ...] = ()) -> Mail:
    lines = [f"Hello {user.full_name},", ""]
    if receipt.kind == "payment":
        subject = f"Receipt for {order.course_title}"
        lines += [f"Thank you for your purchase of \"{order.course_title}\".", "",
                  f"Price:    {format_money(order.subtotal_amount, order.currency)}"]
        if order.discount_amount:
            lines.append(f"Discount: -{format_money(order.discount_amount, order.currency)}"
                         f" (coupon {order.coupon_code})")
        lines.append(f"Paid:     {format_money(order.amount, order.currency)}")
        if order.paid_at:
            lines.append(f"Date:     {order.paid_at:%Y-%m-%d %H:%M} UTC")
    else:
        assert refund is not None
        subject = f"Refund for {order.course_title}"
        lines += [f"We refunded {format_money(refund.amount, refund.currency)} of your purchase of "
                  f"\"{order.course_title}\".", "",
                  f"Refunded so far: {format_money(order.amount_refunded, order.currency)} of "
                  f"{format_money(order.amount, order.currency)}",
                  "The money reaches your account within a few business days."]
    lines += ["", f"Order: {order.id}"]
    lines += [f"Attached: {a.filename.removesuffix('.pdf')}" for a in attachments]
    lines += ["", "Triple Academy"]
    return Mail(to=user.email, subject=subject, text="\n".join(lines), attachments=attachments)


async def _documents(db: Database, receipt: Receipt, user: AuthUser,
                     settings: BillingSettings | None) -> tuple[Attachment, ...]:
    """The invoice (payment receipt) or credit note (refund receipt) as a PDF attachment."""
    if settings is None:
        return ()
    async with db.session() as session:
        documents = await invoices.documents_of(session, receipt.order_id)
    wanted = str(receipt.refund_id) if receipt.refund_id else invoices.NO_REFUND
    document = next((d for d in documents if d.refund_key == wanted), None)
    if document is None:
        return ()  # an order paid before invoicing existed
    pdf = await asyncio.to_thread(invoices.render_pdf, document, invoices.Buyer(user.full_name), settings)
    return (Attachment(invoices.pdf_filename(document), pdf, "application/pdf"),)


async def send_due(*, db: Database, mailer: Mailer, auth: ServiceClient, max_attempts: int,
                   now: dt.datetime | None = None, limit: int = 20,
                   settings: BillingSettings | None = None) -> int:
    """Send the receipts that are due; returns how many were sent."""
    now = now or utcnow()
    async with db.session() as session:
        due = list(await session.scalars(
            sa.select(Receipt.id).where(Receipt.status == "pending", Receipt.next_attempt_at <= now)
            .order_by(Receipt.next_attempt_at).limit(limit)))
    sent = 0
    for receipt_id in due:
        if await _send_one(db=db, mailer=mailer, auth=auth, receipt_id=receipt_id, now=now,
                           max_attempts=max_attempts, settings=settings):
            sent += 1
    return sent


async def _claim(db: Database, receipt_id: uuid.UUID, now: dt.datetime) -> bool:
    async with db.transaction() as session:
        result = await session.execute(
            sa.update(Receipt).where(Receipt.id == receipt_id, Receipt.status == "pending",
                                     Receipt.next_attempt_at <= now)
            .values(next_attempt_at=now + dt.timedelta(seconds=CLAIM_SECONDS))
            .execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0) == 1)


async def _send_one(*, db: Database, mailer: Mailer, auth: ServiceClient, receipt_id: uuid.UUID,
                    now: dt.datetime, max_attempts: int, settings: BillingSettings | None) -> bool:
    if not await _claim(db, receipt_id, now):
        return False  # another replica has it
    async with db.session() as session:
        receipt = await session.get(Receipt, receipt_id)
        order = await session.get(Order, receipt.order_id) if receipt else None
        refund = await session.get(Refund, receipt.refund_id) if receipt and receipt.refund_id else None
    if receipt is None or order is None:
        return False
    try:
        user = await account(auth, order.user_id)
        if user is None:
            await _finish(db, receipt_id, status="skipped", error="user not found (erased)")
            return False
        await mailer.send(render(receipt, order, refund, user, await _documents(db, receipt, user, settings)))
    except Exception as exc:  # any failure (peer, SMTP) is retried later
        attempts = receipt.attempts + 1
        dead = attempts >= max_attempts
        delay = min(2 ** attempts, 3600)
        log.warning("receipt not sent", extra={"receipt_id": str(receipt_id), "order_id": str(order.id),
                                               "attempts": attempts, "dead": dead, "error": repr(exc)[:300]})
        async with db.transaction() as session:
            await session.execute(sa.update(Receipt).where(Receipt.id == receipt_id).values(
                attempts=attempts, last_error=repr(exc)[:500], status="dead" if dead else "pending",
                next_attempt_at=utcnow() + dt.timedelta(seconds=delay)))
        count("billing", "receipts_failed")
        return False
    await _finish(db, receipt_id, status="sent", recipient=user.email)
    count("billing", "receipts_sent")
    return True


async def _finish(db: Database, receipt_id: uuid.UUID, *, status: str, recipient: str | None = None,
                  error: str | None = None) -> None:
    async with db.transaction() as session:
        await session.execute(sa.update(Receipt).where(Receipt.id == receipt_id).values(
            status=status, recipient=recipient, last_error=error, sent_at=utcnow() if status == "sent" else None))
