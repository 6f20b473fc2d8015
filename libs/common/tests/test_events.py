"""Outbox -> transport -> inbox on real PostgreSQL and RabbitMQ, and the in-process transport."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from common import pgbootstrap
from common.db import Database, utcnow
from common.events import Envelope, add_raw_event
from common.events.bus import InProcessBus, topic_matches
from common.events.consumer import InboxConsumer
from common.events.outbox import OutboxRelay
from common.events.rabbitmq import RabbitMQBus
from common.events.tables import inbox, metadata, outbox
from common.testing import PG_ADMIN_DSN, RABBITMQ_URL, unique_name

effects = sa.Table("effects", metadata, sa.Column("event_id", sa.Uuid, primary_key=True),
                   sa.Column("value", sa.Integer))


@pytest.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    name = unique_name("triple_common")
    pgbootstrap.bootstrap(PG_ADMIN_DSN, name, {"svc": ("triple_common_test", "common-test-pw")})
    database = Database(pgbootstrap.role_url(PG_ADMIN_DSN, name, "triple_common_test", "common-test-pw"), "svc")
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield database
    await database.dispose()
    pgbootstrap.drop_database(PG_ADMIN_DSN, name)


async def _record_effect(session: AsyncSession, envelope: Envelope) -> None:
    await session.execute(effects.insert().values(event_id=envelope.event_id, value=envelope.payload["n"]))


async def _pending(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(outbox).where(
            outbox.c.published_at.is_(None), outbox.c.dead_at.is_(None))) or 0)


def test_envelope_routing_key_and_topic_patterns() -> None:
    env = Envelope.new("billing.order.paid", {"order_id": "o1"})
    assert env.routing_key == "billing.order.paid.v1" and env.producer == "billing"
    assert topic_matches("billing.order.*.v1", "billing.order.paid.v1")
    assert topic_matches("#", "anything.at.all")
    assert not topic_matches("billing.order.paid.v1", "billing.order.refunded.v1")


async def test_outbox_rolls_back_with_the_state_change(db: Database) -> None:
    before = await _pending(db)
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await add_raw_event(session, "test.thing.happened", {"n": 1})
            raise RuntimeError("business rule failed after the event was recorded")
    assert await _pending(db) == before


async def test_rabbitmq_end_to_end_with_duplicates(db: Database) -> None:
    prefix = unique_name("q") + "."
    exchange = unique_name("ex")
    producer_bus = RabbitMQBus(RABBITMQ_URL, exchange, queue_prefix=prefix, service="producer")
    consumer_bus = RabbitMQBus(RABBITMQ_URL, exchange, queue_prefix=prefix, service="consumer")
    await producer_bus.start()
    await consumer_bus.start()
    handled = asyncio.Queue[uuid.UUID]()
    consumer = InboxConsumer(db, "consumer", {"test.number.created.v1": _record_effect})

    async def handler(envelope: Envelope) -> None:
        await consumer(envelope)
        handled.put_nowait(envelope.event_id)

    try:
        await consumer_bus.subscribe("consumer", ["test.number.*.v1"], handler)
        relay = OutboxRelay(db, producer_bus, "producer", poll_interval=0.05)
        relay.start()
        async with db.transaction() as session:
            envelope = await add_raw_event(session, "test.number.created", {"n": 42})
        first = await asyncio.wait_for(handled.get(), timeout=10)
        assert first == envelope.event_id
        # Redelivery (e.g. a crash before ack) is normal: the inbox makes it a no-op.
        await producer_bus.publish(envelope)
        second = await asyncio.wait_for(handled.get(), timeout=10)
        assert second == envelope.event_id
        await relay.stop()
        async with db.session() as session:
            assert await session.scalar(sa.select(effects.c.value).where(
                effects.c.event_id == envelope.event_id)) == 42
            assert await session.scalar(sa.select(sa.func.count()).select_from(inbox).where(
                inbox.c.event_id == envelope.event_id)) == 1
        assert await _pending(db) == 0
    finally:
        await consumer_bus.delete_queues("consumer")
        await producer_bus.close()
        await consumer_bus.close()


async def test_rabbitmq_failing_handler_retries_then_dead_letters() -> None:
    prefix = unique_name("q") + "."
    bus = RabbitMQBus(RABBITMQ_URL, unique_name("ex"), queue_prefix=prefix, service="svc",
                      max_attempts=3, retry_delay_ms=100)
    await bus.start()
    attempts: list[int] = []

    async def always_fails(envelope: Envelope) -> None:
        attempts.append(1)
        raise ValueError("poison")

    try:
        await bus.subscribe("svc", ["test.#"], always_fails)
        await bus.publish(Envelope.new("test.poison.sent", {"n": 1}))
        _, _, dlq = bus.queue_names("svc")
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(dlq, durable=True, arguments={"x-queue-type": "quorum"})
            message = None
            for _ in range(100):
                message = await queue.get(fail=False)
                if message is not None:
                    break
                await asyncio.sleep(0.1)
            assert message is not None, "poison message never reached the DLQ"
            assert "poison" in str(message.headers.get("x-last-error"))
            await message.ack()
        assert len(attempts) == 3
    finally:
        await bus.delete_queues("svc")
        await bus.close()


async def test_in_process_failure_keeps_outbox_row_pending(db: Database) -> None:
    bus = InProcessBus(inline_attempts=2, retry_delay=0)
    calls: list[str] = []

    async def flaky(envelope: Envelope) -> None:
        calls.append(envelope.routing_key)
        if len(calls) <= 2:
            raise RuntimeError("consumer down")

    await bus.subscribe("c", ["test.flaky.*.v1"], flaky)
    bus.begin_delivery()
    relay = OutboxRelay(db, bus, "producer-inproc")
    async with db.transaction() as session:
        await add_raw_event(session, "test.flaky.happened", {"n": 7})
    sent, failed = await relay.publish_pending()
    assert (sent, failed) == (0, True)
    async with db.session() as session:
        row = (await session.execute(sa.select(outbox.c.attempts, outbox.c.published_at).where(
            outbox.c.routing_key == "test.flaky.happened.v1"))).one()
    assert row.attempts == 1 and row.published_at is None
    sent, failed = await relay.publish_pending()
    assert (sent, failed) == (1, False)
    assert await _pending(db) == 0


async def _close_broker_connection(connection_name: str) -> None:
    """Drop our connection from the broker's side, as a broker restart or a network cut would."""
    listing = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", "list_connections", "pid", "client_properties", "--formatter", "json",
        stdout=asyncio.subprocess.PIPE)
    out, _ = await listing.communicate()
    pids = [entry["pid"] for entry in json.loads(out) if connection_name in json.dumps(entry)]
    assert pids, "connection not found on the broker"
    for pid in pids:
        closing = await asyncio.create_subprocess_exec("rabbitmqctl", "-q", "close_connection", pid, "test cut")
        await closing.wait()


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl on this machine")
async def test_consumer_survives_a_dropped_broker_connection() -> None:
    name = unique_name("survivor")
    bus = RabbitMQBus(RABBITMQ_URL, unique_name("ex"), queue_prefix=name + ".", service=name)
    await bus.start()
    seen = asyncio.Queue[int]()

    async def record(envelope: Envelope) -> None:
        seen.put_nowait(envelope.payload["n"])

    try:
        await bus.subscribe("svc", ["test.#"], record)
        await bus.publish(Envelope.new("test.before.cut", {"n": 1}))
        assert await asyncio.wait_for(seen.get(), timeout=10) == 1
        await _close_broker_connection(name)
        # Publishing fails while the robust connection reconnects; the outbox would simply retry.
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            try:
                await bus.publish(Envelope.new("test.after.cut", {"n": 2}))
                break
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)
        assert await asyncio.wait_for(seen.get(), timeout=20) == 2
    finally:
        await bus.delete_queues("svc")
        await bus.close()


async def test_startup_transactions_of_replicas_run_one_at_a_time(db: Database) -> None:
    """Two replicas seeding at once: check-then-insert must not collide (it did, in CI)."""
    seed_id = uuid.uuid4()

    async def seed() -> None:
        async with db.startup_transaction("seed") as session:
            exists = await session.scalar(sa.select(effects.c.event_id).where(effects.c.event_id == seed_id))
            await asyncio.sleep(0.2)  # the window in which the other replica used to insert too
            if exists is None:
                await session.execute(effects.insert().values(event_id=seed_id, value=1))

    await asyncio.gather(seed(), seed())
    async with db.session() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(effects).where(
            effects.c.event_id == seed_id)) == 1


async def test_embedded_relay_does_not_hold_the_write_lock_while_consumers_run(tmp_path: Path) -> None:
    """In embedded mode a consumer may (through another service) need to write to the producer's SQLite
    file while the event is delivered; the relay must not hold that file's write lock meanwhile."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/producer.db")
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    bus = InProcessBus(inline_attempts=1, retry_delay=0)

    async def writes_back_to_the_producer(envelope: Envelope) -> None:
        async with database.transaction() as session:
            await _record_effect(session, envelope)

    await bus.subscribe("c", ["test.cycle.*.v1"], writes_back_to_the_producer)
    bus.begin_delivery()
    relay = OutboxRelay(database, bus, "producer-sqlite")
    try:
        async with database.transaction() as session:
            await add_raw_event(session, "test.cycle.happened", {"n": 3})
        assert await asyncio.wait_for(relay.publish_pending(), timeout=10) == (1, False)
        assert await _pending(database) == 0
        async with database.session() as session:
            assert await session.scalar(sa.select(effects.c.value)) == 3
    finally:
        await database.dispose()


async def test_published_rows_are_pruned_after_the_retention(db: Database) -> None:
    relay = OutboxRelay(db, InProcessBus(), "producer-prune", retention=dt.timedelta(days=7))
    async with db.transaction() as session:
        old = await add_raw_event(session, "test.prune.old", {"n": 1})
        recent = await add_raw_event(session, "test.prune.recent", {"n": 2})
        pending = await add_raw_event(session, "test.prune.pending", {"n": 3})
        await session.execute(outbox.update().where(outbox.c.id == old.event_id).values(
            published_at=utcnow() - dt.timedelta(days=8)))
        await session.execute(outbox.update().where(outbox.c.id == recent.event_id).values(
            published_at=utcnow() - dt.timedelta(days=6)))
    assert await relay.prune_published() >= 1
    async with db.session() as session:
        left = set((await session.scalars(sa.select(outbox.c.id).where(
            outbox.c.id.in_([old.event_id, recent.event_id, pending.event_id])))).all())
    assert left == {recent.event_id, pending.event_id}
