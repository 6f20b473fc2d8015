"""Transactional outbox: `add_event` joins the caller's transaction; the relay publishes later."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from opentelemetry import propagate, trace
from sqlalchemy.ext.asyncio import AsyncSession

from common.background import CommitWokenLoop
from common.db import Database, utcnow
from common.events.bus import EventBus
from common.events.envelope import Envelope
from common.events.tables import outbox
from common.observability import context as obs_context
from common.observability import metrics

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

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


class OutboxRelay(CommitWokenLoop):
    """Publishes pending outbox rows with confirms, marks them sent; rows that keep failing go dead.

    Several replicas may run it: rows are claimed with FOR UPDATE SKIP LOCKED on PostgreSQL.
    Published rows are deleted after `retention` so the table (and the personal data some payloads
    carry) does not grow forever; dead rows stay until someone looks at them.
    """

    def __init__(self, db: Database, bus: EventBus, service: str, *, batch_size: int = 100,
                 poll_interval: float = 0.5, max_attempts: int = 20,
                 retention: dt.timedelta = dt.timedelta(days=7), prune_every_seconds: float = 3600) -> None:
        super().__init__(db, OUTBOX_PENDING, f"outbox-relay-{service}")
        self.db = db
        self.bus = bus
        self.service = service
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.retention = retention
        self.prune_every_seconds = prune_every_seconds
        self._pruned_at = 0.0

    async def _run(self) -> None:
        backoff = self.poll_interval
        while not self.stopping:
            try:
                if time.monotonic() - self._pruned_at >= self.prune_every_seconds:
                    self._pruned_at = time.monotonic()
                    await self.prune_published()
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
            await self.pause(backoff)

    async def prune_published(self) -> int:
        """Delete rows published longer ago than the retention; returns how many went."""
        async with self.db.transaction() as session:
            result = await session.execute(
                outbox.delete().where(outbox.c.published_at < utcnow() - self.retention))
        return int(getattr(result, "rowcount", 0) or 0)

    async def publish_pending(self) -> tuple[int, bool]:
        """Publish one batch; returns how many rows were sent and whether the transport failed."""
        if self.db.url.startswith("sqlite"):
            # Embedded: one relay per SQLite file, and the in-process bus runs the consumers of other
            # services before publish returns. Holding this database's write lock (BEGIN IMMEDIATE)
            # meanwhile could deadlock with a request of this service that waits on one of them, so
            # the batch is read, published and recorded in separate steps. A crash between publish
            # and record publishes again, which consumers' inboxes absorb.
            async with self.db.transaction() as session:
                rows = await self._pending(session, lock=False)
            outcomes = await self._publish(rows)
            async with self.db.transaction() as session:
                return await self._record(session, outcomes)
        # Several replicas: rows stay claimed (FOR UPDATE SKIP LOCKED) until their outcome is recorded.
        async with self.db.transaction() as session:
            rows = await self._pending(session, lock=True)
            outcomes = await self._publish(rows)
            return await self._record(session, outcomes)

    async def _pending(self, session: AsyncSession, *, lock: bool) -> Sequence[Any]:
        query = (
            sa.select(outbox.c.id, outbox.c.envelope, outbox.c.headers, outbox.c.attempts, outbox.c.created_at)
            .where(outbox.c.published_at.is_(None), outbox.c.dead_at.is_(None))
            .order_by(outbox.c.created_at)
            .limit(self.batch_size)
        )
        rows = (await session.execute(query.with_for_update(skip_locked=True) if lock else query)).all()
        lag = (utcnow() - rows[0].created_at).total_seconds() if rows else 0
        metrics.EVENTS_OUTBOX_LAG.labels(self.service).set(lag)
        return rows

    async def _publish(self, rows: Sequence[Any]) -> list[tuple[Any, Exception | None]]:
        """Publish in order; stop at the first failure (the transport is unhappy: the rest waits)."""
        outcomes: list[tuple[Any, Exception | None]] = []
        for row in rows:
            envelope = Envelope.model_validate(row.envelope)
            try:
                await self._publish_one(envelope, dict(row.headers or {}))
            except Exception as exc:
                outcomes.append((row, exc))
                break
            outcomes.append((row, None))
        return outcomes

    async def _publish_one(self, envelope: Envelope, headers: dict[str, str]) -> None:
        """A PRODUCER span, child of the request that wrote the row; its context travels in the
        message headers (W3C traceparent), so the consumer's span continues the same trace."""
        with tracer.start_as_current_span(f"publish {envelope.routing_key}", context=propagate.extract(headers),
                                          kind=trace.SpanKind.PRODUCER,
                                          attributes={"messaging.system": "rabbitmq",
                                                      "messaging.destination.name": envelope.routing_key,
                                                      "messaging.message.id": str(envelope.event_id)}):
            propagate.inject(headers)
            await self.bus.publish(envelope, headers=headers)

    async def _record(self, session: AsyncSession,
                      outcomes: list[tuple[Any, Exception | None]]) -> tuple[int, bool]:
        sent = 0
        failed = False
        for row, error in outcomes:
            routing_key = Envelope.model_validate(row.envelope).routing_key
            if error is None:
                await session.execute(outbox.update().where(outbox.c.id == row.id).values(published_at=utcnow()))
                metrics.EVENTS_PUBLISHED.labels(self.service, routing_key).inc()
                sent += 1
                continue
            attempts = row.attempts + 1
            dead = attempts >= self.max_attempts
            await session.execute(
                outbox.update().where(outbox.c.id == row.id).values(
                    attempts=attempts, last_error=repr(error)[:2000], dead_at=utcnow() if dead else None)
            )
            metrics.EVENTS_PUBLISH_FAILURES.labels(self.service, routing_key).inc()
            log.warning("outbox publish failed", extra={
                "event_id": str(row.envelope.get("event_id")), "routing_key": routing_key,
                "attempts": attempts, "dead": dead})
            if dead:
                metrics.EVENTS_DEAD_LETTERED.labels(self.service, routing_key).inc()
            failed = True
        return sent, failed
