"""Everything a service holds while it runs, opened in its lifespan and closed on shutdown."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from common import migrations
from common.cache import Cache, open_cache
from common.db import Database, DatabaseTimeouts
from common.events.bus import EventBus, InProcessBus
from common.events.consumer import HandlerMap, InboxConsumer
from common.events.outbox import OutboxRelay
from common.events.rabbitmq import RabbitMQBus
from common.http import ServiceClient, ServiceTokenProvider
from common.mail import Mailer, build_mailer
from common.observability.logging import configure_logging
from common.observability.tracing import configure_tracing
from common.revocation import Revocations
from common.security import JWKSVerifier
from common.settings import ServiceSettings

log = logging.getLogger(__name__)

ResourcesT = TypeVar("ResourcesT")


@dataclass
class Runtime:
    settings: ServiceSettings
    db: Database
    cache: Cache
    bus: EventBus
    http: httpx.AsyncClient
    verifier: JWKSVerifier
    tokens: ServiceTokenProvider | None
    relay: OutboxRelay
    mailer: Mailer
    revocations: Revocations
    health_checks: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)
    # The service's own resources (payment provider, storage...): one typed object (a dataclass of
    # the service's), opened by the service in `service_lifespan` and read with `resources_as`.
    resources: object = None

    def resources_as(self, kind: type[ResourcesT]) -> ResourcesT:
        """The service's resources, typed; a wrong class is a wiring error caught at the first request."""
        if not isinstance(self.resources, kind):
            raise RuntimeError(f"{self.settings.service_name} holds {type(self.resources).__name__}, "
                               f"not {kind.__name__}")
        return self.resources

    def client(self, target: str) -> ServiceClient:
        """A client for another service ('catalog', 'billing', ...) with this service's token."""
        base_url = getattr(self.settings, f"{target}_url")
        return ServiceClient(self.http, base_url, target, self.tokens,
                             timeout=self.settings.http_timeout_seconds,
                             retries=self.settings.http_retries)


def open_bus(settings: ServiceSettings) -> EventBus:
    if settings.broker_url:
        return RabbitMQBus(settings.broker_url.get_secret_value(), settings.broker_exchange,
                           queue_prefix=settings.broker_queue_prefix,
                           service=settings.service_name,
                           max_attempts=settings.broker_max_attempts,
                           retry_delay_ms=settings.broker_retry_delay_ms)
    return InProcessBus()


HandlerFactory = Callable[[Revocations], HandlerMap]


@asynccontextmanager
async def open_runtime(settings: ServiceSettings, *, migrations_dir: Path, handlers: HandlerMap | HandlerFactory,
                       bus: EventBus | None = None,
                       http_transport: httpx.AsyncBaseTransport | None = None,
                       ) -> AsyncIterator[Runtime]:
    """Open db, cache, bus, HTTP, verifier and relay; subscribe the service's event handlers.

    A `bus` passed in is shared (embedded mode) and owned by the caller.
    """
    name = settings.service_name
    configure_logging(name, settings.log_level, settings.log_json)
    configure_tracing(name, settings.otlp_endpoint)
    if settings.should_migrate_on_start:
        await migrations.upgrade_async(migrations_dir, settings.database_url.get_secret_value(), settings.db_schema)

    async with AsyncExitStack() as stack:
        db = Database(settings.database_url.get_secret_value(), settings.db_schema, settings.database_pool_size,
                      DatabaseTimeouts(connect=settings.database_connect_timeout_seconds,
                                       checkout=settings.database_pool_timeout_seconds,
                                       statement=settings.database_statement_timeout_seconds))
        stack.push_async_callback(db.dispose)
        cache = open_cache(settings.redis_url.get_secret_value() if settings.redis_url else None,
                           settings.redis_key_prefix)
        stack.push_async_callback(cache.close)
        http = httpx.AsyncClient(transport=http_transport,
                                 timeout=settings.http_timeout_seconds,
                                 limits=httpx.Limits(max_keepalive_connections=50))
        stack.push_async_callback(http.aclose)
        owns_bus = bus is None
        if bus is None:
            bus = open_bus(settings)
            await bus.start()
            stack.push_async_callback(bus.close)
        verifier = JWKSVerifier(f"{settings.auth_url}/.well-known/jwks.json", settings.jwt_issuer,
                                http, cache_seconds=settings.jwks_cache_seconds,
                                refetch_cooldown=settings.jwks_refetch_cooldown_seconds)
        tokens = None
        if settings.service_client_secret is not None:
            tokens = ServiceTokenProvider(http, f"{settings.auth_url}/oauth/token", name,
                                          settings.service_client_secret.get_secret_value())
        relay = OutboxRelay(db, bus, name)
        checks: dict[str, Callable[[], Awaitable[None]]] = {"database": db.ping}
        if settings.redis_url:
            checks["redis"] = cache.ping
        if settings.broker_url:
            checks["broker"] = bus.ping
        revocations = Revocations(cache, settings.token_revocation_ttl_seconds)
        runtime = Runtime(settings=settings, db=db, cache=cache, bus=bus, http=http,
                          verifier=verifier, tokens=tokens, relay=relay, mailer=build_mailer(settings),
                          revocations=revocations, health_checks=checks)
        # A service's `events.handlers(revocations)` adds the revocation recording to its own
        # handlers; a helper process (a worker with no handlers) must not join the service's queue.
        if callable(handlers):
            handlers = handlers(revocations)
        if handlers:
            consumer = InboxConsumer(db, name, handlers)
            await bus.subscribe(name, consumer.routing_keys, consumer)
        if owns_bus and isinstance(bus, InProcessBus):
            bus.begin_delivery()
        relay.start()
        stack.push_async_callback(relay.stop)
        log.info("service started", extra={"mode": "distributed" if settings.broker_url
                                            else "embedded"})
        yield runtime
