"""Invoices and credit notes: numbered once, gap-free per series, rendered as PDF on demand.

An invoice is issued in the transaction that makes an order paid (`fulfill`), a credit note in the
transaction that sees a refund's money returned (`_recompute_refund_state`): the document exists
exactly when the money change does, and a crash or a replayed webhook can neither skip nor repeat
it. The number comes from a counter row per series (`INV-2026`, `CN-2026`) incremented by an
UPDATE in that same transaction: the row stays locked until the commit, so concurrent payments
take consecutive numbers one after the other, and a rollback gives its number back (no gap).

The PDF is not stored: it is rendered from the row (immutable once issued) and the buyer's name
as auth knows it now, so an erasure leaves no name behind in billing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from fpdf import FPDF
from sqlalchemy.ext.asyncio import AsyncSession

from billing.models import Invoice, InvoiceCounter, InvoiceKind, Order, Refund, RefundStatus
from billing.settings import BillingSettings
from common.db import upsert_insert, utcnow
from common.errors import NotFound
from common.pdftext import PdfText

SERIES_PREFIX = {InvoiceKind.INVOICE: "INV", InvoiceKind.CREDIT_NOTE: "CN"}
NO_REFUND = "-"
ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND",
                          "VUV", "XAF", "XOF", "XPF"})


def format_money(amount: int, currency: str) -> str:
    """Minor units as the buyer reads them (two decimals, none for zero-decimal currencies)."""
    if currency.upper() in ZERO_DECIMAL:
        return f"{amount} {currency}"
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 100)
    return f"{sign}{major}.{minor:02d} {currency}"


# --- numbering -----------------------------------------------------------------------------------


async def _take_number(db_session: AsyncSession, series: str) -> int:
    """The next number of the series; its counter row stays locked until this transaction ends."""
    await db_session.execute(upsert_insert(db_session, InvoiceCounter).values(series=series, last_number=0)
                             .on_conflict_do_nothing(index_elements=["series"]))
    number = await db_session.scalar(
        sa.update(InvoiceCounter).where(InvoiceCounter.series == series)
        .values(last_number=InvoiceCounter.last_number + 1).returning(InvoiceCounter.last_number)
        .execution_options(synchronize_session=False))
    assert number is not None
    return int(number)


async def _issue(db_session: AsyncSession, order: Order, kind: InvoiceKind, *, refund: Refund | None,
                 net: int, tax: int, at: dt.datetime, credited: str | None = None) -> Invoice:
    series = f"{SERIES_PREFIX[kind]}-{at.year}"
    number = await _take_number(db_session, series)
    invoice = Invoice(
        id=uuid.uuid4(), kind=kind, series=series, number=number, invoice_number=f"{series}-{number:06d}",
        order_id=order.id, refund_key=str(refund.id) if refund else NO_REFUND, refund_id=refund.id if refund else None,
        credited_invoice_number=credited, issued_at=at, currency=order.currency,
        subtotal_amount=order.subtotal_amount if refund is None else net + tax,
        discount_amount=order.discount_amount if refund is None else 0,
        net_amount=net, tax_amount=tax, gross_amount=net + tax, tax_rate_bp=order.tax_rate_bp,
        tax_source=order.tax_source, reverse_charge=order.reverse_charge, buyer_country=order.buyer_country,
        buyer_vat_number=order.buyer_vat_number, course_title=order.course_title, coupon_code=order.coupon_code)
    db_session.add(invoice)
    await db_session.flush()
    return invoice


async def issue_invoice(db_session: AsyncSession, order: Order, *, at: dt.datetime | None = None) -> Invoice:
    """The order's invoice (called once, by fulfil, under the order's lock; idempotent anyway)."""
    existing = await invoice_of(db_session, order.id)
    if existing is not None:
        return existing
    return await _issue(db_session, order, InvoiceKind.INVOICE, refund=None, net=order.net_amount,
                        tax=order.tax_amount, at=at or utcnow())


async def issue_credit_notes(db_session: AsyncSession, order: Order) -> list[Invoice]:
    """A credit note for every refund of an invoiced order whose money came back and has none yet.

    The tax credited is the order's tax in proportion to the money refunded so far, rounded on the
    running total: partial credit notes add up to exactly the invoice once everything is refunded.
    """
    invoice = await invoice_of(db_session, order.id)
    if invoice is None:
        return []  # paid before invoicing existed, or a duplicate payment refunded at once
    notes = await _credit_notes(db_session, order.id)
    credited = {note.refund_key for note in notes}
    refunds = list(await db_session.scalars(
        sa.select(Refund).where(Refund.order_id == order.id, Refund.status == RefundStatus.SUCCEEDED)
        .order_by(Refund.updated_at, Refund.id)))
    issued: list[Invoice] = []
    gross_done = sum(note.gross_amount for note in notes)
    tax_done = sum(note.tax_amount for note in notes)
    for refund in refunds:
        if str(refund.id) in credited:
            continue
        amount = min(refund.amount, invoice.gross_amount - gross_done)
        if amount <= 0:
            continue
        tax_after = _share(invoice.tax_amount, gross_done + amount, invoice.gross_amount)
        tax = tax_after - tax_done
        issued.append(await _issue(db_session, order, InvoiceKind.CREDIT_NOTE, refund=refund, net=amount - tax,
                                   tax=tax, at=utcnow(), credited=invoice.invoice_number))
        gross_done += amount
        tax_done = tax_after
    return issued


def _share(total: int, part: int, whole: int) -> int:
    """total * part / whole, rounded half up, in integers."""
    return (2 * total * part + whole) // (2 * whole)


# --- reads ---------------------------------------------------------------------------------------


async def invoice_of(db_session: AsyncSession, order_id: uuid.UUID) -> Invoice | None:
    found: Invoice | None = await db_session.scalar(sa.select(Invoice).where(
        Invoice.order_id == order_id, Invoice.kind == InvoiceKind.INVOICE))
    return found


async def _credit_notes(db_session: AsyncSession, order_id: uuid.UUID) -> list[Invoice]:
    return list(await db_session.scalars(sa.select(Invoice).where(
        Invoice.order_id == order_id, Invoice.kind == InvoiceKind.CREDIT_NOTE).order_by(Invoice.number)))


async def documents_of(db_session: AsyncSession, order_id: uuid.UUID) -> list[Invoice]:
    """The order's invoice and credit notes, oldest first."""
    return list(await db_session.scalars(sa.select(Invoice).where(Invoice.order_id == order_id)
                                         .order_by(Invoice.issued_at, Invoice.kind.desc(), Invoice.number)))


async def document(db_session: AsyncSession, order_id: uuid.UUID, invoice_number: str | None) -> Invoice:
    """One document of the order: its invoice (no number) or the named one; 404 otherwise."""
    if invoice_number is None:
        found = await invoice_of(db_session, order_id)
    else:
        found = await db_session.scalar(sa.select(Invoice).where(
            Invoice.order_id == order_id, Invoice.invoice_number == invoice_number))
    if found is None:
        raise NotFound("no such invoice for this order (an order gets one once it is paid)",
                       code="invoice_not_found")
    return found


async def tax_credited_by_currency(db_session: AsyncSession, order_ids: sa.Select[Any]) -> dict[str, int]:
    """The tax given back by credit notes, per currency, for the orders selected."""
    rows = await db_session.execute(
        sa.select(Invoice.currency, sa.func.sum(Invoice.tax_amount))
        .where(Invoice.kind == InvoiceKind.CREDIT_NOTE, Invoice.order_id.in_(order_ids)).group_by(Invoice.currency))
    return {currency: int(total or 0) for currency, total in rows.all()}


async def erase_buyer(db_session: AsyncSession, order_ids: list[uuid.UUID]) -> None:
    """Erasure: the VAT number may name a sole trader; numbers, amounts and country stay (accounting)."""
    if order_ids:
        await db_session.execute(sa.update(Invoice).where(Invoice.order_id.in_(order_ids))
                                 .values(buyer_vat_number=None).execution_options(synchronize_session=False))


# --- PDF -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Buyer:
    name: str  # as auth knows it now; "[erased]" once the account is gone
    email: str | None = None


def render_pdf(invoice: Invoice, buyer: Buyer, settings: BillingSettings) -> bytes:
    """The document as a PDF (fpdf2; CPU only, so callers run it in a thread)."""
    credit = invoice.kind == InvoiceKind.CREDIT_NOTE
    sign = -1 if credit else 1
    currency = invoice.currency
    pdf = FPDF(format="A4")
    pdf.set_title(f"{'Credit note' if credit else 'Invoice'} {invoice.invoice_number}")
    pdf.set_creator(settings.seller_name)
    pdf.set_creation_date(invoice.issued_at)
    fonts = PdfText(pdf)
    pdf.add_page()
    pdf.set_font(fonts.family, "B", 18)
    pdf.cell(0, 10, "Credit note" if credit else "Invoice", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(fonts.family, size=10)

    def line(text: str, *, bold: bool = False) -> None:
        pdf.set_font(fonts.family, "B" if bold else "", 10)
        pdf.multi_cell(0, 5, fonts.text(text), new_x="LMARGIN", new_y="NEXT")

    line(f"Number: {invoice.invoice_number}", bold=True)
    line(f"Date of issue: {invoice.issued_at:%Y-%m-%d}")
    if invoice.credited_invoice_number:
        line(f"Credits invoice: {invoice.credited_invoice_number}")
    line(f"Order: {invoice.order_id}")
    pdf.ln(4)
    line("Seller", bold=True)
    line(f"{settings.seller_name}\n{settings.seller_address}\nVAT ID: {settings.seller_vat_id}")
    pdf.ln(2)
    line("Buyer", bold=True)
    buyer_lines = [buyer.name]
    if invoice.buyer_country:
        buyer_lines.append(f"Country: {invoice.buyer_country}")
    if invoice.buyer_vat_number:
        buyer_lines.append(f"VAT number: {invoice.buyer_vat_number}")
    line("\n".join(buyer_lines))
    pdf.ln(4)

    def row(label: str, amount: int, *, bold: bool = False) -> None:
        pdf.set_font(fonts.family, "B" if bold else "", 10)
        pdf.cell(120, 6, fonts.text(label))
        pdf.cell(0, 6, format_money(sign * amount, currency), align="R", new_x="LMARGIN", new_y="NEXT")

    title = f"Online course: {invoice.course_title}"
    if credit:
        row(f"Refund - {title}", invoice.gross_amount)
    else:
        row(title, invoice.subtotal_amount)
        if invoice.discount_amount:
            row(f"Discount (coupon {invoice.coupon_code})", -invoice.discount_amount)
    pdf.ln(2)
    row("Net", invoice.net_amount)
    if invoice.reverse_charge:
        row("VAT 0 % (reverse charge)", 0)
    elif invoice.tax_source == "none":
        row("VAT", 0)
    else:
        rate = f" {invoice.tax_rate_bp / 100:g} %" if invoice.tax_rate_bp is not None else ""
        row(f"VAT{rate}" + (" (calculated by Stripe Tax)" if invoice.tax_source == "stripe" else ""),
            invoice.tax_amount)
    row("Total credited" if credit else "Total paid", invoice.gross_amount, bold=True)
    if invoice.reverse_charge:
        pdf.ln(4)
        line("Reverse charge: VAT to be accounted for by the recipient (Art. 196 Council Directive 2006/112/EC).")
    return bytes(pdf.output())


def pdf_filename(invoice: Invoice) -> str:
    return f"{invoice.invoice_number}.pdf"
