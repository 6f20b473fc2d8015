"""Billing use cases: checkout, the one idempotent fulfilment, provider events, refunds, order reads.

Verbs that change one thing take a keyword-only `db_session`. Checkout, webhook application and
refunds also talk to the provider or must retry a lost race, so they take the `Database` and open
their own short transactions around the remote call (never holding one open across it).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.models import FULFILLABLE, AuditEntry, Order, OrderStatus, ProcessedProviderEvent, Refund
from billing.providers.base import CheckoutSession, PaymentProvider, ProviderEvent
from billing.schemas import CatalogCourse, EnrollmentCheck
from common.db import Database, utcnow
from common.errors import Conflict, NotFound, UpstreamUnavailable
from common.events import add_event
from common.http import ServiceClient
from common.observability.metrics import count

log = logging.getLogger(__name__)

T = TypeVar("T", CatalogCourse, EnrollmentCheck)


@dataclass(frozen=True)
class CheckoutResult:
    order: Order
    created: bool


# --- catalog -------------------------------------------------------------------------------------


async def fetch_offer(*, catalog: ServiceClient, user_id: uuid.UUID, course_id: uuid.UUID) -> CatalogCourse:
    """The course as catalog sells it now; refuses what cannot be bought by this user."""
    response = await catalog.get(f"/internal/courses/{course_id}")
    if response.status_code == 404:
        raise NotFound("course not found", code="course_not_found")
    course = _catalog_answer(response.status_code, response.content, CatalogCourse)
    if course.status != "published":
        raise Conflict("this course is not on sale", code="course_not_published")
    if course.is_free or course.price_amount == 0:
        raise Conflict("this course is free: enrol for free instead", code="course_is_free")
    check = await catalog.get("/internal/enrollments/check",
                              params={"user_id": str(user_id), "course_id": str(course_id)})
    if _catalog_answer(check.status_code, check.content, EnrollmentCheck).enrolled:
        raise Conflict("you are already enrolled in this course", code="already_enrolled")
    return course


def _catalog_answer(status: int, body: bytes, model: type[T]) -> T:
    """A non-200 or an answer outside the contract is catalog's failure (503), not the caller's."""
    if status == 200:
        try:
            return model.model_validate_json(body)
        except ValidationError:
            log.error("catalog answer outside the contract", extra={"model": model.__name__})
    else:
        log.warning("catalog refused an internal call", extra={"status": status})
    raise UpstreamUnavailable("catalog is unavailable", code="catalog_unavailable")


# --- checkout ------------------------------------------------------------------------------------


async def checkout(*, db: Database, catalog: ServiceClient, provider: PaymentProvider, user_id: uuid.UUID,
                   course_id: uuid.UUID, idempotency_key: str) -> CheckoutResult:
    """Create (or replay) the order for this key, then its provider session.

    The order row is committed before the provider is called, and the session stored afterwards:
    a crash in between leaves a pending order that the next retry with the same key completes,
    and the provider's own idempotency key (from our order id) returns the same session.
    """
    async with db.session() as session:
        order = await order_by_key(db_session=session, user_id=user_id, idempotency_key=idempotency_key)
    created = False
    if order is None:
        course = await fetch_offer(catalog=catalog, user_id=user_id, course_id=course_id)
        try:
            async with db.transaction() as session:
                order = await create_order(db_session=session, user_id=user_id, course=course,
                                           idempotency_key=idempotency_key, provider=provider.name)
            created = True
        except sa.exc.IntegrityError:
            # A concurrent request with the same key won the insert: answer with its order.
            async with db.session() as session:
                order = await order_by_key(db_session=session, user_id=user_id,
                                           idempotency_key=idempotency_key)
            if order is None:
                raise
    if order.course_id != course_id:
        raise Conflict("this Idempotency-Key was already used for another course",
                       code="idempotency_key_reused")
    if order.provider_session_id is None and order.status == OrderStatus.PENDING:
        checkout_session = await provider.create_checkout(order)
        async with db.transaction() as session:
            order = await attach_checkout(db_session=session, order_id=order.id, checkout=checkout_session)
    return CheckoutResult(order=order, created=created)


async def order_by_key(*, db_session: AsyncSession, user_id: uuid.UUID, idempotency_key: str) -> Order | None:
    result: Order | None = await db_session.scalar(
        sa.select(Order).where(Order.user_id == user_id, Order.idempotency_key == idempotency_key))
    return result


async def create_order(*, db_session: AsyncSession, user_id: uuid.UUID, course: CatalogCourse,
                       idempotency_key: str, provider: str) -> Order:
    now = utcnow()
    order = Order(id=uuid.uuid4(), user_id=user_id, course_id=course.course_id,
                  course_title=course.title[:300], amount=course.price_amount,
                  currency=course.currency.upper(), status=OrderStatus.PENDING,
                  idempotency_key=idempotency_key, provider=provider, created_at=now, updated_at=now)
    db_session.add(order)
    await db_session.flush()  # no ORM relationship orders the inserts; the audit row needs the order
    db_session.add(AuditEntry(id=uuid.uuid4(), order_id=order.id, from_status=None,
                              to_status=OrderStatus.PENDING, actor=f"user:{user_id}", at=now))
    await db_session.flush()
    count("billing", "checkouts_started")
    return order


async def attach_checkout(*, db_session: AsyncSession, order_id: uuid.UUID,
                          checkout: CheckoutSession) -> Order:
    """Store the provider session once; a concurrent retry got the same session from the provider."""
    await db_session.execute(
        sa.update(Order)
        .where(Order.id == order_id, Order.provider_session_id.is_(None))
        .values(provider_session_id=checkout.session_id, checkout_url=checkout.checkout_url,
                updated_at=utcnow()))
    return await _load(db_session, order_id)


# --- fulfilment and other status changes ---------------------------------------------------------


async def fulfill(*, db_session: AsyncSession, order_id: uuid.UUID, provider_payment_id: str | None,
                  provider_event_id: str | None, actor: str) -> bool:
    """The one way an order becomes paid, whichever event or path reports the payment.

    Returns False (and changes nothing, emits nothing) when the order is already paid or refunded.
    """
    order = await _lock(db_session, order_id)
    if order.status not in FULFILLABLE:
        return False
    now = utcnow()
    _transition(db_session, order, OrderStatus.PAID, actor=actor, provider_event_id=provider_event_id, at=now)
    order.paid_at = now
    order.provider_payment_id = provider_payment_id or order.provider_payment_id
    await add_event(db_session, "billing.order.paid", {
        "order_id": str(order.id), "user_id": str(order.user_id), "course_id": str(order.course_id),
        "amount": order.amount, "currency": order.currency, "paid_at": now.isoformat()})
    count("billing", "orders_paid")
    return True


async def settle_unpaid(*, db_session: AsyncSession, order_id: uuid.UUID, status: OrderStatus, actor: str,
                        provider_event_id: str | None) -> bool:
    """pending -> failed/expired; a late notice about an order already paid changes nothing."""
    order = await _lock(db_session, order_id)
    if order.status != OrderStatus.PENDING:
        return False
    _transition(db_session, order, status, actor=actor, provider_event_id=provider_event_id, at=utcnow())
    return True


def _transition(db_session: AsyncSession, order: Order, status: OrderStatus, *, actor: str,
                provider_event_id: str | None, at: dt.datetime) -> None:
    db_session.add(AuditEntry(id=uuid.uuid4(), order_id=order.id, from_status=order.status, to_status=status,
                              actor=actor, provider_event_id=provider_event_id, at=at))
    order.status = status
    order.updated_at = at


async def _lock(db_session: AsyncSession, order_id: uuid.UUID) -> Order:
    """The order row, locked for this transaction (PostgreSQL) and re-read even if cached."""
    order: Order | None = await db_session.scalar(
        sa.select(Order).where(Order.id == order_id).with_for_update()
        .execution_options(populate_existing=True))
    if order is None:
        raise NotFound("order not found", code="order_not_found")
    return order


async def _load(db_session: AsyncSession, order_id: uuid.UUID) -> Order:
    order: Order | None = await db_session.scalar(
        sa.select(Order).where(Order.id == order_id).execution_options(populate_existing=True))
    if order is None:
        raise NotFound("order not found", code="order_not_found")
    return order


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
    return outcome


async def handle_provider_event(*, db_session: AsyncSession, event: ProviderEvent) -> str:
    if await db_session.get(ProcessedProviderEvent, event.id) is not None:
        return "duplicate"
    db_session.add(ProcessedProviderEvent(event_id=event.id, type=event.type, received_at=utcnow()))
    await db_session.flush()
    if event.type not in _SESSION_EVENTS:
        return "ignored"
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
                             provider_payment_id=_payment_intent_id(session_object), actor=actor)
        return "fulfilled" if paid else "already_settled"
    status = OrderStatus.FAILED if event.type == "checkout.session.async_payment_failed" else OrderStatus.EXPIRED
    changed = await settle_unpaid(db_session=db_session, order_id=order.id, status=status, actor=actor,
                                  provider_event_id=event.id)
    return str(status) if changed else "already_settled"


_SESSION_EVENTS = frozenset({
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
})


async def _order_for_session(db_session: AsyncSession, session_object: dict[str, Any]) -> Order | None:
    """Our order id travels as client_reference_id (and metadata); the session id is the fallback."""
    metadata = session_object.get("metadata")
    candidates = [session_object.get("client_reference_id"),
                  metadata.get("order_id") if isinstance(metadata, dict) else None]
    for candidate in candidates:
        try:
            order_id = uuid.UUID(str(candidate))
        except ValueError:
            continue
        order = await db_session.get(Order, order_id)
        if order is not None:
            return order
    session_id = session_object.get("id")
    if not isinstance(session_id, str):
        return None
    found: Order | None = await db_session.scalar(
        sa.select(Order).where(Order.provider_session_id == session_id))
    return found


def _payment_intent_id(session_object: dict[str, Any]) -> str | None:
    intent = session_object.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    return intent if isinstance(intent, str) else None


def _warn_on_amount_mismatch(order: Order, session_object: dict[str, Any], event_id: str) -> None:
    """Paid is paid (Stripe may present another currency), but a difference deserves a look."""
    amount, currency = session_object.get("amount_total"), session_object.get("currency")
    if amount != order.amount or str(currency).upper() != order.currency:
        log.warning("paid amount differs from the order", extra={
            "order_id": str(order.id), "provider_event_id": event_id, "order_amount": order.amount,
            "order_currency": order.currency, "paid_amount": amount, "paid_currency": currency})


# --- refunds -------------------------------------------------------------------------------------


async def refund(*, db: Database, provider: PaymentProvider, order_id: uuid.UUID, reason: str,
                 actor: str) -> Order:
    """Full refund of a paid order. Repeating it returns the refunded order (one refund, one event)."""
    async with db.session() as session:
        order = await session.get(Order, order_id)
    if order is None:
        raise NotFound("order not found", code="order_not_found")
    if order.status == OrderStatus.REFUNDED:
        return order
    if order.status != OrderStatus.PAID:
        raise Conflict("only a paid order can be refunded", code="order_not_paid")
    # Same key on every retry, so the provider refunds once however often this runs.
    provider_refund_id = await provider.refund(order, order.amount, reason)
    async with db.transaction() as session:
        return await record_refund(db_session=session, order_id=order_id, reason=reason,
                                   provider_refund_id=provider_refund_id, actor=actor)


async def record_refund(*, db_session: AsyncSession, order_id: uuid.UUID, reason: str,
                        provider_refund_id: str, actor: str) -> Order:
    order = await _lock(db_session, order_id)
    if order.status == OrderStatus.REFUNDED:
        return order  # a concurrent call recorded it first
    if order.status != OrderStatus.PAID:
        raise Conflict("only a paid order can be refunded", code="order_not_paid")
    now = utcnow()
    _transition(db_session, order, OrderStatus.REFUNDED, actor=actor, provider_event_id=None, at=now)
    order.refunded_at = now
    db_session.add(Refund(id=uuid.uuid4(), order_id=order.id, amount=order.amount, currency=order.currency,
                          reason=reason, provider_refund_id=provider_refund_id, created_at=now))
    await add_event(db_session, "billing.order.refunded", {
        "order_id": str(order.id), "user_id": str(order.user_id), "course_id": str(order.course_id),
        "amount_refunded": order.amount, "currency": order.currency, "refunded_at": now.isoformat()})
    count("billing", "refunds")
    return order


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


async def order_for_checkout_page(*, db_session: AsyncSession, session_id: str) -> Order:
    order: Order | None = await db_session.scalar(
        sa.select(Order).where(Order.provider_session_id == session_id))
    if order is None:
        raise NotFound("checkout session not found", code="checkout_session_not_found")
    return order
