"""The invoice PDF on its own: any buyer name renders (DejaVu Sans where installed, else the Latin-1
core font with the name folded), credit notes
show negative amounts, a reverse charge says so (no platform needed)."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from pathlib import Path

import pytest
from pypdf import PdfReader

from billing import invoices
from billing.models import Invoice
from billing.settings import BillingSettings


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _document(**overrides: object) -> Invoice:
    fields: dict[str, object] = dict(
        id=uuid.uuid4(), kind="invoice", series="INV-2026", number=7, invoice_number="INV-2026-000007",
        order_id=uuid.uuid4(), refund_key="-", refund_id=None, credited_invoice_number=None,
        issued_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC), currency="EUR", subtotal_amount=4900, discount_amount=490,
        net_amount=3675, tax_amount=735, gross_amount=4410, tax_rate_bp=2000, tax_source="local",
        reverse_charge=False, buyer_country="FR", buyer_vat_number=None, course_title="Cours = HLS",
        coupon_code="SPRING")
    fields.update(overrides)
    return Invoice(**fields)


def test_names_outside_latin1_render_as_written_and_the_totals_are_there() -> None:
    text = _text(invoices.render_pdf(_document(), invoices.Buyer("Łukasz Żółw Ελένη Иван"), BillingSettings()))
    assert "Łukasz Żółw Ελένη Иван" in text and "INV-2026-000007" in text and "2026-03-01" in text
    for expected in ("49.00 EUR", "-4.90 EUR", "36.75 EUR", "VAT 20 %", "7.35 EUR", "44.10 EUR", "Country: FR"):
        assert expected in text, expected


def test_without_the_unicode_font_names_are_folded_to_latin1(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    monkeypatch.setenv("PDF_FONT_DIR", str(tmp_path))  # no DejaVu there: the core font, Latin-1
    text = _text(invoices.render_pdf(_document(), invoices.Buyer("Łukasz Żółw 王 Zoë"), BillingSettings()))
    assert "?ukasz Zo?w ? Zoe" in text and "44.10 EUR" in text


def test_credit_notes_are_negative_and_reverse_charge_is_stated() -> None:
    note = _document(kind="credit_note", series="CN-2026", number=2, invoice_number="CN-2026-000002",
                     credited_invoice_number="INV-2026-000007", subtotal_amount=1000, discount_amount=0,
                     net_amount=1000, tax_amount=0, gross_amount=1000, tax_rate_bp=0, reverse_charge=True,
                     buyer_vat_number="FR40303265045")
    text = _text(invoices.render_pdf(note, invoices.Buyer("ACME SARL"), BillingSettings()))
    assert "Credit note" in text and "Credits invoice: INV-2026-000007" in text and "-10.00 EUR" in text
    assert "reverse charge" in text.lower() and "FR40303265045" in text
