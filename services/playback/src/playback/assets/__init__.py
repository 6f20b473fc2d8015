"""Video ingestion: direct uploads, HLS transcoding (ffmpeg) and the asset lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from common.runtime import Runtime
from playback.settings import PlaybackSettings


@asynccontextmanager
async def open_ingestion(runtime: Runtime, settings: PlaybackSettings) -> AsyncIterator[None]:
    """Storage for the asset routes and, embedded, the in-process transcoder (the API's lifespan)."""
    from playback.assets import jobs
    from playback.assets.storage import StorageMediaStore, open_storage

    storage = open_storage(settings)
    runtime.resources["storage"] = storage
    runtime.health_checks["storage"] = storage.ping
    if settings.storage_backend != "local":
        # Playlists live in the bucket; the manifest routes read them from there.
        runtime.resources["media"] = StorageMediaStore(storage, settings.media_root)
    if settings.broker_url:
        await jobs.declare_transcode_queues(settings)  # before any upload can queue a job
    runner = sweeper = None
    if jobs.in_process_enabled(settings):
        runner = jobs.build_runner(db=runtime.db, storage=storage, settings=settings, bus=runtime.bus)
        await runner.start()
        # Whoever runs the jobs also expires abandoned uploads (the worker, in distributed mode).
        sweeper = jobs.UploadExpirySweeper(db=runtime.db, storage=storage, settings=settings)
        sweeper.start()
    try:
        yield
    finally:
        if sweeper is not None:
            await sweeper.stop()
        if runner is not None:
            await runner.stop()
