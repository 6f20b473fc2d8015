"""`python -m playback.worker`: the transcode worker of the distributed mode (its own Deployment).

Consumes `<prefix>playback.transcode` from RabbitMQ, runs ffmpeg, writes to storage, and publishes
the asset events through playback's outbox (this process runs an outbox relay too). It also
expires abandoned uploads (`UploadExpirySweeper`). It serves
`/health/live`, `/health/ready` (database, broker, storage) and `/metrics` on PLAYBACK_WORKER_PORT
for the orchestrator's probes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from common.app import build_app, service_lifespan
from common.runtime import Runtime
from playback.assets.jobs import RabbitTranscodeConsumer, UploadExpirySweeper
from playback.assets.service import clear_scratch
from playback.assets.storage import open_storage
from playback.main import MIGRATIONS_DIR
from playback.resources import WorkerResources
from playback.settings import PlaybackSettings

log = logging.getLogger(__name__)


def create_worker_app(settings: PlaybackSettings | None = None) -> FastAPI:
    settings = settings or PlaybackSettings()
    if not settings.broker_url:
        raise SystemExit("the transcode worker needs PLAYBACK_BROKER_URL (embedded mode transcodes in-process)")

    @asynccontextmanager
    async def open_worker(runtime: Runtime) -> AsyncIterator[WorkerResources]:
        storage = open_storage(settings)
        consumer = RabbitTranscodeConsumer(db=runtime.db, storage=storage, settings=settings,
                                           concurrency=settings.transcode_concurrency)
        runtime.health_checks["storage"] = storage.ping
        runtime.health_checks["transcode_queue"] = consumer.ping
        cleared = await asyncio.to_thread(clear_scratch, settings.transcode_work_dir)
        if cleared:
            log.info("removed scratch left by an interrupted job", extra={"folders": cleared})
        await consumer.start()
        sweeper = UploadExpirySweeper(db=runtime.db, storage=storage, settings=settings)
        sweeper.start()
        try:
            yield WorkerResources(storage=storage)
        finally:
            await sweeper.stop()
            await consumer.stop(grace_seconds=settings.worker_stop_grace_seconds)

    # No handlers: the worker must not join playback's event queue.
    lifespan = service_lifespan(settings, migrations_dir=MIGRATIONS_DIR, handlers={}, open_resources=open_worker)
    return build_app(settings, title="Triple Academy playback worker",
                     description="Transcodes uploaded videos to HLS.", lifespan=lifespan, routers=[])


def main() -> None:
    settings = PlaybackSettings()
    uvicorn.run(create_worker_app(settings), host=settings.worker_host, port=settings.worker_port,
                access_log=False, server_header=False, log_config=None)


if __name__ == "__main__":
    main()
