"""Billing's background work, one task per replica: receipts, refunds the provider has not confirmed
yet (a crash or an outage after we recorded them), provider customers of erased users, provider
sessions of orders we ended ourselves, and the expiry of the local provider's open checkout
sessions (Stripe expires its own at `expires_at` and tells us).

It wakes after every commit that left work (session.info flag) and otherwise every few seconds.
Every job is idempotent and safe to run on several replicas at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from billing import receipts, service
from billing.models import Order, OrderStatus, Refund, RefundStatus
from billing.providers import LocalProvider, PaymentProvider
from billing.settings import BillingSettings
from common.db import utcnow
from common.runtime import Runtime

log = logging.getLogger(__name__)


class BillingWorker:
    def __init__(self, runtime: Runtime, provider: PaymentProvider, settings: BillingSettings) -> None:
        self.runtime = runtime
        self.provider = provider
        self.settings = settings
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        runtime.db.on_commit(self._after_commit)

    def _after_commit(self, session: AsyncSession) -> None:
        if session.info.pop(service.WORK_PENDING, False):
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="billing-worker")

    async def stop(self) -> None:
        self._stopping = True  # the loop ends even if the cancellation below is lost (see _run)
        self._wake.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("billing worker iteration failed")
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as the
            # event is set (a commit wakes us while the app shuts down), and stop() then waited forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.worker_interval_seconds):
                    await self._wake.wait()

    async def run_once(self, now: dt.datetime | None = None) -> None:
        now = now or utcnow()
        await self.retry_refunds(now)
        await receipts.send_due(db=self.runtime.db, mailer=self.runtime.mailer, auth=self.runtime.client("auth"),
                                max_attempts=self.settings.receipt_max_attempts, now=now)
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
