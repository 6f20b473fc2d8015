"""Billing's events on real RabbitMQ: a payment reported many times is published once, and a crash
between the commit and the publish still publishes it, once (the outbox)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
from billing_testkit import DEMO_COURSE_ID, Platform, new_exchange, open_platform

from common.events.outbox import OutboxRelay
from common.events.rabbitmq import RabbitMQBus
from common.testing import RABBITMQ_URL

PAID = "billing.order.paid.v1"


@asynccontextmanager
async def spy_queue(exchange: str) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A queue of our own bound to billing's events, to count what reached the broker."""
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{exchange}.spy", exclusive=True)  # gone with the connection
        await queue.bind(exchange, routing_key="billing.#")
        yield queue


async def drain(queue: aio_pika.abc.AbstractQueue, quiet: float = 0.7) -> list[dict[str, object]]:
    """Every message until none arrived for `quiet` seconds."""
    bodies: list[dict[str, object]] = []
    idle = 0.0
    while idle < quiet:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.05)
            idle += 0.05
            continue
        idle = 0.0
        bodies.append(json.loads(message.body))
    return bodies


def paid_for(messages: list[dict[str, object]], order_id: str) -> list[dict[str, object]]:
    return [m for m in messages if m["event_type"] == "billing.order.paid"
            and m["payload"]["order_id"] == order_id]  # type: ignore[index]


async def _pending(platform: Platform) -> tuple[tuple[str, str], str, str]:
    buyer = await platform.new_user()
    order_id = (await platform.checkout(buyer, key=f"k-{uuid.uuid4()}")).json()["order_id"]
    return buyer, order_id, await platform.session_id(order_id)


async def test_five_deliveries_sequential_and_parallel_publish_one_event() -> None:
    exchange = new_exchange()
    async with open_platform(broker=exchange) as platform, spy_queue(exchange) as spy:
        buyer, order_id, session_id = await _pending(platform)
        payload = platform.stripe_event("checkout.session.completed", order_id, session_id)
        outcomes = [(await platform.deliver(payload)).json()["outcome"] for _ in range(5)]
        assert outcomes == ["fulfilled"] + ["duplicate"] * 4

        parallel_buyer, parallel_id, parallel_session = await _pending(platform)
        payload = platform.stripe_event("checkout.session.completed", parallel_id, parallel_session)
        responses = await asyncio.gather(*(platform.deliver(payload) for _ in range(5)))
        assert sorted(r.json()["outcome"] for r in responses) == ["duplicate"] * 4 + ["fulfilled"]
        # Different events reporting the same payment do not publish again either.
        again = platform.stripe_event("checkout.session.async_payment_succeeded", parallel_id, parallel_session)
        assert (await platform.deliver(again)).json()["outcome"] == "already_settled"

        # Catalog consumed them through RabbitMQ.
        assert await platform.enrolled_courses(buyer, expect=1) == [str(DEMO_COURSE_ID)]
        assert await platform.enrolled_courses(parallel_buyer, expect=1) == [str(DEMO_COURSE_ID)]
        messages = await drain(spy)
        assert len(paid_for(messages, order_id)) == 1
        assert len(paid_for(messages, parallel_id)) == 1
        assert (await platform.order(parallel_id))["status"] == "paid"


async def test_a_crash_between_commit_and_publish_still_publishes_once() -> None:
    exchange = new_exchange()
    async with open_platform(broker=exchange) as platform, spy_queue(exchange) as spy:
        await platform.runtime.relay.stop()  # this replica's relay dies: commits happen, publishing does not
        buyer, order_id, session_id = await _pending(platform)
        paid = platform.stripe_event("checkout.session.completed", order_id, session_id)
        assert (await platform.deliver(paid)).json()["outcome"] == "fulfilled"
        assert paid_for(await drain(spy, quiet=0.5), order_id) == []
        assert await platform.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 1

        # The replica comes back (a new relay on the same database and broker) and catches up.
        bus = RabbitMQBus(RABBITMQ_URL, exchange, queue_prefix=f"{exchange}.", service="billing")
        await bus.start()
        try:
            relay = OutboxRelay(platform.billing_db, bus, "billing")
            assert await relay.publish_pending() == (1, False)
            assert await relay.publish_pending() == (0, False)
        finally:
            await bus.close()
        assert len(paid_for(await drain(spy), order_id)) == 1
        assert await platform.enrolled_courses(buyer, expect=1) == [str(DEMO_COURSE_ID)]
        # A second delivery of the same event after the restart changes nothing.
        assert (await platform.deliver(paid)).json()["outcome"] == "duplicate"
        assert await platform.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
