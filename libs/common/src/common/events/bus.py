"""The transport interface and the in-process transport used by the embedded mode."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from common.events.envelope import Envelope

log = logging.getLogger(__name__)

EventHandler = Callable[[Envelope], Awaitable[None]]


class TransportUnavailable(ConnectionError):
    """The transport could not take a message for a reason that has nothing to do with the message
    (broker unreachable, reconnecting, stalled): the outbox waits and retries without counting an
    attempt against the row, so no outage can ever make an event dead."""


class EventBus(Protocol):
    """Publish returns only once the transport has accepted the message durably."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, envelope: Envelope, headers: dict[str, str] | None = None) -> None: ...

    async def declare(self, consumer: str, routing_keys: Iterable[str]) -> None:
        """Create the consumer's queues and bindings (also run by the migrate step, so events
        published before the consumer's first start are kept)."""
        ...

    async def subscribe(self, consumer: str, routing_keys: Iterable[str],
                        handler: EventHandler) -> None: ...

    async def ping(self) -> None: ...


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic match for the patterns we use ('*' one word, '#' any words)."""
    if pattern == "#":
        return True
    glob = pattern.replace("#", "*")
    return fnmatch.fnmatchcase(routing_key, glob)


@dataclass
class _Subscription:
    consumer: str
    routing_keys: tuple[str, ...]
    handler: EventHandler


class InProcessBus:
    """Delivers to every subscriber before `publish` returns.

    A handler that still fails after `inline_attempts` makes `publish` raise, so the producer's
    outbox row stays pending and is retried (and eventually marked dead): the outbox is the
    durable queue of the embedded mode, and a crash loses nothing.
    """

    def __init__(self, inline_attempts: int = 3, retry_delay: float = 0.05) -> None:
        self._subscriptions: list[_Subscription] = []
        self.inline_attempts = inline_attempts
        self.retry_delay = retry_delay
        self._delivering = asyncio.Event()

    async def start(self) -> None:
        return None

    def begin_delivery(self) -> None:
        """Called by whoever owns the bus once every consumer has subscribed (the embedded gateway,
        or a standalone service's runtime), so no early event finds nobody listening."""
        self._delivering.set()

    async def declare(self, consumer: str, routing_keys: Iterable[str]) -> None:
        return None

    async def close(self) -> None:
        self._subscriptions.clear()

    async def ping(self) -> None:
        return None

    async def subscribe(self, consumer: str, routing_keys: Iterable[str],
                        handler: EventHandler) -> None:
        self._subscriptions.append(_Subscription(consumer, tuple(routing_keys), handler))

    async def publish(self, envelope: Envelope, headers: dict[str, str] | None = None) -> None:
        await asyncio.wait_for(self._delivering.wait(), timeout=30)
        key = envelope.routing_key
        failures: list[str] = []
        for sub in self._subscriptions:
            if not any(topic_matches(p, key) for p in sub.routing_keys):
                continue
            for attempt in range(1, self.inline_attempts + 1):
                try:
                    await sub.handler(envelope)
                    break
                except Exception:
                    log.exception("in-process handler failed", extra={
                        "consumer": sub.consumer, "routing_key": key, "attempt": attempt})
                    if attempt == self.inline_attempts:
                        failures.append(sub.consumer)
                    else:
                        await asyncio.sleep(self.retry_delay * attempt)
        if failures:
            raise RuntimeError(f"consumers failed for {key}: {', '.join(failures)}")
