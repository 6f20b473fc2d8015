"""Refunds we ask for: the policy check (watch progress from playback), then the provider, never over what was paid."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from billing.models import (
    COMMITTED_REFUNDS,
    SETTLED,
    Order,
    OrderStatus,
    Refund,
    RefundStatus,
)
from billing.providers.base import (
    PaymentProvider,
    PermanentProviderError,
)
from billing.settings import BillingSettings
from common.db import Database, utcnow
from common.errors import Conflict
from common.http import ServiceClient

from .checkout import fetch_progress
from .fulfilment import _load, _lock
from .queries import get_order
from .webhooks import _advance_refund, _recompute_refund_state, _refunds


async def request_refund(*, db: Database, provider: PaymentProvider, order_id: uuid.UUID, amount: int | None,
                         reason: str, actor: str, kind: str, idempotency_key: str | None) -> Order:
    """Record the refund, ask the provider (key: our refund id), record its answer.

    A full refund (no amount) is keyed "full", so repeating it returns the same refund and order.
    If the provider is unreachable the refund stays "requested" and the worker retries it.
    """
    key = idempotency_key or ("full" if amount is None else f"generated-{uuid.uuid4()}")
    async with db.transaction() as session:
        order = await _lock(session, order_id)
        refund: Refund | None = await session.scalar(
            sa.select(Refund).where(Refund.order_id == order_id, Refund.idempotency_key == key))
        if refund is None:
            if order.status not in SETTLED:
                raise Conflict("only a paid order can be refunded", code="order_not_paid")
            refunds = await _refunds(session, order_id)
            remaining = order.amount - sum(r.amount for r in refunds if r.status in COMMITTED_REFUNDS)
            if amount is None and remaining == 0:
                return order  # everything is already refunded (or on its way)
            if remaining <= 0 or (amount is not None and amount > remaining):
                raise Conflict(f"at most {max(remaining, 0)} {order.currency} can still be refunded",
                               code="refund_exceeds_remaining", refundable_amount=max(remaining, 0))
            now = utcnow()
            refund = Refund(id=uuid.uuid4(), order_id=order_id, amount=amount or remaining,
                            currency=order.currency, status=RefundStatus.REQUESTED, kind=kind, reason=reason,
                            actor=actor, idempotency_key=key, created_at=now, updated_at=now)
            session.add(refund)
    await process_refund(db=db, provider=provider, refund_id=refund.id)
    async with db.session() as session:
        return await _load(session, order_id)


async def process_refund(*, db: Database, provider: PaymentProvider, refund_id: uuid.UUID) -> None:
    """Send a requested refund to the provider and record the answer (also the worker's retry)."""
    async with db.session() as session:
        refund = await session.get(Refund, refund_id)
        order = await session.get(Order, refund.order_id) if refund else None
    if refund is None or order is None or refund.status != RefundStatus.REQUESTED:
        return
    try:
        answer = await provider.refund(order, refund)
    except PermanentProviderError as exc:
        async with db.transaction() as session:
            locked = await _lock(session, order.id)
            row = await session.get(Refund, refund_id)
            if row is not None:
                _advance_refund(session, locked, row, RefundStatus.FAILED, failure=f"refused: {exc}")
        raise Conflict("the payment provider refused this refund", code="refund_refused") from exc
    async with db.transaction() as session:
        locked = await _lock(session, order.id)
        row = await session.get(Refund, refund_id, populate_existing=True)
        if row is None:
            return
        if row.provider_refund_id is None:
            row.provider_refund_id = answer.refund_id
        _advance_refund(session, locked, row, answer.status)
        await _recompute_refund_state(session, locked, actor=refund.actor, provider_event_id=None)


async def self_refund(*, db: Database, provider: PaymentProvider, playback: ServiceClient,
                      settings: BillingSettings, order_id: uuid.UUID, user_id: uuid.UUID, reason: str) -> Order:
    """A learner's own refund: full, within the window after payment and under the watched share."""
    async with db.session() as session:
        order = await get_order(db_session=session, order_id=order_id, user_id=user_id)
        already = await session.scalar(sa.select(Refund.id).where(Refund.order_id == order_id,
                                                                  Refund.idempotency_key == "full"))
    if already is not None or order.status == OrderStatus.REFUNDED:
        return order
    if order.status != OrderStatus.PAID or order.paid_at is None:
        raise Conflict("only a paid order without earlier refunds can be refunded by its buyer",
                       code="self_refund_not_allowed")
    if utcnow() > order.paid_at + dt.timedelta(days=settings.self_refund_window_days):
        raise Conflict(f"self-refunds are possible within {settings.self_refund_window_days} days of payment",
                       code="refund_window_closed")
    progress = await fetch_progress(playback=playback, user_id=user_id, course_id=order.course_id)
    if progress.watched_ratio * 100 >= settings.self_refund_max_watched_percent:
        raise Conflict(f"{settings.self_refund_max_watched_percent}% or more of the course was watched",
                       code="course_mostly_watched")
    return await request_refund(db=db, provider=provider, order_id=order_id, amount=None, reason=reason,
                                actor=f"user:{user_id}", kind="self", idempotency_key="full")
