"""Billing use cases: checkout, the one idempotent fulfilment, provider events, refunds, reads, erasure.

Verbs that change one thing take a keyword-only `db_session`. Checkout, webhook application and
refunds also talk to the provider or must retry a lost race, so they take the `Database` and open
their own short transactions around the remote call (never holding one open across it).

Money invariants, all enforced under a row lock of the order (or of every order of one learner and
course, for fulfilment):
- an order becomes paid once, whatever reports it (webhook, success page), and emits one event;
- one learner holds at most one open checkout per course, and a second payment for a course they
  already own is refunded automatically (no event: catalog's access stays with the first order);
- refunds never exceed what was paid; a full refund emits `billing.order.refunded.v1` once.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from billing import coupons, invoices, tax
from billing.models import (
    COMMITTED_REFUNDS,
    EFFECTIVE_REFUNDS,
    FULFILLABLE,
    OWNING,
    SETTLED,
    AuditEntry,
    Coupon,
    Customer,
    DeferredProviderEvent,
    ErasedUser,
    Order,
    OrderStatus,
    ProcessedProviderEvent,
    Receipt,
    Refund,
    RefundStatus,
)
from billing.providers.base import (
    STRIPE_REFUND_STATUS,
    CheckoutSession,
    PaymentProvider,
    PermanentProviderError,
    ProviderEvent,
)
from billing.schemas import AdminOrderFilters, CurrencyTotals
from billing.settings import BillingSettings
from common.db import Database, upsert_insert, utcnow
from common.errors import Conflict, NotFound, UpstreamUnavailable
from common.events import add_event
from common.http import ServiceClient
from common.observability.metrics import count, count_amount
from contracts.events import OrderPaid, OrderRefunded
from contracts.peers import CatalogCourse, EnrollmentCheck, WatchProgress

log = logging.getLogger(__name__)

WEBHOOK_EVENTS = Counter("billing_webhook_events_total", "Verified provider events by type and outcome",
                         ["event_type", "outcome"])
WEBHOOK_REJECTED = Counter("billing_webhook_rejected_total", "Webhook deliveries refused before any effect "
                           "(bad signature, stale, not an event)", ["reason"])


# session.info key: the transaction created work for the background worker (receipts, refunds).
WORK_PENDING = "billing_work_pending"


@dataclass(frozen=True)
class CheckoutResult:
    order: Order
    created: bool


# --- peers ---------------------------------------------------------------------------------------


async def fetch_offer(*, catalog: ServiceClient, user_id: uuid.UUID, course_id: uuid.UUID) -> CatalogCourse:
    """The course as catalog sells it now; refuses what cannot be bought by this user."""
    course = await catalog.get_model(f"/internal/courses/{course_id}", CatalogCourse,
                                     missing=NotFound("course not found", code="course_not_found"))
    if course.status != "published":
        raise Conflict("this course is not on sale", code="course_not_published")
    if course.is_free or course.price_amount == 0:
        raise Conflict("this course is free: enrol for free instead", code="course_is_free")
    check = await catalog.get_model("/internal/enrollments/check", EnrollmentCheck,
                                    params={"user_id": str(user_id), "course_id": str(course_id)})
    if check.enrolled:
        raise Conflict("you are already enrolled in this course", code="already_enrolled")
    return course


async def fetch_progress(*, playback: ServiceClient, user_id: uuid.UUID, course_id: uuid.UUID) -> WatchProgress:
    """How much of the course the learner watched; without an answer there is no self-refund."""
    try:
        return await playback.get_model("/internal/progress", WatchProgress,
                                        params={"user_id": str(user_id), "course_id": str(course_id)})
    except UpstreamUnavailable as exc:
        raise UpstreamUnavailable("watch progress is unavailable, so the refund policy cannot be checked: "
                                  "try again later or ask support", code="progress_unavailable") from exc


# --- checkout ------------------------------------------------------------------------------------


async def checkout(*, db: Database, catalog: ServiceClient, provider: PaymentProvider, user_id: uuid.UUID,
                   course_id: uuid.UUID, idempotency_key: str, coupon_code: str | None = None,
                   buyer: tax.Buyer | None = None, tax_policy: tax.TaxPolicy | None = None) -> CheckoutResult:
    """Create (or replay) the order for this key, then its provider session.

    The order row is committed before the provider is called, and the session stored afterwards:
    a crash in between leaves a pending order that the next retry completes, and the provider's
    own idempotency key (from our order id) returns the same session. A learner with an open
    checkout for the course gets that checkout back (or, if the price or coupon changed, the old
    one is expired at the provider first), so two payments cannot be started.
    """
    async with db.session() as session:
        order = await order_by_key(db_session=session, user_id=user_id, idempotency_key=idempotency_key)
    created = False
    if order is None:
        course = await fetch_offer(catalog=catalog, user_id=user_id, course_id=course_id)
        order, created = await _open_order(db=db, provider=provider, user_id=user_id, course=course,
                                           idempotency_key=idempotency_key, coupon_code=coupon_code,
                                           buyer=buyer, tax_policy=tax_policy)
    if order.course_id != course_id:
        raise Conflict("this Idempotency-Key was already used for another course",
                       code="idempotency_key_reused")
    if order.provider_session_id is None and order.status == OrderStatus.PENDING:
        order = await _start_provider_session(db=db, provider=provider, order=order)
    return CheckoutResult(order=order, created=created)


async def _open_order(*, db: Database, provider: PaymentProvider, user_id: uuid.UUID, course: CatalogCourse,
                      idempotency_key: str, coupon_code: str | None, buyer: tax.Buyer | None,
                      tax_policy: tax.TaxPolicy | None) -> tuple[Order, bool]:
    now = utcnow()
    coupon: Coupon | None = None
    discount = 0
    async with db.session() as session:
        if await _owning_order(session, user_id, course.course_id) is not None:
            raise Conflict("you already bought this course", code="already_enrolled")
        if coupon_code:
            coupon = await coupons.find_for_checkout(db_session=session, code=coupon_code)
            discount = coupons.discount_for(coupon, course, now)
        open_order = await _open_checkout(session, user_id, course.course_id)
    quote = (tax.quote(tax_policy, buyer, price=course.price_amount, discount=discount)
             if tax_policy is not None and buyer is not None else None)
    if open_order is not None:
        same_offer = (open_order.subtotal_amount == (quote.subtotal if quote else course.price_amount)
                      and open_order.currency == course.currency.upper()
                      and open_order.coupon_id == (coupon.id if coupon else None)
                      and (buyer is None or tax.same_buyer(open_order, buyer)))
        if same_offer:
            return open_order, False
        await _supersede(db=db, provider=provider, order=open_order, user_id=user_id)
    try:
        async with db.transaction() as session:
            if coupon is not None and not await coupons.redeem(session, coupon.id):
                raise Conflict("this coupon has been used up", code="coupon_exhausted")
            order = await create_order(db_session=session, user_id=user_id, course=course, coupon=coupon,
                                       discount=discount, idempotency_key=idempotency_key, provider=provider.name,
                                       quote=quote)
        return order, True
    except sa.exc.IntegrityError:
        # A concurrent request won: with the same key (its order), or for the same course (its checkout).
        async with db.session() as session:
            existing = (await order_by_key(db_session=session, user_id=user_id, idempotency_key=idempotency_key)
                        or await _open_checkout(session, user_id, course.course_id))
        if existing is None:
            raise
        return existing, False


async def _supersede(*, db: Database, provider: PaymentProvider, order: Order, user_id: uuid.UUID) -> None:
    """End an open checkout whose offer changed; if it was paid meanwhile, the learner owns the course."""
    if not await provider.expire_checkout(order):
        raise Conflict("a payment for this course is being completed", code="checkout_in_progress")
    async with db.transaction() as session:
        ended = await settle_unpaid(db_session=session, order_id=order.id, status=OrderStatus.EXPIRED,
                                    actor=f"user:{user_id}", provider_event_id=None,
                                    detail="superseded by a new checkout")
        if not ended and (await _load(session, order.id)).status in OWNING:
            raise Conflict("you already bought this course", code="already_enrolled")  # paid meanwhile


async def _start_provider_session(*, db: Database, provider: PaymentProvider, order: Order) -> Order:
    customer_id = await _customer_for(db=db, provider=provider, user_id=order.user_id)
    promotion_code_id = None
    if order.coupon_id is not None:
        async with db.session() as session:
            coupon = await session.get(Coupon, order.coupon_id)
        if coupon is not None:
            if coupon.provider_promotion_code_id is None:
                ids = await provider.ensure_coupon(coupon)
                if ids is not None:
                    async with db.transaction() as session:
                        await coupons.store_provider_ids(db_session=session, coupon_id=coupon.id, ids=ids)
                    coupon.provider_promotion_code_id = ids[1]
            promotion_code_id = coupon.provider_promotion_code_id
    checkout_session = await provider.create_checkout(order, customer_id=customer_id,
                                                      promotion_code_id=promotion_code_id)
    async with db.transaction() as session:
        return await attach_checkout(db_session=session, order_id=order.id, checkout=checkout_session,
                                     customer_id=customer_id)


async def _customer_for(*, db: Database, provider: PaymentProvider, user_id: uuid.UUID) -> str | None:
    """The user's provider customer, created on their first checkout and reused afterwards."""
    async with db.session() as session:
        known = await session.get(Customer, user_id)
    if known is not None and known.provider == provider.name and known.erase_requested_at is None:
        return known.provider_customer_id
    customer_id = await provider.ensure_customer(user_id)
    if customer_id is None:
        return None
    async with db.transaction() as session:
        await session.execute(upsert_insert(session, Customer).values(
            user_id=user_id, provider=provider.name, provider_customer_id=customer_id, created_at=utcnow(),
        ).on_conflict_do_nothing(index_elements=["user_id"]))
    return customer_id


async def order_by_key(*, db_session: AsyncSession, user_id: uuid.UUID, idempotency_key: str) -> Order | None:
    result: Order | None = await db_session.scalar(
        sa.select(Order).where(Order.user_id == user_id, Order.idempotency_key == idempotency_key))
    return result


async def _open_checkout(db_session: AsyncSession, user_id: uuid.UUID, course_id: uuid.UUID) -> Order | None:
    found: Order | None = await db_session.scalar(sa.select(Order).where(
        Order.user_id == user_id, Order.course_id == course_id, Order.status == OrderStatus.PENDING))
    return found


async def _owning_order(db_session: AsyncSession, user_id: uuid.UUID, course_id: uuid.UUID) -> Order | None:
    found: Order | None = await db_session.scalar(sa.select(Order).where(
        Order.user_id == user_id, Order.course_id == course_id, Order.status.in_(OWNING),
        Order.duplicate_of.is_(None)).limit(1))
    return found


async def create_order(*, db_session: AsyncSession, user_id: uuid.UUID, course: CatalogCourse,
                       coupon: Coupon | None, discount: int, idempotency_key: str, provider: str,
                       quote: tax.Quote | None = None) -> Order:
    now = utcnow()
    order = Order(id=uuid.uuid4(), user_id=user_id, course_id=course.course_id,
                  course_title=course.title[:300], subtotal_amount=course.price_amount, discount_amount=discount,
                  amount=course.price_amount - discount, amount_refunded=0, currency=course.currency.upper(),
                  coupon_id=coupon.id if coupon else None, coupon_code=coupon.code if coupon else None,
                  coupon_redeemed=coupon is not None, status=OrderStatus.PENDING,
                  idempotency_key=idempotency_key, provider=provider, created_at=now, updated_at=now)
    if quote is not None:
        tax.apply_quote(order, quote)
    db_session.add(order)
    await db_session.flush()  # no ORM relationship orders the inserts; the audit row needs the order
    db_session.add(AuditEntry(id=uuid.uuid4(), order_id=order.id, from_status=None,
                              to_status=OrderStatus.PENDING, actor=f"user:{user_id}", at=now,
                              detail=f"coupon {coupon.code}" if coupon else None))
    await db_session.flush()
    count("billing", "checkouts_started")
    return order


async def attach_checkout(*, db_session: AsyncSession, order_id: uuid.UUID, checkout: CheckoutSession,
                          customer_id: str | None = None) -> Order:
    """Store the provider session once; a concurrent retry got the same session from the provider."""
    await db_session.execute(
        sa.update(Order)
        .where(Order.id == order_id, Order.provider_session_id.is_(None))
        .values(provider_session_id=checkout.session_id, checkout_url=checkout.checkout_url,
                provider_customer_id=customer_id, updated_at=utcnow()))
    return await _load(db_session, order_id)


# --- fulfilment and other status changes ---------------------------------------------------------


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


# --- the success page: ask the provider, then the same fulfilment --------------------------------


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


# --- provider events (webhooks) ------------------------------------------------------------------


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


# --- refunds we ask for --------------------------------------------------------------------------


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


# --- reads ---------------------------------------------------------------------------------------


async def get_order(*, db_session: AsyncSession, order_id: uuid.UUID, user_id: uuid.UUID | None,
                    is_admin: bool = False) -> Order:
    """Owners read their orders, admins any; anyone else gets the same 404 as a missing order."""
    order = await db_session.get(Order, order_id)
    if order is None or not (is_admin or order.user_id == user_id):
        raise NotFound("order not found", code="order_not_found")
    return order


async def list_orders(*, db_session: AsyncSession, user_id: uuid.UUID, page: int,
                      page_size: int) -> tuple[list[Order], int]:
    total = await db_session.scalar(sa.select(sa.func.count()).select_from(Order)
                                    .where(Order.user_id == user_id)) or 0
    rows = await db_session.scalars(
        sa.select(Order).where(Order.user_id == user_id)
        .order_by(Order.created_at.desc(), Order.id).offset((page - 1) * page_size).limit(page_size))
    return list(rows), total


async def admin_list_orders(*, db_session: AsyncSession, filters: AdminOrderFilters, page: int,
                            page_size: int) -> tuple[list[Order], int, list[CurrencyTotals]]:
    conditions: list[Any] = []
    if filters.status:
        conditions.append(Order.status == filters.status)
    if filters.user_id:
        conditions.append(Order.user_id == filters.user_id)
    if filters.course_id:
        conditions.append(Order.course_id == filters.course_id)
    if filters.currency:
        conditions.append(Order.currency == filters.currency.upper())
    if filters.coupon_code:
        conditions.append(Order.coupon_code == coupons.normalize_code(filters.coupon_code))
    if filters.created_from:
        conditions.append(Order.created_at >= filters.created_from)
    if filters.created_to:
        conditions.append(Order.created_at < filters.created_to)
    where = sa.and_(sa.true(), *conditions)
    total = await db_session.scalar(sa.select(sa.func.count()).select_from(Order).where(where)) or 0
    rows = await db_session.scalars(sa.select(Order).where(where).order_by(Order.created_at.desc(), Order.id)
                                    .offset((page - 1) * page_size).limit(page_size))
    sums = await db_session.execute(
        sa.select(Order.currency, sa.func.count(), sa.func.sum(Order.amount), sa.func.sum(Order.discount_amount),
                  sa.func.sum(Order.amount_refunded), sa.func.sum(Order.tax_amount))
        .where(where, Order.status.in_(SETTLED)).group_by(Order.currency).order_by(Order.currency))
    credited = await invoices.tax_credited_by_currency(db_session, sa.select(Order.id).where(
        where, Order.status.in_(SETTLED)))
    totals = []
    for currency, n, gross, discount, refunded, charged_tax in sums.all():
        kept, kept_tax = int(gross or 0) - int(refunded or 0), int(charged_tax or 0) - credited.get(currency, 0)
        totals.append(CurrencyTotals(currency=currency, orders=n, gross_amount=int(gross or 0),
                                     discount_amount=int(discount or 0), refunded_amount=int(refunded or 0),
                                     net_amount=kept, tax_amount=kept_tax, net_of_tax_amount=kept - kept_tax))
    return list(rows), total, totals


async def order_for_checkout_page(*, db_session: AsyncSession, session_id: str) -> Order:
    order: Order | None = await db_session.scalar(
        sa.select(Order).where(Order.provider_session_id == session_id))
    if order is None:
        raise NotFound("checkout session not found", code="checkout_session_not_found")
    return order


# --- erasure -------------------------------------------------------------------------------------


async def erase_user(*, db_session: AsyncSession, user_id: uuid.UUID) -> int:
    """auth.user.deleted.v1: keep what accounting must (amounts, currency, dates, provider ids, the
    pseudonymous user id that ties a refund to its order); drop what names a person (receipt
    addresses, free-text reasons, the provider customer). Open checkouts are ended; one paid anyway
    is refunded by fulfil. Idempotent."""
    now = utcnow()
    await db_session.execute(upsert_insert(db_session, ErasedUser).values(user_id=user_id, erased_at=now)
                             .on_conflict_do_nothing(index_elements=["user_id"]))
    orders = list(await db_session.scalars(sa.select(Order).where(Order.user_id == user_id)
                                           .order_by(Order.id).with_for_update()))
    for order in orders:
        if order.status == OrderStatus.PENDING:
            _transition(db_session, order, OrderStatus.EXPIRED, actor="erasure", provider_event_id=None, at=now,
                        detail="account deleted")
            await coupons.release(db_session, order)
            _expire_at_provider(db_session, order)
        if order.anonymized_at is None:
            order.anonymized_at = now
        order.buyer_vat_number = None
    order_ids = [o.id for o in orders]
    await invoices.erase_buyer(db_session, order_ids)
    if order_ids:
        await db_session.execute(sa.update(Receipt).where(Receipt.order_id.in_(order_ids))
                                 .values(recipient=None).execution_options(synchronize_session=False))
        await db_session.execute(sa.update(Receipt).where(Receipt.order_id.in_(order_ids),
                                                          Receipt.status == "pending")
                                 .values(status="skipped", last_error="account deleted")
                                 .execution_options(synchronize_session=False))
        await db_session.execute(sa.update(Refund).where(Refund.order_id.in_(order_ids))
                                 .values(reason="[erased]").execution_options(synchronize_session=False))
    customer = await db_session.get(Customer, user_id)
    if customer is not None and customer.erase_requested_at is None:
        # The provider's copy goes too: the worker deletes it there (a remote call, not in this handler).
        customer.erase_requested_at = now
        db_session.info[WORK_PENDING] = True
    return len(orders)


async def delete_erased_customers(*, db: Database, provider: PaymentProvider, limit: int = 20) -> int:
    """Delete at the provider the customers of erased users, then forget them here."""
    async with db.session() as session:
        rows = list(await session.scalars(sa.select(Customer).where(Customer.erase_requested_at.is_not(None))
                                          .limit(limit)))
    for customer in rows:
        if customer.provider == provider.name:
            await provider.delete_customer(customer.provider_customer_id)
        async with db.transaction() as session:
            await session.execute(sa.delete(Customer).where(Customer.user_id == customer.user_id))
    return len(rows)
