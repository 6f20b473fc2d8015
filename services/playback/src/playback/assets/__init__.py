"""Video ingestion: direct uploads, HLS transcoding (ffmpeg) and the asset lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from common.runtime import Runtime
from playback.settings import PlaybackSettings

if TYPE_CHECKING:
    from playback.assets.storage import Storage


@asynccontextmanager
async def open_ingestion(runtime: Runtime, settings: PlaybackSettings, storage: Storage) -> AsyncIterator[None]:
    """Embedded, the in-process transcoder and the upload expiry (the API's lifespan); distributed,
    the job queues the uploads feed."""
    from playback.assets import jobs

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
