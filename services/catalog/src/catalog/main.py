"""create_app(settings) -> the catalog service."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from catalog import events, querycount
from catalog.api import certificates as certificate_routes
from catalog.api import evidence as evidence_routes
from catalog.api.examples import EXAMPLES
from catalog.api.internal import internal_router
from catalog.api.routes import router
from catalog.resources import open_resources
from catalog.settings import CatalogSettings
from common.app import build_app, service_lifespan
from common.events import EventBus

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def create_app(settings: CatalogSettings | None = None, *, bus: EventBus | None = None,
               http_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or CatalogSettings()
    lifespan = service_lifespan(settings, migrations_dir=MIGRATIONS_DIR, handlers=events.handlers, bus=bus,
                                http_transport=http_transport, open_resources=open_resources(settings))
    app = build_app(settings, title="Triple Academy catalog",
                    description="Courses, curriculum, publication and enrollments.",
                    lifespan=lifespan, routers=[router, certificate_routes.router, internal_router,
                                                evidence_routes.router, evidence_routes.internal_router],
                    examples=EXAMPLES)
    app.add_middleware(querycount.QueryCountMiddleware, service=settings.service_name)
    return app
