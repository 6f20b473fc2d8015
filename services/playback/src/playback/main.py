"""create_app(settings) -> the playback service."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from common.app import build_app, service_lifespan
from common.events import EventBus
from playback import events
from playback.api import evidence as evidence_routes
from playback.api.examples import EXAMPLES
from playback.api.routes import router
from playback.assets.routes import router as assets_router
from playback.resources import open_resources
from playback.settings import PlaybackSettings

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def create_app(settings: PlaybackSettings | None = None, *, bus: EventBus | None = None,
               http_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or PlaybackSettings()

    lifespan = service_lifespan(settings, migrations_dir=MIGRATIONS_DIR, handlers=events.handlers, bus=bus,
                                http_transport=http_transport, open_resources=open_resources(settings))
    return build_app(settings, title="Triple Academy playback",
                     description="Playback tokens, entitlements and signed HLS manifests.",
                     lifespan=lifespan, routers=[router, assets_router, evidence_routes.router], examples=EXAMPLES)
