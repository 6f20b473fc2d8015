"""`python -m <service> events ...`: the operator's tools for events that did not get through.

    events outbox stuck [--older-than S]     dead rows, and pending rows older than S seconds (60)
    events outbox retry <id> | --all         re-drive dead rows (the running relay sends them)
    events dlq list                          messages in the service's dead-letter queue
    events dlq show <message-id>             one message: headers (x-last-error) and body
    events dlq replay <message-id> | --all   back into the service's queue with a fresh retry budget
    events dlq drop <message-id>             remove one message for good

Every action that changes something is logged (operator = $USER, the ids) before it returns.
Replays are safe to repeat: consumers record each event id in their inbox, so an event that was
in fact applied is skipped. The DLQ exists only with a broker; in the embedded mode an event that
fails is kept as a dead outbox row of its producer instead (`events outbox`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
import sqlalchemy as sa
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from common.db import Database, utcnow
from common.events.rabbitmq import ATTEMPT_HEADER, RabbitMQBus
from common.events.tables import outbox
from common.observability.logging import configure_logging
from common.settings import ServiceSettings

log = logging.getLogger(__name__)


def operator() -> str:
    return os.environ.get("USER") or getpass.getuser()


def audit(action: str, service: str, ids: list[str]) -> None:
    log.warning("operator action", extra={"action": action, "operator": operator(), "service": service,
                                          "ids": ids, "count": len(ids)})


# --- outbox ---------------------------------------------------------------------------------------

async def outbox_stuck(db: Database, older_than: float = 60) -> list[dict[str, Any]]:
    cutoff = utcnow() - dt.timedelta(seconds=older_than)
    async with db.session() as session:
        rows = (await session.execute(
            sa.select(outbox.c.id, outbox.c.routing_key, outbox.c.created_at, outbox.c.attempts,
                      outbox.c.dead_at, outbox.c.last_error)
            .where(outbox.c.published_at.is_(None),
                   sa.or_(outbox.c.dead_at.is_not(None), outbox.c.created_at < cutoff))
            .order_by(outbox.c.created_at))).all()
    return [{"id": str(r.id), "routing_key": r.routing_key, "created_at": r.created_at.isoformat(),
             "attempts": r.attempts, "state": "dead" if r.dead_at else "pending",
             "last_error": (r.last_error or "")[:300]} for r in rows]


async def outbox_retry(db: Database, service: str, row_id: uuid.UUID | None) -> list[str]:
    """Make dead rows pending again with a fresh attempt budget; returns their ids."""
    query = outbox.update().where(outbox.c.dead_at.is_not(None), outbox.c.published_at.is_(None))
    if row_id is not None:
        query = query.where(outbox.c.id == row_id)
    async with db.transaction() as session:
        ids = [str(i) for i in (await session.execute(
            query.values(dead_at=None, attempts=0).returning(outbox.c.id))).scalars()]
    audit("outbox.retry", service, ids)
    return ids


# --- dead-letter queue ----------------------------------------------------------------------------

@dataclass
class DeadLetterQueue:
    """The service's DLQ and the queue its messages are replayed into."""

    broker_url: str
    service: str
    main_queue: str
    dlq: str

    @classmethod
    def of(cls, settings: ServiceSettings) -> DeadLetterQueue:
        if not settings.broker_url:
            raise SystemExit("no broker configured: the embedded mode keeps failed events as dead outbox "
                             "rows of their producer (use `events outbox stuck|retry`)")
        broker_url = settings.broker_url.get_secret_value()
        bus = RabbitMQBus(broker_url, settings.broker_exchange,
                          queue_prefix=settings.broker_queue_prefix, service=settings.service_name)
        main, _, dlq = bus.queue_names(settings.service_name)
        return cls(broker_url, settings.service_name, main, dlq)

    @asynccontextmanager
    async def _held(self, limit: int) -> AsyncIterator[tuple[AbstractChannel, list[AbstractIncomingMessage]]]:
        """Take up to `limit` messages without acking them: what the caller does not ack goes back
        to the queue, in order, when the channel closes."""
        connection = await aio_pika.connect(self.broker_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            queue = await channel.declare_queue(self.dlq, passive=True)
            held: list[AbstractIncomingMessage] = []
            while len(held) < limit:
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                held.append(message)
            yield channel, held
            await channel.close()

    @staticmethod
    def describe(message: AbstractIncomingMessage, *, full: bool = False) -> dict[str, Any]:
        headers = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in (message.headers or {}).items()}
        entry: dict[str, Any] = {"message_id": message.message_id, "type": message.type,
                                 "attempts": headers.get(ATTEMPT_HEADER, 1),
                                 "last_error": str(headers.get("x-last-error", ""))[:300]}
        if full:
            entry["headers"] = {k: str(v) for k, v in headers.items()}
            try:
                entry["body"] = json.loads(message.body)
            except ValueError:
                entry["body"] = message.body.decode(errors="replace")
        return entry

    async def entries(self, limit: int = 1000) -> list[dict[str, Any]]:
        async with self._held(limit) as (_, held):
            return [self.describe(m) for m in held]

    async def show(self, message_id: str, limit: int = 1000) -> dict[str, Any] | None:
        async with self._held(limit) as (_, held):
            for message in held:
                if message.message_id == message_id:
                    return self.describe(message, full=True)
        return None

    async def replay(self, message_id: str | None, limit: int = 1000) -> list[str]:
        """Publish each chosen message back to the service's queue (confirmed), then ack it here."""
        replayed: list[str] = []
        async with self._held(limit) as (channel, held):
            for message in held:
                if message_id is not None and message.message_id != message_id:
                    continue
                headers = {k: v for k, v in (message.headers or {}).items()
                           if k not in (ATTEMPT_HEADER, "x-last-error")}
                headers["x-replayed-by"] = operator()
                await channel.default_exchange.publish(aio_pika.Message(
                    body=message.body, content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=message.message_id,
                    correlation_id=message.correlation_id, type=message.type, headers=headers),
                    routing_key=self.main_queue, timeout=10)
                await message.ack()
                replayed.append(str(message.message_id))
        audit("dlq.replay", self.service, replayed)
        return replayed

    async def drop(self, message_id: str, limit: int = 1000) -> list[str]:
        dropped: list[str] = []
        async with self._held(limit) as (_, held):
            for message in held:
                if message.message_id == message_id:
                    log.warning("dropping dead letter", extra={**self.describe(message, full=True),
                                                               "operator": operator()})
                    await message.ack()
                    dropped.append(message_id)
        audit("dlq.drop", self.service, dropped)
        return dropped


# --- command line ---------------------------------------------------------------------------------

def add_parser(sub: Any) -> None:
    """Add `events ...` to a service's `python -m <service>` parser."""
    events = sub.add_parser("events", help="outbox rows and dead letters: list, retry, replay, drop")
    kinds = events.add_subparsers(dest="events_kind", required=True)
    box = kinds.add_parser("outbox").add_subparsers(dest="events_action", required=True)
    stuck = box.add_parser("stuck", help="dead rows and rows pending for longer than --older-than")
    stuck.add_argument("--older-than", type=float, default=60, metavar="SECONDS")
    retry = box.add_parser("retry", help="re-drive a dead row (or --all)")
    _one_or_all(retry)
    dlq = kinds.add_parser("dlq").add_subparsers(dest="events_action", required=True)
    dlq.add_parser("list")
    dlq.add_parser("show").add_argument("id", metavar="MESSAGE_ID")
    _one_or_all(dlq.add_parser("replay", help="back into the service's queue (or --all)"))
    dlq.add_parser("drop").add_argument("id", metavar="MESSAGE_ID")


def _one_or_all(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("id", nargs="?")
    group.add_argument("--all", action="store_true")


def run(settings: ServiceSettings, args: argparse.Namespace) -> None:
    """Carry out a parsed `events ...` command and print its outcome as JSON lines."""
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    for line in asyncio.run(_run(settings, args)):
        print(json.dumps(line, default=str))


async def _run(settings: ServiceSettings, args: argparse.Namespace) -> list[Any]:
    target = None if getattr(args, "all", False) else getattr(args, "id", None)
    if args.events_kind == "outbox":
        db = Database(settings.database_url.get_secret_value(), settings.db_schema)
        try:
            if args.events_action == "stuck":
                return await outbox_stuck(db, args.older_than)
            return [{"retried": await outbox_retry(db, settings.service_name,
                                                   uuid.UUID(target) if target else None)}]
        finally:
            await db.dispose()
    queue = DeadLetterQueue.of(settings)
    if args.events_action == "list":
        return await queue.entries()
    if args.events_action == "show":
        found = await queue.show(args.id)
        if found is None:
            raise SystemExit(f"no message {args.id} in {queue.dlq}")
        return [found]
    if args.events_action == "replay":
        return [{"replayed": await queue.replay(target)}]
    return [{"dropped": await queue.drop(args.id)}]
