"""Where transcode jobs wait and who runs them.

The job message is the outbox event `playback.transcode.requested.v1` (committed with the
uploading -> processing change). Two runners consume it:

- `RabbitTranscodeConsumer` (distributed, `python -m playback.worker`): a durable quorum queue
  `<prefix>playback.transcode` bound to that routing key. Manual ack only after the job's result is
  committed, so a worker that dies mid-job (even SIGKILL) leaves the message unacked and RabbitMQ
  hands it to the next worker. A failed attempt is parked in `<prefix>playback.transcode.retry`
  (TTL, dead-lettered back). The asset row counts attempts, which bounds retries and crash loops.
- `InProcessTranscoder` (embedded): an asyncio queue fed by the in-process bus; on start it
  re-enqueues every asset still `processing`, so a restart loses no job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from prometheus_client import Gauge, Histogram
from pydantic import ValidationError

from common.db import Database
from common.events.bus import EventBus
from common.events.envelope import Envelope
from contracts.events import TranscodeRequested
from playback.assets import service
from playback.assets.storage import Storage
from playback.settings import PlaybackSettings

log = logging.getLogger(__name__)

TRANSCODE_IN_FLIGHT = Gauge("playback_transcode_in_flight", "Transcode jobs this worker is running")
TRANSCODE_DURATION = Histogram(
    "playback_transcode_duration_seconds", "Wall time of one transcode attempt, by outcome (ok, retry)",
    ["outcome"], buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))


def queue_names(settings: PlaybackSettings) -> tuple[str, str]:
    base = f"{settings.broker_queue_prefix}playback.transcode"
    return base, f"{base}.retry"


async def declare_queues(channel: AbstractChannel, settings: PlaybackSettings) -> AbstractQueue:
    """Idempotent: the API declares them at start (before it can accept an upload) and so does the worker."""
    main_name, retry_name = queue_names(settings)
    exchange = await channel.declare_exchange(settings.broker_exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(main_name, durable=True, arguments={"x-queue-type": "quorum"})
    await channel.declare_queue(retry_name, durable=True, arguments={
        "x-message-ttl": settings.transcode_retry_delay_ms,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": main_name,
    })
    await queue.bind(exchange, routing_key=TranscodeRequested.routing_key())
    return queue


async def declare_transcode_queues(settings: PlaybackSettings) -> None:
    assert settings.broker_url is not None
    connection = await aio_pika.connect(settings.broker_url.get_secret_value())
    async with connection:
        await declare_queues(await connection.channel(), settings)


def _job(body: bytes) -> uuid.UUID | None:
    try:
        return TranscodeRequested.model_validate(Envelope.model_validate_json(body).payload).asset_id
    except (ValidationError, ValueError):
        return None


async def _cancel(task: asyncio.Task[None] | None) -> None:
    """Stop a background loop and wait until it has."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class RabbitTranscodeConsumer:
    """Runs up to `concurrency` jobs at once (prefetch); one ffmpeg each.

    A job holds its message unacked for its whole run: RabbitMQ's `consumer_timeout` (30 min by
    default) must exceed PLAYBACK_TRANSCODE_TIMEOUT_SECONDS, or long jobs are handed out twice.
    """

    def __init__(self, *, db: Database, storage: Storage, settings: PlaybackSettings, concurrency: int = 1) -> None:
        self.db = db
        self.storage = storage
        self.settings = settings
        self.concurrency = concurrency
        self._connection: AbstractRobustConnection | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        assert self.settings.broker_url is not None
        self._connection = await aio_pika.connect_robust(
            self.settings.broker_url.get_secret_value(), client_properties={"connection_name": "playback-worker"})
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self.concurrency)
        queue = await declare_queues(channel, self.settings)

        async def on_message(message: AbstractIncomingMessage) -> None:
            self._in_flight += 1
            self._idle.clear()
            try:
                await self._handle(channel, message)
            finally:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.set()

        self._queue = queue
        self._consumer_tag = await queue.consume(on_message)
        log.info("transcode worker consuming", extra={"queue": queue.name})

    async def _handle(self, channel: AbstractChannel, message: AbstractIncomingMessage) -> None:
        asset_id = _job(message.body)
        if asset_id is None:
            log.error("unparseable transcode job dropped")
            await message.ack()
            return
        started = time.perf_counter()
        try:
            with TRANSCODE_IN_FLIGHT.track_inprogress():
                outcome = await service.run_transcode(db=self.db, storage=self.storage, settings=self.settings,
                                                      asset_id=asset_id)
            TRANSCODE_DURATION.labels("ok").observe(time.perf_counter() - started)
            log.info("transcode job done", extra={"asset_id": str(asset_id), "outcome": outcome,
                                                  "redelivered": message.redelivered})
        except Exception:
            TRANSCODE_DURATION.labels("retry").observe(time.perf_counter() - started)
            log.exception("transcode attempt failed, retrying later", extra={"asset_id": str(asset_id)})
            _, retry_name = queue_names(self.settings)
            # Ack only once the retry copy is confirmed: a crash in between redelivers the original.
            await channel.default_exchange.publish(
                aio_pika.Message(body=message.body, content_type=message.content_type,
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=message.message_id),
                routing_key=retry_name, timeout=10)
        await message.ack()

    async def ping(self) -> None:
        if self._connection is None or self._connection.is_closed:
            raise ConnectionError("broker connection is closed")

    async def stop(self, grace_seconds: float = 20) -> None:
        """Take no new job, give the running one `grace_seconds` to finish and ack, then disconnect
        (a job still running then is redelivered to another worker)."""
        if self._queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(Exception):
                await self._queue.cancel(self._consumer_tag)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


class InProcessTranscoder:
    """Embedded mode: jobs in an asyncio queue, run one at a time in this process."""

    consumer_name = "playback.transcoder"

    def __init__(self, *, db: Database, storage: Storage, settings: PlaybackSettings, bus: EventBus) -> None:
        self.db = db
        self.storage = storage
        self.settings = settings
        self.bus = bus
        self.queue: asyncio.Queue[uuid.UUID] = asyncio.Queue()
        self._queued: set[uuid.UUID] = set()
        self._task: asyncio.Task[None] | None = None

    def enqueue(self, asset_id: uuid.UUID) -> None:
        if asset_id not in self._queued:
            self._queued.add(asset_id)
            self.queue.put_nowait(asset_id)

    async def _on_event(self, envelope: Envelope) -> None:
        try:
            self.enqueue(TranscodeRequested.model_validate(envelope.payload).asset_id)
        except ValidationError:
            log.error("unparseable transcode job dropped")

    async def start(self) -> None:
        await self.bus.subscribe(self.consumer_name, [TranscodeRequested.routing_key()], self._on_event)
        for asset_id in await service.assets_needing_work(self.db):
            self.enqueue(asset_id)
        self._task = asyncio.create_task(self._run(), name="playback-transcoder")

    async def _run(self) -> None:
        while True:
            asset_id = await self.queue.get()
            self._queued.discard(asset_id)
            try:
                await service.run_transcode(db=self.db, storage=self.storage, settings=self.settings,
                                            asset_id=asset_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("transcode attempt failed, retrying later", extra={"asset_id": str(asset_id)})
                asyncio.get_running_loop().call_later(self.settings.transcode_retry_delay_ms / 1000,
                                                      self.enqueue, asset_id)

    async def stop(self) -> None:
        await _cancel(self._task)
        self._task = None


class UploadExpirySweeper:
    """Every `upload_sweep_interval_seconds`, fail assets whose upload never completed
    (`service.expire_uploads`). Runs in the worker (distributed) and beside the in-process
    transcoder (embedded); several sweepers at once are safe (SKIP LOCKED)."""

    def __init__(self, *, db: Database, storage: Storage, settings: PlaybackSettings) -> None:
        self.db = db
        self.storage = storage
        self.settings = settings
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> int:
        return await service.expire_uploads(db=self.db, storage=self.storage, settings=self.settings)

    async def _run(self) -> None:
        while True:
            try:
                expired = await self.sweep()
                if expired:
                    log.info("abandoned uploads expired", extra={"assets": expired})
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("upload expiry sweep failed, retrying next interval")
            await asyncio.sleep(self.settings.upload_sweep_interval_seconds)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="playback-upload-expiry")

    async def stop(self) -> None:
        await _cancel(self._task)
        self._task = None


def in_process_enabled(settings: PlaybackSettings) -> bool:
    """Embedded (no broker): yes; distributed: only when asked (the worker Deployment does the work)."""
    if settings.transcode_in_process is not None:
        return settings.transcode_in_process
    return settings.broker_url is None


Runner = RabbitTranscodeConsumer | InProcessTranscoder


def build_runner(*, db: Database, storage: Storage, settings: PlaybackSettings, bus: EventBus) -> Runner:
    if settings.broker_url:
        return RabbitTranscodeConsumer(db=db, storage=storage, settings=settings,
                                       concurrency=settings.transcode_concurrency)
    return InProcessTranscoder(db=db, storage=storage, settings=settings, bus=bus)
