"""Reads: a buyer's orders, an order, admin lists, and the order behind a checkout page."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from billing import coupons, invoices
from billing.models import (
    SETTLED,
    Order,
)
from billing.schemas import AdminOrderFilters, CurrencyTotals
from common.errors import NotFound


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
