"""Transactional outbox: `add_event` joins the caller's transaction; the relay publishes later."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from opentelemetry import propagate, trace
from sqlalchemy.ext.asyncio import AsyncSession

from common.background import CommitWokenLoop
from common.db import Database, utcnow
from common.events.bus import EventBus, TransportUnavailable
from common.events.envelope import Envelope
from common.events.tables import outbox
from common.observability import context as obs_context
from common.observability import metrics

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

OUTBOX_PENDING = "outbox_pending"


class EventPayload(Protocol):
    """What services publish: a model of the `contracts` package that names its own routing key."""

    @property
    def event_type(self) -> str: ...

    @property
    def event_version(self) -> int: ...

    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...


async def add_event(session: AsyncSession, event: EventPayload) -> Envelope:
    """Record an event in the same transaction as the state change that causes it; its routing key
    and wire form come from the event's model, so producer and consumers share one contract."""
    return await add_raw_event(session, event.event_type, event.model_dump(mode="json"),
                               version=event.event_version)


async def add_raw_event(session: AsyncSession, event_type: str, payload: dict[str, Any],
                        *, version: int = 1) -> Envelope:
    """The untyped primitive under `add_event` (infrastructure tests publish made-up events with it)."""
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
    """Publishes pending outbox rows with confirms, in order, and marks them sent.

    Two kinds of failure, never confused: a transport failure (broker down, reconnecting, stalled)
    counts against no row; the relay stops the batch and backs off with jitter, deaf to commits,
    until the broker takes messages again, then drains in order. A failure that belongs to the row
    (the broker nacks it, the embedded consumers refuse it, it cannot be read) counts an attempt,
    and after `max_attempts` the row is dead: kept, visible (`events outbox stuck`) and re-drivable
    (`events outbox retry`).

    Several replicas may run it: rows are claimed with FOR UPDATE SKIP LOCKED on PostgreSQL.
    Published rows are deleted after `retention` so the table (and the personal data some payloads
    carry) does not grow forever; dead rows stay until someone looks at them.
    """

    def __init__(self, db: Database, bus: EventBus, service: str, *, batch_size: int = 100,
                 poll_interval: float = 0.5, max_attempts: int = 20, max_backoff: float = 10.0,
                 retention: dt.timedelta = dt.timedelta(days=7), prune_every_seconds: float = 3600) -> None:
        super().__init__(db, OUTBOX_PENDING, f"outbox-relay-{service}")
        self.db = db
        self.bus = bus
        self.service = service
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self.retention = retention
        self.prune_every_seconds = prune_every_seconds
        self._pruned_at = 0.0
        self.transport_down = False

    def _jittered(self, backoff: float) -> float:
        """Half fixed, half random: replicas that lost the broker together do not return together."""
        return backoff / 2 + random.uniform(0, backoff / 2)

    async def _run(self) -> None:
        backoff = self.poll_interval
        while not self.stopping:
            try:
                if time.monotonic() - self._pruned_at >= self.prune_every_seconds:
                    self._pruned_at = time.monotonic()
                    await self.prune_published()
                published, failed = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except TransportUnavailable as exc:
                if not self.transport_down:
                    log.warning("broker unavailable, outbox relay waits", extra={"error": str(exc)})
                self.transport_down = True
                backoff = min(max(backoff, self.poll_interval) * 2, self.max_backoff)
                # Commits do not wake it: each would only meet the same closed door.
                await asyncio.sleep(self._jittered(backoff))
                continue
            except Exception:
                # Most often the database is down: nothing was counted, try again later.
                log.exception("outbox relay iteration failed")
                backoff = min(backoff * 2, self.max_backoff)
                await asyncio.sleep(self._jittered(backoff))
                continue
            if self.transport_down:
                log.info("broker back, outbox relay drains", extra={"published": published})
                self.transport_down = False
            if failed:
                backoff = min(backoff * 2, self.max_backoff)
                await asyncio.sleep(self._jittered(backoff))
                continue
            backoff = self.poll_interval
            if published >= self.batch_size:
                continue
            await self.pause(backoff)

    async def prune_published(self) -> int:
        """Delete rows published longer ago than the retention; returns how many went."""
        async with self.db.transaction() as session:
            result = await session.execute(
                outbox.delete().where(outbox.c.published_at < utcnow() - self.retention))
        return int(getattr(result, "rowcount", 0) or 0)

    async def publish_pending(self) -> tuple[int, bool]:
        """Publish one batch; returns how many rows were sent and whether a row failed.

        Raises TransportUnavailable (after recording what was sent) when the broker could not be
        asked; no row is charged for it.
        """
        if self.db.is_sqlite:
            # Embedded: one relay per SQLite file, and the in-process bus runs the consumers of other
            # services before publish returns. Holding this database's write lock (BEGIN IMMEDIATE)
            # meanwhile could deadlock with a request of this service that waits on one of them, so
            # the batch is read, published and recorded in separate steps. A crash between publish
            # and record publishes again, which consumers' inboxes absorb.
            async with self.db.transaction() as session:
                rows = await self._pending(session, lock=False)
            outcomes, transport_error = await self._publish(rows)
            async with self.db.transaction() as session:
                result = await self._record(session, outcomes)
        else:
            # Several replicas: rows stay claimed (FOR UPDATE SKIP LOCKED) until their outcome is recorded.
            async with self.db.transaction() as session:
                rows = await self._pending(session, lock=True)
                outcomes, transport_error = await self._publish(rows)
                result = await self._record(session, outcomes)
        if transport_error is not None:
            raise transport_error
        return result

    async def _pending(self, session: AsyncSession, *, lock: bool) -> Sequence[Any]:
        query = (
            sa.select(outbox.c.id, outbox.c.routing_key, outbox.c.envelope, outbox.c.headers, outbox.c.attempts,
                      outbox.c.created_at)
            .where(outbox.c.published_at.is_(None), outbox.c.dead_at.is_(None))
            .order_by(outbox.c.created_at)
            .limit(self.batch_size)
        )
        rows = (await session.execute(query.with_for_update(skip_locked=True) if lock else query)).all()
        lag = (utcnow() - rows[0].created_at).total_seconds() if rows else 0
        metrics.EVENTS_OUTBOX_LAG.labels(self.service).set(lag)
        return rows

    async def _publish(self, rows: Sequence[Any]
                       ) -> tuple[list[tuple[Any, Exception | None]], TransportUnavailable | None]:
        """Publish in order. A row's own failure is noted and the next row goes on; a transport
        failure stops the batch (the rest waits, in order) and is returned, charged to no row."""
        outcomes: list[tuple[Any, Exception | None]] = []
        for row in rows:
            try:
                envelope = Envelope.model_validate(row.envelope)
                await self._publish_one(envelope, dict(row.headers or {}))
            except TransportUnavailable as exc:
                return outcomes, exc
            except Exception as exc:
                outcomes.append((row, exc))
                continue
            outcomes.append((row, None))
        return outcomes, None

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
            routing_key = row.routing_key
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
