"""RabbitMQ transport (aio-pika).

Topology: one durable topic exchange; per consuming service a durable quorum queue bound by
routing key, a delay queue whose expired messages dead-letter back into the service queue, and a
dead-letter queue for messages that exhausted their attempts or could not be parsed. Messages are
persistent and published with confirms; connections are robust (reconnect and re-declare).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from typing import Any

import aio_pika
import aiormq.abc
from aio_pika import exceptions as amqp_errors
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustExchange,
)
from opentelemetry import propagate, trace
from pydantic import ValidationError

from common.errors import is_unavailable
from common.events.bus import EventHandler, TransportUnavailable
from common.events.envelope import Envelope
from common.observability import metrics

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

ATTEMPT_HEADER = "x-attempt"
# A broker that does not answer a passive declare within this is reported down by readiness.
PING_TIMEOUT_SECONDS = 2.0


class RabbitMQBus:
    def __init__(self, url: str, exchange: str, *, queue_prefix: str = "", service: str = "",
                 max_attempts: int = 5, retry_delay_ms: int = 2000, prefetch: int = 16) -> None:
        self.url = url
        self.exchange_name = exchange
        self.queue_prefix = queue_prefix
        self.service = service
        self.max_attempts = max_attempts
        self.retry_delay_ms = retry_delay_ms
        self.prefetch = prefetch
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._exchange: AbstractRobustExchange | None = None
        self._consume_channel: AbstractRobustChannel | None = None
        self._publish_lock = asyncio.Lock()
        self._ping_channel: aiormq.abc.AbstractChannel | None = None

    def queue_names(self, consumer: str) -> tuple[str, str, str]:
        base = f"{self.queue_prefix}{consumer}.events"
        return base, f"{base}.retry", f"{base}.dlq"

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self.url, client_properties={
            "connection_name": f"{self.service or 'triple'}"})
        self._publish_channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._publish_channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    def _require_connected(self) -> None:
        """A robust connection that is reconnecting is not closed, yet nothing can be sent on it."""
        connection = self._connection
        if connection is None or self._exchange is None:
            raise TransportUnavailable("bus not started")
        if connection.is_closed or not connection.connected.is_set() or connection.transport is None:
            raise TransportUnavailable("broker connection is down (reconnecting)")

    async def ping(self) -> None:
        """Connected, and the broker answers a round trip within PING_TIMEOUT_SECONDS (a stalled broker looks
        connected). The passive declare goes out on a driver (aiormq) channel of its own: aio-pika's
        robust channel answers a passive declare of an exchange it already knows from its cache
        without sending a frame, and a timed-out call closes its channel, which must not be the
        publishers'."""
        self._require_connected()
        assert self._connection is not None and self._connection.transport is not None
        connection = self._connection.transport.connection
        try:
            channel = self._ping_channel
            if channel is None or channel.is_closed or channel.connection is not connection:
                channel = self._ping_channel = await connection.channel(
                    publisher_confirms=False, timeout=PING_TIMEOUT_SECONDS)
            await channel.exchange_declare(self.exchange_name, passive=True, timeout=PING_TIMEOUT_SECONDS)
        except (amqp_errors.AMQPError, ConnectionError, OSError, TimeoutError, RuntimeError) as exc:
            self._ping_channel = None  # a timed-out call closes its channel: the next ping opens one
            raise TransportUnavailable(f"broker does not answer: {exc!r}") from exc
        except BaseException:  # cancelled by the caller's deadline: same as a timeout
            self._ping_channel = None
            raise

    async def publish(self, envelope: Envelope, headers: dict[str, str] | None = None) -> None:
        """Returns once the broker confirmed; raises TransportUnavailable when the broker could not be
        asked, and the broker's own refusal (DeliveryError: a nack) as it is: that one is the row's."""
        self._require_connected()
        assert self._exchange is not None
        message = aio_pika.Message(
            body=envelope.model_dump_json().encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(envelope.event_id),
            correlation_id=envelope.correlation_id,
            type=envelope.routing_key,
            headers=dict(headers or {}),
        )
        # With confirms, `publish` returns after the broker has taken responsibility for it.
        try:
            await self._exchange.publish(message, routing_key=envelope.routing_key, timeout=10)
        except amqp_errors.DeliveryError:  # a nack (PublishError, a return, is one too)
            raise
        except (amqp_errors.AMQPError, ConnectionError, OSError, TimeoutError, RuntimeError) as exc:
            raise TransportUnavailable(f"publish failed: {exc!r}") from exc

    async def declare(self, consumer: str, routing_keys: Iterable[str]) -> None:
        if self._connection is None:
            raise ConnectionError("bus not started")
        channel = await self._connection.channel()
        await self._declare(channel, consumer, routing_keys)
        await channel.close()

    async def subscribe(self, consumer: str, routing_keys: Iterable[str],
                        handler: EventHandler) -> None:
        if self._connection is None:
            raise ConnectionError("bus not started")
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self.prefetch)
        self._consume_channel = channel
        queue = await self._declare(channel, consumer, routing_keys)

        async def on_message(message: AbstractIncomingMessage) -> None:
            await self._handle(channel, consumer, message, handler)

        await queue.consume(on_message)

    async def _declare(self, channel: AbstractChannel, consumer: str,
                       routing_keys: Iterable[str]) -> AbstractQueue:
        exchange = await channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        main_name, retry_name, dlq_name = self.queue_names(consumer)
        queue = await channel.declare_queue(main_name, durable=True,
                                            arguments={"x-queue-type": "quorum"})
        await channel.declare_queue(retry_name, durable=True, arguments={
            "x-message-ttl": self.retry_delay_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": main_name,
        })
        await channel.declare_queue(dlq_name, durable=True, arguments={"x-queue-type": "quorum"})
        for key in routing_keys:
            await queue.bind(exchange, routing_key=key)
        return queue

    async def _handle(self, channel: AbstractRobustChannel, consumer: str,
                      message: AbstractIncomingMessage, handler: EventHandler) -> None:
        _, retry_name, dlq_name = self.queue_names(consumer)
        headers: dict[str, Any] = dict(message.headers or {})
        attempt = int(headers.get(ATTEMPT_HEADER, 1) or 1)
        try:
            envelope = Envelope.model_validate_json(message.body)
        except (ValidationError, json.JSONDecodeError) as exc:
            log.error("unparseable event sent to DLQ", extra={"queue": consumer, "error": str(exc)})
            await self._forward(channel, message, dlq_name, headers, reason="unparseable")
            metrics.EVENTS_DEAD_LETTERED.labels(consumer, message.routing_key or "unknown").inc()
            await message.ack()
            return
        carrier = {k: str(v) for k, v in headers.items() if isinstance(v, str | bytes)}
        ctx = propagate.extract(carrier)
        with tracer.start_as_current_span(f"consume {envelope.routing_key}", context=ctx,
                                          kind=trace.SpanKind.CONSUMER):
            try:
                await handler(envelope)
            except Exception as exc:
                if is_unavailable(exc):
                    # The database (or a peer) is down, not the event: wait on the retry queue's
                    # delay and try again without spending the attempt budget; it ends with the outage.
                    log.warning("event handling waits for a dependency", extra={
                        "event_id": str(envelope.event_id), "routing_key": envelope.routing_key,
                        "error": type(exc).__name__})
                    await self._forward(channel, message, retry_name, headers, reason=repr(exc))
                    await message.ack()
                    return
                if attempt >= self.max_attempts:
                    log.error("event dead-lettered after retries", extra={
                        "event_id": str(envelope.event_id), "routing_key": envelope.routing_key,
                        "attempt": attempt})
                    await self._forward(channel, message, dlq_name, headers, reason=repr(exc))
                    metrics.EVENTS_DEAD_LETTERED.labels(consumer, envelope.routing_key).inc()
                else:
                    log.warning("event handling failed, retrying later", extra={
                        "event_id": str(envelope.event_id), "routing_key": envelope.routing_key,
                        "attempt": attempt})
                    headers[ATTEMPT_HEADER] = attempt + 1
                    await self._forward(channel, message, retry_name, headers, reason=repr(exc))
                # Ack only after the copy is confirmed: a crash in between redelivers (inbox dedups).
                await message.ack()
                return
        await message.ack()

    async def _forward(self, channel: AbstractRobustChannel, message: AbstractIncomingMessage,
                       queue_name: str, headers: dict[str, Any], *, reason: str) -> None:
        headers = {**headers, "x-last-error": reason[:500]}
        copy = aio_pika.Message(
            body=message.body, content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=message.message_id,
            correlation_id=message.correlation_id, type=message.type, headers=headers)
        await channel.default_exchange.publish(copy, routing_key=queue_name, timeout=10)

    async def delete_queues(self, consumer: str) -> None:
        """Test helper: remove a consumer's queues (fresh names per run keep tests independent)."""
        if self._connection is None:
            return
        channel = await self._connection.channel()
        for name in self.queue_names(consumer):
            await channel.queue_delete(name)
        await channel.close()
