"""Erasure on auth.user.deleted.v1: personal data goes, the money records stay (legal retention)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from billing import coupons, invoices
from billing.models import (
    Customer,
    ErasedUser,
    Order,
    OrderStatus,
    Receipt,
    Refund,
)
from billing.providers.base import (
    PaymentProvider,
)
from common.db import Database, upsert_insert, utcnow

from .fulfilment import _expire_at_provider, _transition
from .outcomes import WORK_PENDING


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
