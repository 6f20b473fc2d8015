"""The one idempotent fulfilment used by every path, and the other status changes of an order."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from billing import coupons, invoices, tax
from billing.models import (
    FULFILLABLE,
    OWNING,
    AuditEntry,
    ErasedUser,
    Order,
    OrderStatus,
    Receipt,
    Refund,
    RefundStatus,
)
from billing.providers.base import (
    PaymentProvider,
)
from common.db import Database, utcnow
from common.errors import NotFound
from common.events import add_event
from common.observability.metrics import count, count_amount
from contracts.events import OrderPaid

from .outcomes import WORK_PENDING

log = logging.getLogger(__name__)


async def fulfill(*, db_session: AsyncSession, order_id: uuid.UUID, provider_payment_id: str | None,
                  provider_event_id: str | None, actor: str, charged: dict[str, Any] | None = None) -> bool:
    """The one way an order becomes paid, whichever event or path reports the payment.

    Returns False (and changes nothing, emits nothing) when the order is already settled. Every
    order of the learner and course is locked, so two payments for the course are decided one
    after the other: the second is a duplicate and is refunded (no event, catalog keeps the first).
    """
    order = await _load(db_session, order_id)
    siblings = await _lock_purchase(db_session, order.user_id, order.course_id)
    order = siblings[order.id]
    if order.status not in FULFILLABLE:
        return False
    tax.record_charged(order, charged)  # Stripe Tax: the amount and tax the provider's session charged
    now = utcnow()
    owner = next((o for o in siblings.values()
                  if o.id != order.id and o.status in OWNING and o.duplicate_of is None), None)
    reason = None
    if owner is not None:
        order.duplicate_of = owner.id
        reason = f"duplicate payment: order {owner.id} already paid for this course"
    elif order.anonymized_at is not None or await db_session.get(ErasedUser, order.user_id) is not None:
        # Nobody to give access to (an order opened while the erasure was being applied included):
        # refund, like a duplicate.
        order.duplicate_of = order.id
        reason = "payment for an erased account"
    if order.coupon_id is not None and not order.coupon_redeemed:
        # Expired or failed earlier (redemption given back), paid after all: the discount was used.
        order.coupon_redeemed = await coupons.redeem(db_session, order.coupon_id, enforce_cap=False)
        if not order.coupon_redeemed:
            log.warning("paid with a coupon beyond its cap", extra={"order_id": str(order.id)})
    _transition(db_session, order, OrderStatus.PAID, actor=actor, provider_event_id=provider_event_id, at=now,
                detail=reason)
    for sibling in siblings.values():
        if sibling.status == OrderStatus.PENDING:
            # Its checkout can no longer give anything: end it here (a payment there would be refunded).
            _transition(db_session, sibling, OrderStatus.EXPIRED, actor=actor, provider_event_id=provider_event_id,
                        at=now, detail=f"order {order.id} was paid for this course")
            await coupons.release(db_session, sibling)
            _expire_at_provider(db_session, sibling)
    order.paid_at = now
    order.provider_payment_id = provider_payment_id or order.provider_payment_id
    if reason is None:
        await add_event(db_session, OrderPaid(
            order_id=order.id, user_id=order.user_id, course_id=order.course_id, amount=order.amount,
            currency=order.currency, paid_at=now))
        await invoices.issue_invoice(db_session, order, at=now)
        _owe_receipt(db_session, order, "payment")
        count("billing", "orders_paid")
        count_amount("billing", "orders_paid", order.amount, order.currency)
    else:
        log.warning("refunding a payment that gives no access", extra={"order_id": str(order.id),
                                                                      "reason": reason})
        db_session.add(Refund(id=uuid.uuid4(), order_id=order.id, amount=order.amount, currency=order.currency,
                              status=RefundStatus.REQUESTED, kind="duplicate", reason=reason, actor="billing",
                              idempotency_key="full", created_at=now, updated_at=now))
        db_session.info[WORK_PENDING] = True
        count("billing", "duplicate_payments_refunded")
    await db_session.flush()
    # Refund events that arrived before the payment wait for it; applying them needs the webhook
    # module, which itself fulfils orders: imported here to break that cycle.
    from .webhooks import _apply_deferred

    await _apply_deferred(db_session, order)
    return True


async def settle_unpaid(*, db_session: AsyncSession, order_id: uuid.UUID, status: OrderStatus, actor: str,
                        provider_event_id: str | None, detail: str | None = None) -> bool:
    """pending -> failed/expired (the coupon redemption is given back); a late notice about an order
    already settled changes nothing."""
    order = await _lock(db_session, order_id)
    if order.status != OrderStatus.PENDING:
        return False
    _transition(db_session, order, status, actor=actor, provider_event_id=provider_event_id, at=utcnow(),
                detail=detail)
    await coupons.release(db_session, order)
    return True


def _transition(db_session: AsyncSession, order: Order, status: OrderStatus, *, actor: str,
                provider_event_id: str | None, at: dt.datetime, detail: str | None = None) -> None:
    db_session.add(AuditEntry(id=uuid.uuid4(), order_id=order.id, from_status=order.status, to_status=status,
                              actor=actor, provider_event_id=provider_event_id, at=at,
                              detail=detail[:300] if detail else None))
    order.status = status
    order.updated_at = at


def _expire_at_provider(db_session: AsyncSession, order: Order) -> None:
    if order.provider_session_id is not None:
        order.provider_expire_pending = True
        db_session.info[WORK_PENDING] = True


async def expire_ended_sessions(*, db: Database, provider: PaymentProvider, limit: int = 20) -> int:
    """Expire at the provider the open sessions of orders we ended ourselves. One completed meanwhile
    is left to its webhook (fulfil refunds a payment that gives no access)."""
    async with db.session() as session:
        orders = list(await session.scalars(sa.select(Order).where(Order.provider_expire_pending.is_(True))
                                            .limit(limit)))
    for order in orders:
        if order.provider == provider.name:
            await provider.expire_checkout(order)
        async with db.transaction() as session:
            await session.execute(sa.update(Order).where(Order.id == order.id).values(provider_expire_pending=False)
                                  .execution_options(synchronize_session=False))
    return len(orders)


def _owe_receipt(db_session: AsyncSession, order: Order, kind: str, refund: Refund | None = None) -> None:
    if order.anonymized_at is not None:
        return
    key = f"payment:{order.id}" if refund is None else f"refund:{refund.id}"
    now = utcnow()
    db_session.add(Receipt(id=uuid.uuid4(), dedup_key=key, order_id=order.id,
                           refund_id=refund.id if refund else None, kind=kind, status="pending", attempts=0,
                           next_attempt_at=now, created_at=now))
    db_session.info[WORK_PENDING] = True


async def _lock(db_session: AsyncSession, order_id: uuid.UUID) -> Order:
    """The order row, locked for this transaction (PostgreSQL) and re-read even if cached."""
    order: Order | None = await db_session.scalar(
        sa.select(Order).where(Order.id == order_id).with_for_update()
        .execution_options(populate_existing=True))
    if order is None:
        raise NotFound("order not found", code="order_not_found")
    return order


async def _lock_purchase(db_session: AsyncSession, user_id: uuid.UUID, course_id: uuid.UUID) -> dict[uuid.UUID, Order]:
    """Every order of one learner and course, locked in id order (no deadlock between two payments)."""
    rows = await db_session.scalars(
        sa.select(Order).where(Order.user_id == user_id, Order.course_id == course_id)
        .order_by(Order.id).with_for_update().execution_options(populate_existing=True))
    return {o.id: o for o in rows}


async def _load(db_session: AsyncSession, order_id: uuid.UUID) -> Order:
    order: Order | None = await db_session.scalar(
        sa.select(Order).where(Order.id == order_id).execution_options(populate_existing=True))
    if order is None:
        raise NotFound("order not found", code="order_not_found")
    return order
