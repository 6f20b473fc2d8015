"""Request and response bodies; requests forbid unknown fields (no mass assignment)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictInt, model_validator

from billing.models import Coupon, Invoice, Order
from common.bounds import INT32_MAX
from common.schemas import StrictModel


class CheckoutRequest(StrictModel):
    course_id: uuid.UUID
    coupon_code: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    # The buyer's country (ISO 3166-1 alpha-2; default: the seller's) and, for an EU business, its
    # VAT number (format and check digits verified; reverse charge in another member state).
    country: str | None = Field(default=None, min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")
    vat_number: str | None = Field(default=None, min_length=4, max_length=20, pattern=r"^[A-Za-z0-9 .-]+$")


class RefundRequest(StrictModel):
    reason: str = Field(min_length=1, max_length=500)
    # Minor units; omitted means everything not yet refunded. Strict: 12.5 or "12" is refused.
    amount: StrictInt | None = Field(default=None, gt=0, le=INT32_MAX)


class SelfRefundRequest(StrictModel):
    reason: str = Field(min_length=1, max_length=500)


class TaxFields(BaseModel):
    """An order's tax: `amount` (gross, charged) = `net_amount` + `tax_amount`. With Stripe Tax the
    tax is known once paid (`tax_source: stripe`, 0 before)."""

    net_amount: int
    tax_amount: int
    tax_rate_bp: int | None
    tax_inclusive: bool
    tax_source: str
    reverse_charge: bool
    buyer_country: str | None
    buyer_vat_number: str | None

    @staticmethod
    def fields_of(order: Order) -> dict[str, Any]:
        return {"net_amount": order.net_amount, "tax_amount": order.tax_amount, "tax_rate_bp": order.tax_rate_bp,
                "tax_inclusive": order.tax_inclusive, "tax_source": order.tax_source,
                "reverse_charge": order.reverse_charge, "buyer_country": order.buyer_country,
                "buyer_vat_number": order.buyer_vat_number}


class CheckoutRead(TaxFields):
    order_id: uuid.UUID
    status: str
    checkout_url: str | None
    amount: int
    currency: str
    discount_amount: int

    @classmethod
    def of(cls, order: Order) -> CheckoutRead:
        return cls(order_id=order.id, status=order.status, checkout_url=order.checkout_url, amount=order.amount,
                   currency=order.currency, discount_amount=order.discount_amount, **TaxFields.fields_of(order))


class OrderRead(TaxFields):
    order_id: uuid.UUID
    course_id: uuid.UUID
    course_title: str
    subtotal_amount: int
    discount_amount: int
    amount: int
    amount_refunded: int
    currency: str
    coupon_code: str | None
    status: str
    created_at: dt.datetime
    paid_at: dt.datetime | None
    refunded_at: dt.datetime | None

    @classmethod
    def of(cls, order: Order) -> OrderRead:
        return cls(order_id=order.id, course_id=order.course_id, course_title=order.course_title,
                   subtotal_amount=order.subtotal_amount, discount_amount=order.discount_amount,
                   amount=order.amount, amount_refunded=order.amount_refunded, currency=order.currency,
                   coupon_code=order.coupon_code, status=order.status, created_at=order.created_at,
                   paid_at=order.paid_at, refunded_at=order.refunded_at, **TaxFields.fields_of(order))


class AdminOrderRead(OrderRead):
    user_id: uuid.UUID
    provider: str
    provider_session_id: str | None
    provider_payment_id: str | None
    duplicate_of: uuid.UUID | None
    anonymized: bool

    @classmethod
    def of(cls, order: Order) -> AdminOrderRead:
        return cls(**OrderRead.of(order).model_dump(), user_id=order.user_id, provider=order.provider,
                   provider_session_id=order.provider_session_id, provider_payment_id=order.provider_payment_id,
                   duplicate_of=order.duplicate_of, anonymized=order.anonymized_at is not None)


class OrderPage(BaseModel):
    items: list[OrderRead]
    total: int
    page: int
    page_size: int


class CurrencyTotals(BaseModel):
    """Money taken (paid, partially refunded or refunded orders) in one currency."""

    currency: str
    orders: int
    gross_amount: int
    discount_amount: int
    refunded_amount: int
    net_amount: int  # gross - refunded: the money kept, tax included
    tax_amount: int  # the tax in the money kept (tax charged - tax credited back)
    net_of_tax_amount: int  # net_amount - tax_amount


class AdminOrderPage(BaseModel):
    items: list[AdminOrderRead]
    total: int
    page: int
    page_size: int
    totals: list[CurrencyTotals]


class AdminOrderFilters(StrictModel):
    status: Literal["pending", "paid", "failed", "expired", "partially_refunded", "refunded"] | None = None
    user_id: uuid.UUID | None = None
    course_id: uuid.UUID | None = None
    currency: str | None = Field(default=None, max_length=3, pattern=r"^[A-Za-z]{3}$")
    coupon_code: str | None = Field(default=None, max_length=64)
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None


class CouponCreate(StrictModel):
    code: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    kind: Literal["percent", "fixed"]
    percent_off: StrictInt | None = Field(default=None, ge=1, le=100)
    amount_off: StrictInt | None = Field(default=None, gt=0, le=INT32_MAX)
    currency: str | None = Field(default=None, max_length=3, pattern=r"^[A-Za-z]{3}$")
    course_id: uuid.UUID | None = None
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    max_redemptions: StrictInt | None = Field(default=None, gt=0, le=INT32_MAX)

    @model_validator(mode="after")
    def _one_kind(self) -> CouponCreate:
        if self.kind == "percent" and (self.percent_off is None or self.amount_off is not None
                                       or self.currency is not None):
            raise ValueError("a percent coupon has percent_off and no amount_off/currency")
        if self.kind == "fixed" and (self.amount_off is None or self.currency is None
                                     or self.percent_off is not None):
            raise ValueError("a fixed coupon has amount_off and currency, and no percent_off")
        for value in (self.valid_from, self.valid_until):
            if value is not None and value.tzinfo is None:
                raise ValueError("validity times need a UTC offset")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


class CouponActive(StrictModel):
    active: bool


class CouponRead(BaseModel):
    coupon_id: uuid.UUID
    code: str
    kind: str
    percent_off: int | None
    amount_off: int | None
    currency: str | None
    course_id: uuid.UUID | None
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None
    max_redemptions: int | None
    redemptions: int
    active: bool

    @classmethod
    def of(cls, coupon: Coupon) -> CouponRead:
        return cls(coupon_id=coupon.id, code=coupon.code, kind=coupon.kind, percent_off=coupon.percent_off,
                   amount_off=coupon.amount_off, currency=coupon.currency, course_id=coupon.course_id,
                   valid_from=coupon.valid_from, valid_until=coupon.valid_until,
                   max_redemptions=coupon.max_redemptions, redemptions=coupon.redemptions, active=coupon.active)


class WebhookAck(BaseModel):
    received: bool = True
    outcome: str


class InvoiceRead(BaseModel):
    """An invoice or credit note of an order (its PDF: `/orders/{order_id}/invoices/{invoice_number}`)."""

    invoice_number: str
    kind: Literal["invoice", "credit_note"]
    order_id: uuid.UUID
    issued_at: dt.datetime
    currency: str
    net_amount: int
    tax_amount: int
    gross_amount: int
    tax_rate_bp: int | None
    tax_source: str
    reverse_charge: bool
    buyer_country: str | None
    credited_invoice_number: str | None

    @classmethod
    def of(cls, invoice: Invoice) -> InvoiceRead:
        return cls(invoice_number=invoice.invoice_number, kind=invoice.kind,
                   order_id=invoice.order_id, issued_at=invoice.issued_at, currency=invoice.currency,
                   net_amount=invoice.net_amount, tax_amount=invoice.tax_amount, gross_amount=invoice.gross_amount,
                   tax_rate_bp=invoice.tax_rate_bp, tax_source=invoice.tax_source,
                   reverse_charge=invoice.reverse_charge, buyer_country=invoice.buyer_country,
                   credited_invoice_number=invoice.credited_invoice_number)


class RevenueTotals(BaseModel):
    currency: str
    units_sold: int
    gross_amount: int
    discount_amount: int
    refunded_amount: int
    tax_amount: int
    net_amount: int


class RevenueLineRead(RevenueTotals):
    """One course in one month and currency."""

    course_id: uuid.UUID
    course_title: str
    month: str


class RevenueReport(BaseModel):
    """Minor units per currency; `net_amount = gross_amount - refunded_amount - tax_amount`."""

    items: list[RevenueLineRead]
    totals: list[RevenueTotals]
