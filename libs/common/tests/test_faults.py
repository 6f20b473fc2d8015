"""The relay, the consumers and the error mapping when the broker or the database is cut or stalled,
through the TCP fault proxy, against the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from common import db as common_db
from common import health, pgbootstrap
from common.cache import RedisCache
from common.db import Database
from common.errors import install_error_handlers
from common.events import Envelope, add_raw_event
from common.events.bus import InProcessBus, TransportUnavailable
from common.events.consumer import InboxConsumer
from common.events.outbox import OutboxRelay
from common.events.rabbitmq import RabbitMQBus
from common.events.tables import inbox, metadata, outbox
from common.events.tooling import DeadLetterQueue, outbox_retry, outbox_stuck
from common.faultproxy import FaultProxy
from common.testing import PG_ADMIN_DSN, RABBITMQ_URL, REDIS_URL, eventually_async, unique_name

effects = sa.Table("fault_effects", metadata, sa.Column("event_id", sa.Uuid, primary_key=True),
                   sa.Column("value", sa.Integer))


@pytest.fixture
async def pg() -> AsyncIterator[tuple[str, str]]:
    """A fresh database; yields (database name, role DSN without host)."""
    name = unique_name("triple_faults")
    pgbootstrap.bootstrap(PG_ADMIN_DSN, name, {"svc": ("triple_faults_test", "faults-test-pw")})
    direct = Database(f"postgresql+psycopg://triple_faults_test:faults-test-pw@127.0.0.1:5432/{name}", "svc")
    async with direct.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await direct.dispose()
    yield name, "triple_faults_test:faults-test-pw"
    pgbootstrap.drop_database(PG_ADMIN_DSN, name)


def _proxied_amqp(proxy: FaultProxy) -> str:
    parts = urlsplit(RABBITMQ_URL)
    return parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}").geturl()


async def _counts(db: Database) -> tuple[int, int, int]:
    """(published, dead, max attempts) of the outbox."""
    async with db.session() as session:
        row = (await session.execute(sa.select(
            sa.func.count(outbox.c.published_at), sa.func.count(outbox.c.dead_at),
            sa.func.coalesce(sa.func.max(outbox.c.attempts), 0)))).one()
    return int(row[0]), int(row[1]), int(row[2])


async def test_broker_cut_charges_no_row_and_drains_in_order_on_return(pg: tuple[str, str]) -> None:
    """The issue's bug: each commit during an outage used to burn an attempt of the oldest row."""
    name, credentials = pg
    db = Database(f"postgresql+psycopg://{credentials}@127.0.0.1:5432/{name}", "svc")
    proxy = FaultProxy(urlsplit(RABBITMQ_URL).hostname or "127.0.0.1", urlsplit(RABBITMQ_URL).port or 5672)
    await proxy.start()
    prefix = unique_name("faults") + "."
    exchange = unique_name("ex")
    producer = RabbitMQBus(_proxied_amqp(proxy), exchange, queue_prefix=prefix, service="producer")
    consumer = RabbitMQBus(RABBITMQ_URL, exchange, queue_prefix=prefix, service="consumer")
    received: list[int] = []

    async def record(envelope: Envelope) -> None:
        received.append(envelope.payload["n"])

    relay = OutboxRelay(db, producer, "producer", max_attempts=3, max_backoff=2.0)
    await producer.start()
    await consumer.start()
    await consumer.subscribe("consumer", ["test.#"], record)
    relay.start()
    try:
        await proxy.set_mode("cut")

        async def not_ready() -> bool:
            try:
                await asyncio.wait_for(producer.ping(), timeout=2)
            except (TransportUnavailable, TimeoutError):
                return True
            return False

        await eventually_async(not_ready, within=10, interval=0.2)  # readiness sees a reconnecting connection
        sent = 40
        for n in range(sent):  # more commits than max_attempts: each used to wake the relay
            async with db.transaction() as session:
                await add_raw_event(session, "test.purchase.paid", {"n": n})
            await asyncio.sleep(0.05)
        await asyncio.sleep(3)
        assert await _counts(db) == (0, 0, 0), "an outage must not count against any row"
        assert relay.transport_down
        await proxy.set_mode("up")
        started = time.monotonic()

        async def all_received() -> bool:
            return len(received) >= sent

        await eventually_async(all_received, within=60, interval=0.2)
        print(f"\nbroker cut: sent={sent} received={len(received)} duplicated={len(received) - len(set(received))} "
              f"dead=0 recovery={time.monotonic() - started:.1f}s")
        assert received == list(range(sent)), "drained in commit order, exactly once"

        async def all_marked_sent() -> bool:  # the relay commits just after the broker confirmed
            return await _counts(db) == (sent, 0, 0)

        await eventually_async(all_marked_sent, within=20, interval=0.2)
        await producer.ping()
    finally:
        await relay.stop()
        await consumer.delete_queues("consumer")
        await producer.close()
        await consumer.close()
        await proxy.close()
        await db.dispose()


async def test_a_row_that_cannot_be_read_goes_dead_alone(pg: tuple[str, str]) -> None:
    """A reason that belongs to the row still counts, and does not hold back the rows behind it."""
    name, credentials = pg
    db = Database(f"postgresql+psycopg://{credentials}@127.0.0.1:5432/{name}", "svc")
    bus = RabbitMQBus(RABBITMQ_URL, unique_name("ex"), queue_prefix=unique_name("faults") + ".", service="p")
    await bus.start()
    relay = OutboxRelay(db, bus, "producer", max_attempts=2)
    try:
        async with db.transaction() as session:
            bad = await add_raw_event(session, "test.broken.row", {"n": 1})
            await session.execute(outbox.update().where(outbox.c.id == bad.event_id).values(
                envelope={"not": "an envelope"}))
            await add_raw_event(session, "test.good.row", {"n": 2})
        assert await relay.publish_pending() == (1, True)
        assert await relay.publish_pending() == (0, True)
        assert await _counts(db) == (1, 1, 2)
    finally:
        await bus.close()
        await db.dispose()


async def test_consumer_waits_out_a_database_outage_without_spending_attempts(pg: tuple[str, str]) -> None:
    name, credentials = pg
    proxy = FaultProxy("127.0.0.1", 5432)
    await proxy.start()
    db = Database(f"postgresql+psycopg://{credentials}@127.0.0.1:{proxy.port}/{name}", "svc")
    bus = RabbitMQBus(RABBITMQ_URL, unique_name("ex"), queue_prefix=unique_name("faults") + ".",
                      service="c", max_attempts=2, retry_delay_ms=200)
    await bus.start()

    async def apply(session: AsyncSession, envelope: Envelope) -> None:
        await session.execute(effects.insert().values(event_id=envelope.event_id, value=envelope.payload["n"]))

    handler = InboxConsumer(db, "c", {"test.effect.made.v1": apply})
    try:
        await bus.subscribe("c", handler.routing_keys, handler)
        await proxy.set_mode("refuse")
        event = Envelope.new("test.effect.made", {"n": 5})
        await bus.publish(event)
        await asyncio.sleep(3)  # ~15 deliveries at 200 ms: far past max_attempts=2
        await proxy.set_mode("up")

        async def applied() -> bool:
            async with db.session() as session:
                return await session.scalar(sa.select(effects.c.value).where(
                    effects.c.event_id == event.event_id)) == 5

        await eventually_async(applied, within=60, interval=0.2)
        async with db.session() as session:
            assert await session.scalar(sa.select(sa.func.count()).select_from(inbox)) == 1
        _, _, dlq = bus.queue_names("c")
        channel = await bus._connection.channel()  # type: ignore[union-attr]
        queue = await channel.declare_queue(dlq, durable=True, arguments={"x-queue-type": "quorum"})
        assert queue.declaration_result.message_count == 0, "an outage must not dead-letter events"
        await channel.close()
    finally:
        await bus.delete_queues("c")
        await bus.close()
        await db.dispose()
        await proxy.close()


@pytest.mark.parametrize("mode", ["refuse", "stall"])
async def test_database_down_answers_503_with_retry_after_within_the_timeouts(
        pg: tuple[str, str], mode: str) -> None:
    name, credentials = pg
    proxy = FaultProxy("127.0.0.1", 5432)
    await proxy.start()
    db = Database(f"postgresql+psycopg://{credentials}@127.0.0.1:{proxy.port}/{name}", "svc")
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/count")
    async def count() -> dict[str, int]:
        async with db.session() as session:
            return {"n": int(await session.scalar(sa.select(sa.func.count()).select_from(outbox)) or 0)}

    # Raising app exceptions: an outage must be answered inside the app, never handed to the server
    # (uvicorn closes the connection of a request whose exception reached it).
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/count")).status_code == 200
            await db.engine.dispose()  # a fresh pool: a stall then costs the connect timeout
            await proxy.set_mode(mode)  # type: ignore[arg-type]
            started = time.monotonic()
            answer = await client.get("/count")
            elapsed = time.monotonic() - started
            print(f"\ndatabase {mode}: status={answer.status_code} after {elapsed:.1f}s")
            assert answer.status_code == 503
            assert answer.headers["content-type"] == "application/problem+json"
            assert int(answer.headers["retry-after"]) > 0
            await proxy.set_mode("up")

            async def recovered() -> bool:
                return (await client.get("/count")).status_code == 200

            await eventually_async(recovered, within=30, interval=0.2)
    finally:
        await db.dispose()
        await proxy.close()


async def test_poisoned_message_is_listed_shown_fixed_and_replayed_to_one_effect(
        pg: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    name, credentials = pg
    db = Database(f"postgresql+psycopg://{credentials}@127.0.0.1:5432/{name}", "svc")
    prefix = unique_name("tooling") + "."
    bus = RabbitMQBus(RABBITMQ_URL, unique_name("ex"), queue_prefix=prefix, service="svc",
                      max_attempts=2, retry_delay_ms=100)
    await bus.start()
    broken = True

    async def apply(session: AsyncSession, envelope: Envelope) -> None:
        if broken:
            raise ValueError("course 42 is unknown")  # the bug the operator fixes
        await session.execute(effects.insert().values(event_id=envelope.event_id, value=envelope.payload["n"]))

    main_queue, _, dlq_name = bus.queue_names("svc")
    dlq = DeadLetterQueue(RABBITMQ_URL, "svc", main_queue, dlq_name)
    try:
        await bus.subscribe("svc", ["test.#"], InboxConsumer(db, "svc", {"test.poison.made.v1": apply}))
        event = Envelope.new("test.poison.made", {"n": 9})
        await bus.publish(event)

        async def dead_lettered() -> bool:
            return [e["message_id"] for e in await dlq.entries()] == [str(event.event_id)]

        await eventually_async(dead_lettered, within=60, interval=0.2)
        shown = await dlq.show(str(event.event_id))
        assert shown is not None and "course 42 is unknown" in shown["last_error"]
        assert shown["body"]["payload"] == {"n": 9}
        broken = False
        with caplog.at_level("WARNING", logger="common.events.tooling"):
            assert await dlq.replay(str(event.event_id)) == [str(event.event_id)]
        audit = [r for r in caplog.records if getattr(r, "action", "") == "dlq.replay"]
        assert audit and audit[0].operator and audit[0].ids == [str(event.event_id)]  # type: ignore[attr-defined]

        async def applied() -> bool:
            async with db.session() as session:
                return await session.scalar(sa.select(sa.func.count()).select_from(effects).where(
                    effects.c.event_id == event.event_id)) == 1

        await eventually_async(applied, within=60, interval=0.2)
        await bus.publish(event)  # a replay done twice: the inbox absorbs it
        await asyncio.sleep(1)
        assert await applied() and await dlq.entries() == []
        assert await dlq.replay(None) == []
    finally:
        await bus.delete_queues("svc")
        await bus.close()
        await db.dispose()


async def test_dead_outbox_row_is_listed_and_retried_to_one_effect(pg: tuple[str, str]) -> None:
    name, credentials = pg
    db = Database(f"postgresql+psycopg://{credentials}@127.0.0.1:5432/{name}", "svc")
    bus = InProcessBus(inline_attempts=1, retry_delay=0)
    applied: list[int] = []
    broken = True

    async def consume(envelope: Envelope) -> None:
        if broken:
            raise RuntimeError("consumer rejects it")
        applied.append(envelope.payload["n"])

    await bus.subscribe("c", ["test.#"], consume)
    bus.begin_delivery()
    relay = OutboxRelay(db, bus, "producer", max_attempts=1)
    try:
        async with db.transaction() as session:
            event = await add_raw_event(session, "test.stuck.row", {"n": 3})
        assert await relay.publish_pending() == (0, True)
        stuck = await outbox_stuck(db)
        assert [(s["id"], s["state"]) for s in stuck] == [(str(event.event_id), "dead")]
        assert await relay.publish_pending() == (0, False), "a dead row is not sent again by itself"
        broken = False
        assert await outbox_retry(db, "producer", event.event_id) == [str(event.event_id)]
        assert await relay.publish_pending() == (1, False)
        assert await relay.publish_pending() == (0, False)
        assert applied == [3] and await outbox_stuck(db) == []
        assert await outbox_retry(db, "producer", None) == []
    finally:
        await db.dispose()


async def test_a_pooled_connection_cut_while_idle_is_replaced_before_use(
        pg: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Busy connections skip the ping; one that sat idle is pinged, and a dead one is replaced, so
    the first request after a cut link is answered (reads on autocommit connections included)."""
    name, credentials = pg
    proxy = FaultProxy("127.0.0.1", 5432)
    await proxy.start()
    db = Database(f"postgresql+psycopg://{credentials}@127.0.0.1:{proxy.port}/{name}", "svc", pool_size=2)

    async def read() -> int:
        async with db.session() as session:
            return int(await session.scalar(sa.select(sa.func.count()).select_from(outbox)) or 0)

    async def bare_read() -> int:  # Database.statements(): the hot paths' bare connections
        async with db.statements() as connection:
            return int(await connection.scalar(sa.select(sa.func.count()).select_from(outbox)) or 0)

    try:
        assert await bare_read() == 0 and await read() == 0
        await proxy.set_mode("cut")  # drops the pooled connection
        await proxy.set_mode("up")
        monkeypatch.setattr(common_db, "PING_AFTER_IDLE_SECONDS", 0.0)  # the connection counts as idle
        assert await bare_read() == 0
        await proxy.set_mode("cut")
        await proxy.set_mode("up")
        assert await bare_read() == 0
        async with db.transaction() as session:
            await session.execute(sa.select(1))
        assert await read() == 0
    finally:
        await db.dispose()
        await proxy.close()


def _readiness_app(checks: dict[str, Any]) -> FastAPI:
    """The real `/health/ready` route over the given checks (what the services mount)."""
    app = FastAPI()
    app.include_router(health.router)
    app.state.runtime = SimpleNamespace(health_checks=checks)
    return app


async def test_readiness_reports_a_stalled_broker_within_the_check_budget() -> None:
    """A stalled broker keeps its TCP connection open: only a real round trip can tell. aio-pika
    answers a passive declare of an exchange its robust channel already knows from its cache, so a
    ping built on it never left the process and readiness stayed 200 for the whole stall."""
    proxy = FaultProxy(urlsplit(RABBITMQ_URL).hostname or "127.0.0.1", urlsplit(RABBITMQ_URL).port or 5672)
    await proxy.start()
    bus = RabbitMQBus(_proxied_amqp(proxy), unique_name("ex"), service="pinged")
    await bus.start()
    app = _readiness_app({"broker": bus.ping})
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/health/ready")).status_code == 200
            await proxy.set_mode("stall")
            stalled = time.monotonic()
            answers = []
            for _ in range(3):  # a probe after a timed-out one must not be answered from a stale state
                answer = await client.get("/health/ready")
                answers.append((answer.status_code, answer.json()["checks"]["broker"]))
            elapsed = time.monotonic() - stalled
            print(f"\nbroker stall: readiness {answers} in {elapsed:.1f}s")
            assert [status for status, _ in answers] == [503] * 3, answers
            assert elapsed < 3 * (health.CHECK_TIMEOUT_SECONDS + 1)
            await proxy.set_mode("up")

            async def ready_again() -> bool:
                return (await client.get("/health/ready")).status_code == 200

            await eventually_async(ready_again, within=30, interval=0.5, what="readiness back after the stall")
    finally:
        await bus.close()
        await proxy.close()


@pytest.mark.parametrize("idle", [False, True])
async def test_a_pooled_connection_stalled_mid_statement_answers_503_within_the_answer_deadline(
        pg: tuple[str, str], monkeypatch: pytest.MonkeyPatch, idle: bool) -> None:
    """The statement reached the server and its answer is held on the link: the server's statement
    timeout cannot help, and psycopg's cancellation of the abandoned statement used to add 10 s.
    Busy: the statement's answer deadline (statement timeout + 1 s). Idle: the pool's ping gives
    up first, then the replacement's connect timeout."""
    name, credentials = pg
    proxy = FaultProxy("127.0.0.1", 5432)
    await proxy.start()
    timeouts = common_db.DatabaseTimeouts(connect=2, checkout=1, statement=1)  # libpq: connect >= 2 s
    db = Database(f"postgresql+psycopg://{credentials}@127.0.0.1:{proxy.port}/{name}", "svc", pool_size=2,
                  timeouts=timeouts)
    monkeypatch.setattr(common_db, "PING_ANSWER_SECONDS", 0.5)
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/slow")
    async def slow() -> dict[str, int]:
        async with db.session() as session:
            return {"n": int(await session.scalar(sa.text("SELECT count(*) FROM pg_sleep(0.3)")) or 0)}

    # Raising app exceptions: an outage must be answered inside the app, never handed to the server
    # (uvicorn closes the connection of a request whose exception reached it).
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/slow")).status_code == 200
            if idle:
                monkeypatch.setattr(common_db, "PING_AFTER_IDLE_SECONDS", 0.0)
                await proxy.set_mode("stall")  # the link stalls while the connection sits in the pool
            started = time.monotonic()
            request = asyncio.ensure_future(client.get("/slow"))
            if not idle:
                await asyncio.sleep(0.1)  # the statement is at the server: its answer is held
                await proxy.set_mode("stall")
            bound = timeouts.statement + 1.0 if not idle else 0.5 + timeouts.connect
            await asyncio.wait({request}, timeout=bound + 5.0)  # without a deadline it hangs for good
            if not request.done():
                request.cancel()
                pytest.fail(f"no answer within {bound + 5.0:g}s of a stalled link")
            answer = request.result()
            elapsed = time.monotonic() - started
            print(f"\ndatabase stalled under a pooled {'idle' if idle else 'busy'} connection: "
                  f"status={answer.status_code} after {elapsed:.1f}s (bound {bound:g}s)")
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert int(answer.headers["retry-after"]) > 0
            assert elapsed < bound + 1.0
            await proxy.set_mode("up")

            async def recovered() -> bool:
                return (await client.get("/slow")).status_code == 200

            await eventually_async(recovered, within=10, interval=0.2, what="answers again once the link is back")
    finally:
        await db.dispose()
        await proxy.close()


async def test_redis_down_answers_503_inside_the_app() -> None:
    """A refused Redis is an outage (503 problem+json with Retry-After), answered by the app itself:
    an exception handed on to the server makes uvicorn close the connection the edge may reuse."""
    proxy = FaultProxy(urlsplit(REDIS_URL).hostname or "127.0.0.1", urlsplit(REDIS_URL).port or 6379)
    await proxy.start()
    cache = RedisCache(f"redis://127.0.0.1:{proxy.port}/0", unique_name("faults") + ":")
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/counted")
    async def counted() -> dict[str, int]:
        count, _ = await cache.hit("requests", 60)
        return {"n": count}

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            assert (await client.get("/counted")).json() == {"n": 1}
            await proxy.set_mode("refuse")
            answer = await client.get("/counted")
            assert answer.status_code == 503
            assert answer.headers["content-type"] == "application/problem+json"
            assert int(answer.headers["retry-after"]) > 0
            await proxy.set_mode("up")
            assert (await client.get("/counted")).json() == {"n": 2}
    finally:
        await cache.close()
        await proxy.close()
