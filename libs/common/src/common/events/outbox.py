"""Transactional outbox: `add_event` joins the caller's transaction; the relay publishes later."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import sqlalchemy as sa
from opentelemetry import propagate
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import Database, utcnow
from common.events.bus import EventBus
from common.events.envelope import Envelope
from common.events.tables import outbox
from common.observability import context as obs_context
from common.observability import metrics

log = logging.getLogger(__name__)

OUTBOX_PENDING = "outbox_pending"


async def add_event(session: AsyncSession, event_type: str, payload: dict[str, Any],
                    *, version: int = 1) -> Envelope:
    """Record an event in the same transaction as the state change that causes it."""
    envelope = Envelope.new(event_type, payload, version=version,
                            correlation_id=obs_context.request_id.get())
    headers: dict[str, str] = {}
    propagate.inject(headers)
    await session.execute(
        outbox.insert().values(
            id=envelope.event_id,
            routing_key=envelope.routing_key,
            envelope=envelope.model_dump(mode="json"),
            headers=headers,
            created_at=envelope.occurred_at,
            attempts=0,
        )
    )
    session.info[OUTBOX_PENDING] = True
    return envelope


class OutboxRelay:
    """Publishes pending outbox rows with confirms, marks them sent; rows that keep failing go dead.

    Several replicas may run it: rows are claimed with FOR UPDATE SKIP LOCKED on PostgreSQL.
    """

    def __init__(self, db: Database, bus: EventBus, service: str, *, batch_size: int = 100,
                 poll_interval: float = 0.5, max_attempts: int = 20) -> None:
        self.db = db
        self.bus = bus
        self.service = service
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        db.on_commit(self._after_commit)

    def _after_commit(self, session: AsyncSession) -> None:
        if session.info.pop(OUTBOX_PENDING, False):
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.service}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        backoff = self.poll_interval
        while not self._stopping:
            try:
                published, failed = await self.publish_pending()
                if failed:
                    backoff = min(backoff * 2, 30.0)
                else:
                    backoff = self.poll_interval
                    if published >= self.batch_size:
                        continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay iteration failed")
                backoff = min(backoff * 2, 10.0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)

    async def publish_pending(self) -> tuple[int, bool]:
        """Publish one batch; returns how many rows were sent and whether the transport failed."""
        sent = 0
        failed = False
        async with self.db.transaction() as session:
            rows = (
                await session.execute(
                    sa.select(outbox.c.id, outbox.c.envelope, outbox.c.headers, outbox.c.attempts,
                              outbox.c.created_at)
                    .where(outbox.c.published_at.is_(None), outbox.c.dead_at.is_(None))
                    .order_by(outbox.c.created_at)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            now = utcnow()
            if rows:
                metrics.OUTBOX_LAG.labels(self.service).set((now - rows[0].created_at).total_seconds())
            else:
                metrics.OUTBOX_LAG.labels(self.service).set(0)
            for row in rows:
                envelope = Envelope.model_validate(row.envelope)
                try:
                    await self.bus.publish(envelope, headers=dict(row.headers or {}))
                except Exception as exc:
                    attempts = row.attempts + 1
                    dead = attempts >= self.max_attempts
                    await session.execute(
                        outbox.update().where(outbox.c.id == row.id).values(
                            attempts=attempts, last_error=repr(exc)[:2000],
                            dead_at=utcnow() if dead else None)
                    )
                    metrics.EVENTS_PUBLISH_FAILED.labels(self.service, envelope.routing_key).inc()
                    log.warning("outbox publish failed", extra={
                        "event_id": str(envelope.event_id), "routing_key": envelope.routing_key,
                        "attempts": attempts, "dead": dead})
                    if dead:
                        metrics.EVENTS_DEAD_LETTERED.labels(self.service, envelope.routing_key).inc()
                    failed = True
                    break  # the transport is unhappy: leave the rest for the next round
                await session.execute(
                    outbox.update().where(outbox.c.id == row.id).values(published_at=utcnow())
                )
                metrics.EVENTS_PUBLISHED.labels(self.service, envelope.routing_key).inc()
                sent += 1
        return sent, failed
