"""Checkout (a flow: asks catalog for the offer, then the provider, around short transactions)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from billing import coupons, tax
from billing.models import (
    OWNING,
    AuditEntry,
    Coupon,
    Customer,
    Order,
    OrderStatus,
)
from billing.providers.base import (
    CheckoutSession,
    PaymentProvider,
)
from common.db import Database, upsert_insert, utcnow
from common.errors import Conflict, NotFound, UpstreamUnavailable
from common.http import ServiceClient
from common.observability.metrics import count
from contracts.peers import CatalogCourse, EnrollmentCheck, WatchProgress

from .fulfilment import _load, settle_unpaid
from .outcomes import CheckoutResult


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
