"""The transcode worker runs as service `playback` but consumes none of its events: they stay on the
queue for the API replicas. (When the worker briefly joined that queue, with handlers only for auth's
revocations, it acked and dropped the `catalog.enrollment.revoked.v1` it was handed, and a refunded
learner kept watching: the e2e core path's step 9 failed whenever the revoke landed on the worker.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import pytest

from common.db import utcnow
from common.events import Envelope
from common.events.rabbitmq import RabbitMQBus
from common.testing import RABBITMQ_URL, in_process_settings, postgres_database, serve_in_process, unique_name
from playback import events
from playback.models import Entitlement
from playback.settings import PlaybackSettings
from playback.worker import create_worker_app


@pytest.fixture
def playback_database() -> Iterator[str]:
    with postgres_database(["playback"]) as urls:
        yield urls["playback"]


@pytest.fixture
async def bus() -> AsyncIterator[RabbitMQBus]:
    """A fresh exchange and playback queue, bound the way the API replicas bind it."""
    exchange, prefix = unique_name("worker-events") + ".events", unique_name("worker-events") + "."
    bus = RabbitMQBus(RABBITMQ_URL, exchange, queue_prefix=prefix, service="test")
    await bus.start()
    await bus.declare("playback", list(events.HANDLERS))
    try:
        yield bus
    finally:
        await bus.delete_queues("playback")
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            for name in ("playback.transcode", "playback.transcode.retry"):
                await channel.queue_delete(prefix + name)
            await channel.exchange_delete(exchange)
        await bus.close()


async def test_the_worker_leaves_playbacks_events_to_the_api(playback_database: str, bus: RabbitMQBus,
                                                             tmp_path: Path) -> None:
    settings = PlaybackSettings(**{
        **in_process_settings(playback_database), "broker_url": RABBITMQ_URL,
        "broker_exchange": bus.exchange_name, "broker_queue_prefix": bus.queue_prefix,
        "media_root": tmp_path / "media", "transcode_work_dir": tmp_path / "work"})
    app = create_worker_app(settings)
    user_id, course_id = uuid.uuid4(), uuid.uuid4()
    async with serve_in_process(app):
        for kind, version in (("granted", 1), ("revoked", 2)):
            await bus.publish(Envelope.new(f"catalog.enrollment.{kind}", {
                "enrollment_id": str(uuid.uuid4()), "user_id": str(user_id), "course_id": str(course_id),
                "source": "order", "order_id": str(uuid.uuid4()), "reason": "refunded", "version": version,
                "occurred_at": utcnow().isoformat()}))
        await bus.publish(Envelope.new("auth.user.deleted", {"user_id": str(user_id),
                                                             "deleted_at": utcnow().isoformat()}))
        await asyncio.sleep(1.5)  # time for a consumer, were the worker one, to take them
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(f"{bus.queue_prefix}playback.events", passive=True)
            assert queue.declaration_result.message_count == 3
        async with app.state.runtime.db.session() as session:
            assert await session.get(Entitlement, (user_id, course_id)) is None
