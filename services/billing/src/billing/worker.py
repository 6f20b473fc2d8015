"""Billing's background work, one task per replica: receipts, refunds the provider has not confirmed
yet (a crash or an outage after we recorded them), provider customers of erased users, provider
sessions of orders we ended ourselves, and the expiry of the local provider's open checkout
sessions (Stripe expires its own at `expires_at` and tells us).

It wakes after every commit that left work (session.info flag) and otherwise every few seconds.
Every job is idempotent and safe to run on several replicas at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import sqlalchemy as sa

from billing import receipts, service
from billing.models import Order, OrderStatus, Refund, RefundStatus
from billing.providers import LocalProvider, PaymentProvider
from billing.settings import BillingSettings
from common.background import CommitWokenLoop
from common.db import utcnow
from common.runtime import Runtime

log = logging.getLogger(__name__)


class BillingWorker(CommitWokenLoop):
    def __init__(self, runtime: Runtime, provider: PaymentProvider, settings: BillingSettings) -> None:
        super().__init__(runtime.db, service.WORK_PENDING, "billing-worker")
        self.runtime = runtime
        self.provider = provider
        self.settings = settings

    async def _run(self) -> None:
        while not self.stopping:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("billing worker iteration failed")
            await self.pause(self.settings.worker_interval_seconds)

    async def run_once(self, now: dt.datetime | None = None) -> None:
        now = now or utcnow()
        await self.retry_refunds(now)
        await receipts.send_due(db=self.runtime.db, mailer=self.runtime.mailer, auth=self.runtime.client("auth"),
                                max_attempts=self.settings.receipt_max_attempts, now=now,
                                settings=self.settings)
        await service.delete_erased_customers(db=self.runtime.db, provider=self.provider)
        await service.expire_ended_sessions(db=self.runtime.db, provider=self.provider)
        if isinstance(self.provider, LocalProvider):
            await self.expire_local_sessions(now)

    async def retry_refunds(self, now: dt.datetime) -> int:
        """Refunds still 'requested': ours to send (duplicates at once, others after a grace period
        in which the request that recorded them is still talking to the provider)."""
        stale = now - dt.timedelta(seconds=self.settings.refund_retry_after_seconds)
        async with self.runtime.db.session() as session:
            ids = list(await session.scalars(sa.select(Refund.id).where(
                Refund.status == RefundStatus.REQUESTED,
                sa.or_(Refund.kind == "duplicate", Refund.created_at <= stale)).order_by(Refund.created_at).limit(20)))
        for refund_id in ids:
            try:
                await service.process_refund(db=self.runtime.db, provider=self.provider, refund_id=refund_id)
            except Exception as exc:  # the next round retries; the refund stays requested
                log.warning("refund retry failed", extra={"refund_id": str(refund_id), "error": repr(exc)[:300]})
        return len(ids)

    async def expire_local_sessions(self, now: dt.datetime) -> int:
        """What Stripe does at `expires_at`: the local provider sends checkout.session.expired, signed,
        through the same webhook."""
        assert isinstance(self.provider, LocalProvider)
        cutoff = now - dt.timedelta(seconds=self.settings.checkout_session_ttl_seconds)
        async with self.runtime.db.session() as session:
            orders = list(await session.scalars(sa.select(Order).where(
                Order.status == OrderStatus.PENDING, Order.provider == "local",
                Order.provider_session_id.is_not(None), Order.created_at <= cutoff).limit(50)))
        for order in orders:
            try:
                await self.provider.deliver(order, "expired")
            except Exception as exc:  # retried next round
                log.warning("local session expiry not delivered", extra={"order_id": str(order.id),
                                                                         "error": repr(exc)[:300]})
        return len(orders)
