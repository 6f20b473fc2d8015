"""The embedded mode: every service in one process on one port, same code as distributed.

Only adapters differ: a SQLite file per service, the in-process event bus, in-memory cache,
in-process HTTP between services, the local payment provider, media from the local disk (the
playback media app stands in for Nginx `secure_link`).
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

import auth.main
import billing.main
import catalog.main
import playback.main
from auth.settings import AuthSettings
from billing.settings import BillingSettings
from catalog.settings import CatalogSettings
from common.app import compose_services
from common.events.bus import InProcessBus
from common.http import LazyASGITransport
from common.settings import composed_urls
from gateway.headers import EdgeMiddleware, RateLimit, in_process, parse_rate
from gateway.settings import GatewaySettings
from gateway.web import WebApp
from playback.media import create_media_app
from playback.settings import PlaybackSettings


def service_overrides(settings: GatewaySettings, name: str) -> dict[str, Any]:
    """Embedded values: every service reaches the others through this process's own prefixes."""
    data_dir = settings.data_dir.resolve()
    return {**composed_urls(settings.public_base_url), "log_json": settings.log_json,
            "database_url": f"sqlite+aiosqlite:///{data_dir / f'{name}.db'}"}


def edge_middleware(settings: GatewaySettings) -> Middleware:
    """Headers, request ids, CORS and rate limits as the Nginx edge applies them."""
    login_retry_after = max(1, round(1 / parse_rate(settings.login_rate_limit)))
    return Middleware(EdgeMiddleware, cors_origins=settings.cors_origins,
                      api_limit=RateLimit(settings.api_rate_limit, settings.api_burst, retry_after=1),
                      login_limit=RateLimit(settings.login_rate_limit, settings.login_burst,
                                            retry_after=login_retry_after))


def create_embedded_app(settings: GatewaySettings | None = None) -> Starlette:
    settings = settings or GatewaySettings()
    transport = LazyASGITransport()
    bus = InProcessBus()
    seed = settings.seed_demo_data
    web = WebApp(settings.web_dist)
    playback_settings = PlaybackSettings(**service_overrides(settings, "playback"))
    services = {
        "auth": auth.main.create_app(
            AuthSettings(**service_overrides(settings, "auth"), seed_demo_data=seed),
            bus=bus, http_transport=transport),
        "catalog": catalog.main.create_app(
            CatalogSettings(**service_overrides(settings, "catalog"), seed_demo_data=seed),
            bus=bus, http_transport=transport),
        "billing": billing.main.create_app(
            BillingSettings(**service_overrides(settings, "billing"), payment_provider="local"),
            bus=bus, http_transport=transport),
        "playback": playback.main.create_app(playback_settings, bus=bus, http_transport=transport),
    }
    app = compose_services(services, bus=bus, extra_routes=[
        Mount("/media", app=create_media_app(playback_settings)),
        Route("/{path:path}", web.respond, methods=["GET", "HEAD"]),
    ], middleware=[edge_middleware(settings)])
    # The services' calls to each other skip the edge (no limits, /internal reachable), as the
    # direct URLs of the distributed mode do; only requests from outside meet it.
    transport.bind(in_process(app))
    return app
