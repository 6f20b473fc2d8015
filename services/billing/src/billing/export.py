"""Billing's part of a learner's data export (auth assembles the archive): orders, refunds, the
status history, and every invoice and credit note with its PDF."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from billing import invoices
from billing.models import AuditEntry, Invoice, Order, Refund
from billing.settings import BillingSettings

# Each PDF is rendered on request (about 0.1 s of CPU with the embedded Unicode font); a learner
# with more documents than this gets the newest ones as PDFs, every one of them as data
# (`invoice_pdfs_truncated`), and can download the others one by one from their orders.
MAX_INVOICE_PDFS = 100


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


async def rows(db_session: AsyncSession, user_id: uuid.UUID) -> tuple[dict[str, Any], list[Invoice]]:
    orders = list(await db_session.scalars(sa.select(Order).where(Order.user_id == user_id)
                                           .order_by(Order.created_at)))
    order_ids = [order.id for order in orders]
    refunds = await db_session.scalars(sa.select(Refund).where(Refund.order_id.in_(order_ids))
                                       .order_by(Refund.created_at))
    history = await db_session.scalars(sa.select(AuditEntry).where(AuditEntry.order_id.in_(order_ids))
                                       .order_by(AuditEntry.at))
    documents = list(await db_session.scalars(sa.select(Invoice).where(Invoice.order_id.in_(order_ids))
                                              .order_by(Invoice.issued_at.desc())))
    data = {
        "orders": [{
            "id": str(o.id), "course_id": str(o.course_id), "course_title": o.course_title, "status": o.status,
            "currency": o.currency, "subtotal_amount": o.subtotal_amount, "discount_amount": o.discount_amount,
            "amount": o.amount, "tax_amount": o.tax_amount, "amount_refunded": o.amount_refunded,
            "coupon_code": o.coupon_code, "buyer_country": o.buyer_country,
            "buyer_vat_number": o.buyer_vat_number, "provider": o.provider,
            "created_at": _iso(o.created_at), "paid_at": _iso(o.paid_at), "refunded_at": _iso(o.refunded_at),
        } for o in orders],
        "refunds": [{
            "id": str(r.id), "order_id": str(r.order_id), "amount": r.amount, "currency": r.currency,
            "status": r.status, "kind": r.kind, "reason": r.reason, "created_at": _iso(r.created_at),
            "updated_at": _iso(r.updated_at),
        } for r in refunds],
        "order_history": [{
            "order_id": str(a.order_id), "from_status": a.from_status, "to_status": a.to_status, "at": _iso(a.at),
        } for a in history],
        "invoices": [{
            "invoice_number": d.invoice_number, "kind": d.kind, "order_id": str(d.order_id),
            "issued_at": _iso(d.issued_at), "currency": d.currency, "net_amount": d.net_amount,
            "tax_amount": d.tax_amount, "gross_amount": d.gross_amount,
        } for d in documents],
    }
    return data, documents


async def with_pdfs(data: dict[str, Any], documents: list[Invoice], buyer: invoices.Buyer,
                    settings: BillingSettings) -> dict[str, Any]:
    """Attach the newest documents' PDFs (base64; auth writes them out as files)."""
    def render_all() -> list[str]:
        return [base64.b64encode(invoices.render_pdf(d, buyer, settings)).decode()
                for d in documents[:MAX_INVOICE_PDFS]]

    for item, pdf in zip(data["invoices"], await asyncio.to_thread(render_all), strict=False):
        item["pdf_base64"] = pdf
    data["invoice_pdfs_truncated"] = len(documents) > MAX_INVOICE_PDFS
    return data
