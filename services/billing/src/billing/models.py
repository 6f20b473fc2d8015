"""Billing's tables: orders and their audit trail, refunds, coupons, provider customers, receipts,
and the provider events already applied (or parked until the order they concern is paid)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import JSONType, UTCDateTime, request_id_column, utcnow


class Base(DeclarativeBase):
    pass


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


# A successful payment may arrive after a failure or expiry notice (events come out of order).
FULFILLABLE = (OrderStatus.PENDING, OrderStatus.FAILED, OrderStatus.EXPIRED)
# Money was taken: these can be refunded (again, for a partial refund) and count in totals.
SETTLED = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED)
# The learner owns the course through this order (a second payment for it is refunded).
OWNING = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED)


class RefundStatus(enum.StrEnum):
    REQUESTED = "requested"  # recorded by us, not yet accepted by the provider
    PENDING = "pending"  # accepted by the provider, money on its way back
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # refused, failed or canceled: no money returned


# Refunds whose amount is spoken for (a new refund cannot take it again).
COMMITTED_REFUNDS = (RefundStatus.REQUESTED, RefundStatus.PENDING, RefundStatus.SUCCEEDED)
# Refunds whose money the provider has returned: only they make an order (partially) refunded,
# send a refund receipt and, for the whole amount, emit `billing.order.refunded.v1` (access is
# revoked). A pending refund can still fail, and access must not go for money never returned.
EFFECTIVE_REFUNDS = (RefundStatus.SUCCEEDED,)


class Order(Base):
    """One purchase attempt of one course; amounts in minor units of `currency` (ISO 4217).

    `amount` is what the learner is charged: `subtotal_amount - discount_amount`.
    """

    __tablename__ = "orders"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_idempotency_key"),
        sa.CheckConstraint("amount > 0", name="ck_orders_amount_positive"),
        sa.CheckConstraint(
            "status IN ('pending', 'paid', 'failed', 'expired', 'partially_refunded', 'refunded')",
            name="ck_orders_status"),
        sa.CheckConstraint("discount_amount >= 0 AND subtotal_amount = amount + discount_amount",
                           name="ck_orders_discount"),
        sa.CheckConstraint("amount_refunded >= 0 AND amount_refunded <= amount", name="ck_orders_refunded"),
        # One open checkout per learner and course: a second one cannot be started (and paid).
        sa.Index("uq_orders_open_checkout", "user_id", "course_id", unique=True,
                 postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'")),
        sa.Index("ix_orders_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    course_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    # Title at purchase time: the product name on the provider's page and receipt.
    course_title: Mapped[str] = mapped_column(sa.String(300))
    subtotal_amount: Mapped[int] = mapped_column(sa.Integer)
    discount_amount: Mapped[int] = mapped_column(sa.Integer, default=0)
    amount: Mapped[int] = mapped_column(sa.Integer)
    amount_refunded: Mapped[int] = mapped_column(sa.Integer, default=0)
    currency: Mapped[str] = mapped_column(sa.String(3))
    coupon_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("coupons.id"), nullable=True, index=True)
    coupon_code: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    # True while the order holds one of its coupon's redemptions (released on expiry/failure).
    coupon_redeemed: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    status: Mapped[str] = mapped_column(sa.String(20), default=OrderStatus.PENDING)
    idempotency_key: Mapped[str] = mapped_column(sa.String(200))
    provider: Mapped[str] = mapped_column(sa.String(16))
    provider_session_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True, nullable=True)
    provider_payment_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True, index=True)
    provider_customer_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    checkout_url: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    # Ended here (another order was paid, or the account erased) while its provider session was open:
    # the worker expires that session at the provider, so it cannot take a payment we would refund.
    provider_expire_pending: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # Set when this payment duplicated an order that already gave access: it is refunded, no events.
    duplicate_of: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refunded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Erasure (auth.user.deleted.v1): personal data gone, accounting data kept.
    anonymized_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Tax (billing/tax.py): `amount` is always what the buyer pays, tax included; `tax_amount` is
    # the part of it that is tax, so the net is `amount - tax_amount`. `tax_inclusive` says whether
    # the catalog price already held the tax (or it was added on top). Orders from before tax was
    # taken carry no country and a tax of 0.
    tax_amount: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    tax_rate_bp: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)  # basis points: 1900 = 19 %
    tax_inclusive: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    tax_source: Mapped[str] = mapped_column(sa.String(10), default="none", server_default="none")
    reverse_charge: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    buyer_country: Mapped[str | None] = mapped_column(sa.String(2), nullable=True)
    buyer_vat_number: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)

    @property
    def net_amount(self) -> int:
        return self.amount - self.tax_amount


class Coupon(Base):
    """A discount: percent (1-100) or a fixed amount in one currency, for one course or all."""

    __tablename__ = "coupons"
    __table_args__ = (
        sa.CheckConstraint(
            "(kind = 'percent' AND percent_off BETWEEN 1 AND 100 AND amount_off IS NULL) OR "
            "(kind = 'fixed' AND amount_off > 0 AND currency IS NOT NULL AND percent_off IS NULL)",
            name="ck_coupons_kind"),
        sa.CheckConstraint("redemptions >= 0 AND (max_redemptions IS NULL OR redemptions <= max_redemptions)",
                           name="ck_coupons_redemptions"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(sa.String(64), unique=True)  # stored upper-case
    kind: Mapped[str] = mapped_column(sa.String(10))
    percent_off: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    amount_off: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    currency: Mapped[str | None] = mapped_column(sa.String(3), nullable=True)
    course_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    valid_from: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    max_redemptions: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    redemptions: Mapped[int] = mapped_column(sa.Integer, default=0)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    provider_coupon_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    provider_promotion_code_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Customer(Base):
    """The provider's customer of one user, reused across their checkouts."""

    __tablename__ = "customers"

    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    provider: Mapped[str] = mapped_column(sa.String(16))
    provider_customer_id: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The user was erased: the worker deletes the provider's customer, then this row.
    erase_requested_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ErasedUser(Base):
    """A user whose account was erased (`auth.user.deleted.v1`, which also revokes their tokens).
    A checkout opened while the erasure was being applied escapes it; fulfil reads this mark and
    refunds such a payment instead of giving access to nobody."""

    __tablename__ = "erased_users"

    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    erased_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProcessedProviderEvent(Base):
    """A provider event (Stripe `evt_...`) already applied; inserted with the effect it caused."""

    __tablename__ = "processed_provider_events"

    event_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(100))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeferredProviderEvent(Base):
    """A refund event that arrived before the payment it refunds; applied when that payment is."""

    __tablename__ = "deferred_provider_events"

    event_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(100))
    payment_intent: Mapped[str | None] = mapped_column(sa.String(255), nullable=True, index=True)
    order_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True, index=True)
    object: Mapped[dict[str, Any]] = mapped_column(JSONType)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Refund(Base):
    """One refund of (part of) an order, whoever asked for it: admin, learner, us, or the provider."""

    __tablename__ = "order_refunds"
    __table_args__ = (
        sa.UniqueConstraint("order_id", "idempotency_key", name="uq_order_refunds_key"),
        sa.CheckConstraint("amount > 0", name="ck_order_refunds_amount_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    amount: Mapped[int] = mapped_column(sa.Integer)
    currency: Mapped[str] = mapped_column(sa.String(3))
    status: Mapped[str] = mapped_column(sa.String(16), default=RefundStatus.REQUESTED)
    kind: Mapped[str] = mapped_column(sa.String(16))  # admin, self, duplicate, provider
    reason: Mapped[str] = mapped_column(sa.Text)
    actor: Mapped[str] = mapped_column(sa.String(100))
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    provider_refund_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True, nullable=True)
    failure: Mapped[str | None] = mapped_column(sa.String(300), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    request_id: Mapped[str | None] = request_id_column()  # the request (or event) that asked for it


class Receipt(Base):
    """A receipt mail owed to the buyer, written with the money change and sent after the commit."""

    __tablename__ = "receipts"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    dedup_key: Mapped[str] = mapped_column(sa.String(100), unique=True)  # payment:<order>, refund:<refund>
    order_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    refund_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    kind: Mapped[str] = mapped_column(sa.String(10))  # payment, refund
    status: Mapped[str] = mapped_column(sa.String(10), default="pending")  # pending, sent, skipped, dead
    recipient: Mapped[str | None] = mapped_column(sa.String(320), nullable=True)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.String(500), nullable=True)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEntry(Base):
    """Every status change of an order, who caused it and which provider event carried it."""

    __tablename__ = "order_audit"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    to_status: Mapped[str] = mapped_column(sa.String(20))
    actor: Mapped[str] = mapped_column(sa.String(100))
    provider_event_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    detail: Mapped[str | None] = mapped_column(sa.String(300), nullable=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    request_id: Mapped[str | None] = request_id_column()


class InvoiceCounter(Base):
    """The last number given in one series (`INV-2026`, `CN-2026`). Its row is locked by the UPDATE
    that takes the next number, in the transaction that issues the document: a rollback gives the
    number back, a commit keeps it, so a series has no gaps and no number twice."""

    __tablename__ = "invoice_counters"
    __table_args__ = (sa.CheckConstraint("last_number >= 0", name="ck_invoice_counters_last_number"),)

    series: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    last_number: Mapped[int] = mapped_column(sa.Integer, default=0)


class InvoiceKind(enum.StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class Invoice(Base):
    """An invoice (one per paid order) or a credit note (one per refund whose money came back).

    Amounts are positive minor units of what the document states (a credit note's are what it
    credits); `gross_amount = net_amount + tax_amount`. Rows are never deleted nor renumbered: an
    erasure clears the buyer's VAT number and nothing else, so a number is never given twice.
    """

    __tablename__ = "invoices"
    __table_args__ = (
        sa.UniqueConstraint("series", "number", name="uq_invoices_series_number"),
        # One invoice per order, one credit note per refund (webhook replays and races included).
        sa.UniqueConstraint("order_id", "kind", "refund_key", name="uq_invoices_order_kind"),
        sa.CheckConstraint("kind IN ('invoice', 'credit_note')", name="ck_invoices_kind"),
        sa.CheckConstraint("number > 0 AND net_amount >= 0 AND tax_amount >= 0 "
                           "AND gross_amount = net_amount + tax_amount", name="ck_invoices_amounts"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(sa.String(12))
    series: Mapped[str] = mapped_column(sa.String(20))
    number: Mapped[int] = mapped_column(sa.Integer)
    invoice_number: Mapped[str] = mapped_column(sa.String(30), unique=True)  # INV-2026-000001
    order_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    # The refund a credit note is for; "-" on invoices (a NULL would not take part in the unique key).
    refund_key: Mapped[str] = mapped_column(sa.String(36))
    refund_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    credited_invoice_number: Mapped[str | None] = mapped_column(sa.String(30), nullable=True)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    currency: Mapped[str] = mapped_column(sa.String(3))
    subtotal_amount: Mapped[int] = mapped_column(sa.Integer)
    discount_amount: Mapped[int] = mapped_column(sa.Integer, default=0)
    net_amount: Mapped[int] = mapped_column(sa.Integer)
    tax_amount: Mapped[int] = mapped_column(sa.Integer, default=0)
    gross_amount: Mapped[int] = mapped_column(sa.Integer)
    tax_rate_bp: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)  # basis points: 1900 = 19 %
    tax_source: Mapped[str] = mapped_column(sa.String(10), default="none")  # none, local, stripe
    reverse_charge: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    buyer_country: Mapped[str | None] = mapped_column(sa.String(2), nullable=True)
    buyer_vat_number: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    course_title: Mapped[str] = mapped_column(sa.String(300))
    coupon_code: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
