"""What the provider tells us: its events (verified, deduplicated on the event id, applied in any
order) and the success page, which asks the provider and then applies the same fulfilment."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from billing import invoices
from billing.models import (
    COMMITTED_REFUNDS,
    EFFECTIVE_REFUNDS,
    SETTLED,
    AuditEntry,
    DeferredProviderEvent,
    Order,
    OrderStatus,
    ProcessedProviderEvent,
    Refund,
    RefundStatus,
)
from billing.providers.base import (
    STRIPE_REFUND_STATUS,
    PaymentProvider,
    ProviderEvent,
)
from common.db import Database, utcnow
from common.events import add_event
from common.observability.metrics import count, count_amount
from contracts.events import OrderRefunded

from .fulfilment import _load, _lock, _owe_receipt, _transition, fulfill, settle_unpaid
from .outcomes import WEBHOOK_EVENTS

log = logging.getLogger(__name__)


async def confirm_payment(*, db: Database, provider: PaymentProvider, order: Order) -> Order:
    """The buyer is back on the success page before (or instead of) the webhook: if the provider
    says the session is paid, fulfil now; the webhook arriving later is then a no-op."""
    if order.status != OrderStatus.PENDING or not order.provider_session_id:
        return order
    session_object = await provider.retrieve_checkout(order)
    if session_object is None or session_object.get("payment_status") != "paid":
        return order
    async with db.transaction() as session:
        await fulfill(db_session=session, order_id=order.id, provider_event_id=None,
                      provider_payment_id=_object_id(session_object.get("payment_intent")), actor="success_page",
                      charged=session_object)
        return await _load(session, order.id)




async def apply_provider_event(*, db: Database, event: ProviderEvent) -> str:
    """Apply a verified event at most once; returns what happened (for the ack and the logs).

    The event id is recorded in the transaction of its effect; a concurrent delivery of the same
    event loses on the primary key and is answered as a duplicate.
    """
    try:
        async with db.transaction() as session:
            outcome = await handle_provider_event(db_session=session, event=event)
    except sa.exc.IntegrityError:
        async with db.session() as session:
            if await session.get(ProcessedProviderEvent, event.id) is None:
                raise
        outcome = "duplicate"
    log.info("provider event handled", extra={"provider_event_id": event.id, "event_type": event.type,
                                              "outcome": outcome})
    count("billing", "webhook_events")
    WEBHOOK_EVENTS.labels(event.type, outcome).inc()
    return outcome


async def handle_provider_event(*, db_session: AsyncSession, event: ProviderEvent) -> str:
    if await db_session.get(ProcessedProviderEvent, event.id) is not None:
        return "duplicate"
    db_session.add(ProcessedProviderEvent(event_id=event.id, type=event.type, received_at=utcnow()))
    await db_session.flush()
    if event.type in _SESSION_EVENTS:
        return await _apply_session_event(db_session, event)
    if event.type == "charge.refunded":
        return await _apply_charge_refunded(db_session, event.id, event.object)
    if event.type in ("refund.created", "refund.updated", "refund.failed"):
        return await _apply_refund_object(db_session, event.id, event.type, event.object)
    return "ignored"


_SESSION_EVENTS = frozenset({
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
})


async def _apply_session_event(db_session: AsyncSession, event: ProviderEvent) -> str:
    session_object = event.object
    order = await _order_for_session(db_session, session_object)
    if order is None:
        log.warning("provider event for an unknown order", extra={"provider_event_id": event.id})
        return "unknown_order"
    actor = f"provider:{order.provider}"
    if event.type in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        if session_object.get("payment_status") != "paid":
            return "awaiting_payment"  # delayed methods: async_payment_succeeded/failed follows
        _warn_on_amount_mismatch(order, session_object, event.id)
        paid = await fulfill(db_session=db_session, order_id=order.id, provider_event_id=event.id,
                             provider_payment_id=_object_id(session_object.get("payment_intent")), actor=actor,
                             charged=session_object)
        return "fulfilled" if paid else "already_settled"
    status = OrderStatus.FAILED if event.type == "checkout.session.async_payment_failed" else OrderStatus.EXPIRED
    changed = await settle_unpaid(db_session=db_session, order_id=order.id, status=status, actor=actor,
                                  provider_event_id=event.id)
    return str(status) if changed else "already_settled"


async def _order_for_session(db_session: AsyncSession, session_object: dict[str, Any]) -> Order | None:
    """Our order id travels as client_reference_id (and metadata); the session id is the fallback."""
    order = await _order_from_metadata(db_session, session_object, "client_reference_id")
    if order is not None:
        return order
    session_id = session_object.get("id")
    if not isinstance(session_id, str):
        return None
    found: Order | None = await db_session.scalar(
        sa.select(Order).where(Order.provider_session_id == session_id))
    return found


async def _order_from_metadata(db_session: AsyncSession, obj: dict[str, Any], *extra_fields: str) -> Order | None:
    metadata = obj.get("metadata")
    candidates = [obj.get(name) for name in extra_fields]
    candidates.append(metadata.get("order_id") if isinstance(metadata, dict) else None)
    for candidate in candidates:
        try:
            order_id = uuid.UUID(str(candidate))
        except ValueError:
            continue
        order = await db_session.get(Order, order_id)
        if order is not None:
            return order
    return None


async def _order_for_payment(db_session: AsyncSession, obj: dict[str, Any]) -> Order | None:
    """A charge or refund names our order in its metadata (refunds we created) or by payment intent."""
    order = await _order_from_metadata(db_session, obj)
    if order is not None:
        return order
    intent = _object_id(obj.get("payment_intent"))
    if intent is None:
        return None
    found: Order | None = await db_session.scalar(sa.select(Order).where(Order.provider_payment_id == intent))
    return found


def _object_id(value: Any) -> str | None:
    """An expandable Stripe field: either the id or the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


def _warn_on_amount_mismatch(order: Order, session_object: dict[str, Any], event_id: str) -> None:
    """Paid is paid (Stripe may present another currency), but a difference deserves a look."""
    amount, currency = session_object.get("amount_total"), session_object.get("currency")
    if amount != order.amount or str(currency).upper() != order.currency:
        log.warning("paid amount differs from the order", extra={
            "order_id": str(order.id), "provider_event_id": event_id, "order_amount": order.amount,
            "order_currency": order.currency, "paid_amount": amount, "paid_currency": currency})


async def _defer(db_session: AsyncSession, event_id: str, event_type: str, obj: dict[str, Any],
                 order: Order | None) -> str:
    """A refund of a payment we have not seen completed yet: kept until that payment is applied."""
    db_session.add(DeferredProviderEvent(event_id=event_id, type=event_type,
                                         payment_intent=_object_id(obj.get("payment_intent")),
                                         order_id=order.id if order else None, object=obj, received_at=utcnow()))
    await db_session.flush()
    return "deferred"


async def _apply_deferred(db_session: AsyncSession, order: Order) -> None:
    conditions = [DeferredProviderEvent.order_id == order.id]
    if order.provider_payment_id:
        conditions.append(DeferredProviderEvent.payment_intent == order.provider_payment_id)
    parked = list(await db_session.scalars(
        sa.select(DeferredProviderEvent).where(sa.or_(*conditions))
        .order_by(DeferredProviderEvent.received_at, DeferredProviderEvent.event_id).with_for_update()))
    for row in parked:
        await db_session.delete(row)
        await db_session.flush()
        if row.type == "charge.refunded":
            await _apply_charge_refunded(db_session, row.event_id, row.object)
        else:
            await _apply_refund_object(db_session, row.event_id, row.type, row.object)


async def _apply_charge_refunded(db_session: AsyncSession, event_id: str, charge: dict[str, Any]) -> str:
    """The charge's `amount_refunded` is the provider's running total: refunds it lists are matched to
    ours, and any remainder (a refund made in the provider's dashboard) is recorded as its own."""
    order = await _order_for_payment(db_session, charge)
    if order is None or order.status not in SETTLED:
        return await _defer(db_session, event_id, "charge.refunded", charge, order)
    order = await _lock(db_session, order.id)
    refunds = charge.get("refunds")
    for refund_object in (refunds.get("data") if isinstance(refunds, dict) else None) or []:
        if isinstance(refund_object, dict):
            await _upsert_provider_refund(db_session, order, refund_object, event_id)
    total = charge.get("amount_refunded")
    if isinstance(total, int) and not isinstance(total, bool):
        committed = sum(r.amount for r in await _refunds(db_session, order.id) if r.status in COMMITTED_REFUNDS)
        missing = min(total, order.amount) - committed
        if missing > 0:
            now = utcnow()
            refund = Refund(id=uuid.uuid4(), order_id=order.id, amount=missing, currency=order.currency,
                            status=RefundStatus.REQUESTED, kind="provider", reason="refunded at the provider",
                            actor=f"provider:{order.provider}", created_at=now, updated_at=now)
            db_session.add(refund)
            await db_session.flush()
            _advance_refund(db_session, order, refund, RefundStatus.SUCCEEDED, provider_event_id=event_id)
    changed = await _recompute_refund_state(db_session, order, actor=f"provider:{order.provider}",
                                            provider_event_id=event_id)
    return "refund_applied" if changed else "refund_recorded"


async def _apply_refund_object(db_session: AsyncSession, event_id: str, event_type: str,
                               refund_object: dict[str, Any]) -> str:
    order = await _order_for_payment(db_session, refund_object)
    if order is None or order.status not in SETTLED:
        return await _defer(db_session, event_id, event_type, refund_object, order)
    order = await _lock(db_session, order.id)
    known: Refund | None = await db_session.scalar(
        sa.select(Refund).where(Refund.provider_refund_id == str(refund_object.get("id"))))
    before = known.status if known is not None else None
    refund = await _upsert_provider_refund(db_session, order, refund_object, event_id)
    changed = await _recompute_refund_state(db_session, order, actor=f"provider:{order.provider}",
                                            provider_event_id=event_id)
    if refund is not None and refund.status == RefundStatus.FAILED and before != RefundStatus.FAILED:
        return "refund_failed"
    return "refund_applied" if changed else "refund_recorded"


# A refund only moves forward (requested < pending < succeeded < failed: a succeeded refund can
# still fail later, a failed one never succeeds).
_REFUND_RANK = {RefundStatus.REQUESTED: 0, RefundStatus.PENDING: 1, RefundStatus.SUCCEEDED: 2,
                RefundStatus.FAILED: 3}


async def _adopt_unnamed_refund(db_session: AsyncSession, order: Order, amount: int) -> Refund | None:
    """A provider refund we learnt about only from `charge.refunded`'s running total (no id) is the
    same money as the refund event arriving after it: match it instead of counting it twice.

    An unnamed row of exactly this amount becomes this refund; a larger one (several refunds summed
    up) gives this amount away to the new row, so the order's total stays what the provider says."""
    unnamed = list(await db_session.scalars(
        sa.select(Refund).where(Refund.order_id == order.id, Refund.kind == "provider",
                                Refund.provider_refund_id.is_(None), Refund.status != RefundStatus.FAILED,
                                Refund.amount >= amount)
        .order_by(Refund.amount, Refund.created_at).execution_options(populate_existing=True)))
    exact = next((r for r in unnamed if r.amount == amount), None)
    if exact is not None:
        return exact
    if unnamed:
        unnamed[0].amount -= amount
        unnamed[0].updated_at = utcnow()
    return None


async def _upsert_provider_refund(db_session: AsyncSession, order: Order, obj: dict[str, Any],
                                  event_id: str) -> Refund | None:
    provider_refund_id = obj.get("id")
    amount = obj.get("amount")
    if not isinstance(provider_refund_id, str):
        return None
    refund: Refund | None = await db_session.scalar(
        sa.select(Refund).where(Refund.provider_refund_id == provider_refund_id))
    if refund is None:
        metadata = obj.get("metadata")
        ours = metadata.get("refund_id") if isinstance(metadata, dict) else None
        try:
            refund = await db_session.get(Refund, uuid.UUID(str(ours))) if ours else None
        except ValueError:
            refund = None
        if refund is not None and refund.order_id != order.id:
            refund = None
    if refund is None:
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            return None
        refund = await _adopt_unnamed_refund(db_session, order, amount)
    if refund is None:
        assert isinstance(amount, int)
        now = utcnow()
        refund = Refund(id=uuid.uuid4(), order_id=order.id, amount=amount, currency=order.currency,
                        status=RefundStatus.REQUESTED, kind="provider", reason="refunded at the provider",
                        actor=f"provider:{order.provider}", created_at=now, updated_at=now)
        db_session.add(refund)
    if refund.provider_refund_id is None:
        refund.provider_refund_id = provider_refund_id
    await db_session.flush()
    status = STRIPE_REFUND_STATUS.get(str(obj.get("status")))
    if status is not None:
        _advance_refund(db_session, order, refund, status, failure=obj.get("failure_reason"),
                        provider_event_id=event_id)
    log.info("provider refund applied", extra={"order_id": str(order.id), "refund_id": str(refund.id),
                                               "provider_event_id": event_id, "status": refund.status})
    return refund


def _advance_refund(db_session: AsyncSession, order: Order, refund: Refund, status: RefundStatus,
                    failure: Any = None, provider_event_id: str | None = None) -> None:
    """Move a refund forward (never back) and audit it on its order, with the event that said so."""
    if _REFUND_RANK[status] <= _REFUND_RANK[RefundStatus(refund.status)]:
        return
    became_effective = refund.status not in EFFECTIVE_REFUNDS and status in EFFECTIVE_REFUNDS
    now = utcnow()
    db_session.add(AuditEntry(
        id=uuid.uuid4(), order_id=order.id, from_status=order.status, to_status=order.status,
        actor=f"provider:{order.provider}" if provider_event_id else refund.actor,
        provider_event_id=provider_event_id, at=now,
        detail=f"refund {refund.id} ({refund.kind}, {refund.amount} {refund.currency}): {refund.status} -> {status}"))
    refund.status = status
    refund.updated_at = now
    if status == RefundStatus.FAILED:
        refund.failure = str(failure or "failed at the provider")[:300]
        if refund.idempotency_key == "full":
            refund.idempotency_key = f"failed-{refund.id}"  # a new full refund may be asked for
        count("billing", "refunds_failed")
    if became_effective:
        _owe_receipt(db_session, order, "refund", refund)


async def _refunds(db_session: AsyncSession, order_id: uuid.UUID) -> list[Refund]:
    return list(await db_session.scalars(sa.select(Refund).where(Refund.order_id == order_id)
                                         .execution_options(populate_existing=True)))


async def _recompute_refund_state(db_session: AsyncSession, order: Order, *, actor: str,
                                  provider_event_id: str | None) -> bool:
    """Order status and refunded amount from its effective refunds; a full refund emits the event."""
    await db_session.flush()
    await invoices.issue_credit_notes(db_session, order)
    effective = sum(r.amount for r in await _refunds(db_session, order.id) if r.status in EFFECTIVE_REFUNDS)
    if effective > order.amount:
        log.error("refunds exceed the payment", extra={"order_id": str(order.id), "refunded": effective})
        effective = order.amount
    order.amount_refunded = effective
    if effective == 0:
        target = OrderStatus.PAID
    elif effective < order.amount:
        target = OrderStatus.PARTIALLY_REFUNDED
    else:
        target = OrderStatus.REFUNDED
    if target == order.status:
        return False
    now = utcnow()
    detail = f"refunded {effective} of {order.amount} {order.currency}"
    if target != OrderStatus.REFUNDED and order.refunded_at is not None:
        # Only a refund that had succeeded and then failed gets here (Stripe: rare, e.g. a closed
        # card). Catalog never re-grants for an order once refunded, so a person must decide.
        detail += "; a refund that had succeeded failed after access was revoked: grant access again by hand"
    _transition(db_session, order, target, actor=actor, provider_event_id=provider_event_id, at=now,
                detail=detail)
    if target == OrderStatus.REFUNDED:
        order.refunded_at = now
        if order.duplicate_of is None:
            await add_event(db_session, OrderRefunded(
                order_id=order.id, user_id=order.user_id, course_id=order.course_id, amount_refunded=order.amount,
                currency=order.currency, refunded_at=now))
        count("billing", "refunds")
        count_amount("billing", "refunds", order.amount, order.currency)
    elif order.refunded_at is not None:
        log.error("a full refund failed after access was revoked: follow up by hand",
                  extra={"order_id": str(order.id)})
        order.refunded_at = None
    return True
