"""create_app(settings) -> the playback service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from common.app import build_app
from common.events import EventBus
from common.runtime import open_runtime
from playback import events, signing
from playback.access_records import AccessRecorder
from playback.api.examples import EXAMPLES
from playback.api.routes import router
from playback.assets import open_ingestion
from playback.assets.routes import router as assets_router
from playback.cdn import open_media_signer
from playback.media import LocalMediaStore
from playback.settings import PlaybackSettings
from playback.streams import open_stream_registry

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def create_app(settings: PlaybackSettings | None = None, *, bus: EventBus | None = None,
               http_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or PlaybackSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings, migrations_dir=MIGRATIONS_DIR, handlers=events.HANDLERS,
                                bus=bus, http_transport=http_transport) as runtime:
            store = LocalMediaStore(settings.media_root)
            runtime.resources["token_key"] = await signing.open_token_key(settings)
            runtime.resources["media"] = store
            # Issue 6: media URL signer (Nginx secure_link / CloudFront) and the concurrent-stream registry.
            runtime.resources["media_signer"] = await open_media_signer(settings)
            runtime.resources["streams"] = open_stream_registry(runtime.cache)
            # Issue 20: manifest grants reach the access log in batches (see playback.access_records).
            recorder = AccessRecorder(runtime.db, flush_seconds=settings.access_log_flush_seconds)
            runtime.resources["access_records"] = recorder
            recorder.start()
            runtime.health_checks["media"] = store.ping
            app.state.runtime = runtime
            # Video ingestion (issue 7): storage, and the in-process transcoder in embedded mode.
            try:
                async with open_ingestion(runtime, settings):
                    yield
            finally:
                await recorder.stop()

    return build_app(settings, title="Triple Academy playback",
                     description="Playback tokens, entitlements and signed HLS manifests.",
                     lifespan=lifespan, routers=[router, assets_router], examples=EXAMPLES)
