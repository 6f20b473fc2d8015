"""Coupons: creation by admins, pricing at checkout, and redemptions counted without overselling.

A redemption is taken in the transaction that creates the order, by a conditional UPDATE
(`... WHERE redemptions < max_redemptions`): concurrent checkouts serialize on the coupon row, so
the cap holds however many race. An order that expires or fails gives its redemption back.
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from billing.models import Coupon, Order
from billing.schemas import CouponCreate
from common.db import utcnow
from common.errors import Conflict, NotFound
from contracts.peers import CatalogCourse


def normalize_code(code: str) -> str:
    return code.strip().upper()


async def create_coupon(*, db_session: AsyncSession, body: CouponCreate) -> Coupon:
    code = normalize_code(body.code)
    if await db_session.scalar(sa.select(Coupon.id).where(Coupon.code == code)) is not None:
        raise Conflict("a coupon with this code exists", code="coupon_code_taken")
    coupon = Coupon(id=uuid.uuid4(), code=code, kind=body.kind, percent_off=body.percent_off,
                    amount_off=body.amount_off, currency=body.currency.upper() if body.currency else None,
                    course_id=body.course_id, valid_from=body.valid_from, valid_until=body.valid_until,
                    max_redemptions=body.max_redemptions, redemptions=0, active=True, created_at=utcnow())
    db_session.add(coupon)
    await db_session.flush()
    return coupon


async def list_coupons(*, db_session: AsyncSession) -> list[Coupon]:
    return list(await db_session.scalars(sa.select(Coupon).order_by(Coupon.created_at.desc(), Coupon.id)))


async def set_active(*, db_session: AsyncSession, coupon_id: uuid.UUID, active: bool) -> Coupon:
    coupon = await db_session.get(Coupon, coupon_id)
    if coupon is None:
        raise NotFound("coupon not found", code="coupon_not_found")
    coupon.active = active
    return coupon


async def find_for_checkout(*, db_session: AsyncSession, code: str) -> Coupon:
    coupon: Coupon | None = await db_session.scalar(sa.select(Coupon).where(Coupon.code == normalize_code(code)))
    if coupon is None:
        raise NotFound("no such coupon", code="coupon_not_found")
    return coupon


def discount_for(coupon: Coupon, course: CatalogCourse, now: dt.datetime) -> int:
    """The discount in minor units, or a refusal saying why the coupon does not apply."""
    if not coupon.active or (coupon.valid_from and now < coupon.valid_from) or (
            coupon.valid_until and now >= coupon.valid_until):
        raise Conflict("this coupon is not valid now", code="coupon_not_valid")
    if coupon.course_id is not None and coupon.course_id != course.course_id:
        raise Conflict("this coupon is for another course", code="coupon_not_applicable")
    if coupon.max_redemptions is not None and coupon.redemptions >= coupon.max_redemptions:
        raise Conflict("this coupon has been used up", code="coupon_exhausted")
    price = course.price_amount
    if coupon.kind == "percent":
        percent = coupon.percent_off or 0
        discount = (price * percent + 50) // 100  # half up, integers only
    else:
        if (coupon.currency or "").upper() != course.currency.upper():
            raise Conflict("this coupon is for another currency", code="coupon_currency_mismatch")
        discount = coupon.amount_off or 0
    if discount >= price:
        raise Conflict("this coupon would make the course free: enrol for free instead",
                       code="coupon_covers_full_price")
    return discount


async def redeem(db_session: AsyncSession, coupon_id: uuid.UUID, *, enforce_cap: bool = True) -> bool:
    """Take one redemption; False when the cap is reached (another checkout got the last one)."""
    condition = sa.and_(Coupon.id == coupon_id)
    if enforce_cap:
        condition = sa.and_(condition, Coupon.active.is_(True), sa.or_(
            Coupon.max_redemptions.is_(None), Coupon.redemptions < Coupon.max_redemptions))
    else:  # money already taken: count it, but the table's own cap still holds
        condition = sa.and_(condition, sa.or_(
            Coupon.max_redemptions.is_(None), Coupon.redemptions < Coupon.max_redemptions))
    result = await db_session.execute(
        sa.update(Coupon).where(condition).values(redemptions=Coupon.redemptions + 1)
        .execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0) == 1)


async def release(db_session: AsyncSession, order: Order) -> None:
    """An unpaid order gives its redemption back (once)."""
    if order.coupon_id is None or not order.coupon_redeemed:
        return
    await db_session.execute(
        sa.update(Coupon).where(Coupon.id == order.coupon_id, Coupon.redemptions > 0)
        .values(redemptions=Coupon.redemptions - 1).execution_options(synchronize_session=False))
    order.coupon_redeemed = False


async def store_provider_ids(*, db_session: AsyncSession, coupon_id: uuid.UUID, ids: tuple[str, str]) -> None:
    await db_session.execute(
        sa.update(Coupon).where(Coupon.id == coupon_id, Coupon.provider_coupon_id.is_(None))
        .values(provider_coupon_id=ids[0], provider_promotion_code_id=ids[1])
        .execution_options(synchronize_session=False))
