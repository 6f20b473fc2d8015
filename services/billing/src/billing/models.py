"""Billing's tables: orders, their audit trail, refunds and the provider events already applied."""

from __future__ import annotations

import datetime as dt
import enum
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import UTCDateTime, utcnow


class Base(DeclarativeBase):
    pass


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUNDED = "refunded"


# A successful payment may arrive after a failure or expiry notice (events come out of order).
FULFILLABLE = (OrderStatus.PENDING, OrderStatus.FAILED, OrderStatus.EXPIRED)


class Order(Base):
    """One purchase attempt of one course; amounts in minor units of `currency` (ISO 4217)."""

    __tablename__ = "orders"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_idempotency_key"),
        sa.CheckConstraint("amount > 0", name="ck_orders_amount_positive"),
        sa.CheckConstraint(
            "status IN ('pending', 'paid', 'failed', 'expired', 'refunded')", name="ck_orders_status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    course_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    # Title at purchase time: the product name on the provider's page and receipt.
    course_title: Mapped[str] = mapped_column(sa.String(300))
    amount: Mapped[int] = mapped_column(sa.Integer)
    currency: Mapped[str] = mapped_column(sa.String(3))
    status: Mapped[str] = mapped_column(sa.String(16), default=OrderStatus.PENDING)
    idempotency_key: Mapped[str] = mapped_column(sa.String(200))
    provider: Mapped[str] = mapped_column(sa.String(16))
    provider_session_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True, nullable=True)
    provider_payment_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    checkout_url: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refunded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ProcessedProviderEvent(Base):
    """A provider event (Stripe `evt_...`) already applied; inserted with the effect it caused."""

    __tablename__ = "processed_provider_events"

    event_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(100))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Refund(Base):
    """Full refunds only for now, hence one per order (the unique key makes a second impossible)."""

    __tablename__ = "refunds"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("orders.id"), unique=True)
    amount: Mapped[int] = mapped_column(sa.Integer)
    currency: Mapped[str] = mapped_column(sa.String(3))
    reason: Mapped[str] = mapped_column(sa.Text)
    provider_refund_id: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(Base):
    """Every status change of an order, who caused it and which provider event carried it."""

    __tablename__ = "order_audit"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(sa.String(16))
    actor: Mapped[str] = mapped_column(sa.String(100))
    provider_event_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
