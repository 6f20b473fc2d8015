"""create_app(settings) -> the catalog service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from catalog import demo, events, querycount
from catalog.api import certificates as certificate_routes
from catalog.api.examples import EXAMPLES
from catalog.api.internal import internal_router
from catalog.api.routes import router
from catalog.public_cache import PublicCache
from catalog.settings import CatalogSettings
from common.app import build_app
from common.events import EventBus
from common.runtime import open_runtime

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def create_app(settings: CatalogSettings | None = None, *, bus: EventBus | None = None,
               http_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or CatalogSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings, migrations_dir=MIGRATIONS_DIR, handlers=events.HANDLERS,
                                bus=bus, http_transport=http_transport) as runtime:
            querycount.install(runtime.db.engine)
            public_cache = PublicCache(runtime.cache, settings.public_cache_ttl_seconds)
            runtime.db.on_commit(public_cache.after_commit)
            runtime.resources["public_cache"] = public_cache
            if settings.seed_demo_data:
                async with runtime.db.startup_transaction("demo-seed") as session:
                    await demo.seed(db_session=session)
            app.state.runtime = runtime
            yield

    app = build_app(settings, title="Triple Academy catalog",
                    description="Courses, curriculum, publication and enrollments.",
                    lifespan=lifespan, routers=[router, certificate_routes.router, internal_router],
                    examples=EXAMPLES)
    app.add_middleware(querycount.QueryCountMiddleware, service=settings.service_name)
    return app
