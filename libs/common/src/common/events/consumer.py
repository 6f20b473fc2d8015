"""Idempotent consumption: the inbox row and the handler's effect share one transaction."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import Database, utcnow
from common.events.envelope import Envelope
from common.events.tables import inbox
from common.observability import context as obs_context
from common.observability import metrics

log = logging.getLogger(__name__)

# A service's handlers: routing key -> handler(session, envelope).
Handler = Callable[[AsyncSession, Envelope], Awaitable[None]]
HandlerMap = Mapping[str, Handler]


class InboxConsumer:
    def __init__(self, db: Database, service: str, handlers: HandlerMap) -> None:
        self.db = db
        self.service = service
        self.handlers = handlers

    @property
    def routing_keys(self) -> list[str]:
        return list(self.handlers)

    async def __call__(self, envelope: Envelope) -> None:
        handler = self.handlers.get(envelope.routing_key)
        if handler is None:
            # Never ack what nothing applied: the transport retries it (another consumer of the queue
            # may know it, e.g. during a rolling deploy) and finally dead-letters it, visibly.
            raise LookupError(f"no handler for {envelope.routing_key}")
        token = obs_context.request_id.set(envelope.correlation_id)
        try:
            async with self.db.transaction() as session:
                seen = await session.scalar(
                    sa.select(inbox.c.event_id).where(inbox.c.event_id == envelope.event_id)
                )
                if seen is not None:
                    metrics.EVENTS_CONSUMED.labels(self.service, envelope.routing_key, "duplicate").inc()
                    return
                await session.execute(inbox.insert().values(
                    event_id=envelope.event_id, routing_key=envelope.routing_key,
                    processed_at=utcnow()))
                await handler(session, envelope)
            metrics.EVENTS_CONSUMED.labels(self.service, envelope.routing_key, "processed").inc()
        except sa.exc.IntegrityError:
            # A concurrent delivery of the same event may have won the inbox insert.
            if not await self._already_processed(envelope):
                metrics.EVENTS_CONSUMED.labels(self.service, envelope.routing_key, "failed").inc()
                raise
            metrics.EVENTS_CONSUMED.labels(self.service, envelope.routing_key, "duplicate").inc()
        except Exception:
            metrics.EVENTS_CONSUMED.labels(self.service, envelope.routing_key, "failed").inc()
            raise
        finally:
            obs_context.request_id.reset(token)

    async def _already_processed(self, envelope: Envelope) -> bool:
        async with self.db.session() as session:
            found = await session.scalar(
                sa.select(inbox.c.event_id).where(inbox.c.event_id == envelope.event_id))
        return found is not None
