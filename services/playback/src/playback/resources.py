"""What playback opens besides the shared runtime, typed: read by routes through `ResourcesDep`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from common.app import OpenResources
from common.cache import Cache, MemoryCache
from common.runtime import Runtime
from playback import signing
from playback.access_records import AccessRecorder
from playback.assets import open_ingestion
from playback.assets.storage import Storage, StorageMediaStore, open_storage
from playback.cdn import MediaSigner, open_media_signer
from playback.media import LocalMediaStore
from playback.settings import PlaybackSettings
from playback.streams import StreamRegistry, open_stream_registry


@dataclass(frozen=True)
class PlaybackResources:
    token_key: signing.TokenKey
    media: LocalMediaStore  # playlists: the local media root, or the bucket (StorageMediaStore)
    media_signer: MediaSigner  # Nginx secure_link or CloudFront
    streams: StreamRegistry  # concurrent streams per learner
    access_records: AccessRecorder  # manifest grants, written in batches
    storage: Storage  # uploads and transcode outputs
    # Catalog's lessons for the token path, kept in this process for `lesson_cache_seconds` (the
    # same bound as the shared cache gave): no Redis round trip per token.
    lessons: Cache = field(default_factory=MemoryCache)


@dataclass(frozen=True)
class WorkerResources:
    storage: Storage


def open_resources(settings: PlaybackSettings) -> OpenResources:
    """The token key, media, URL signer, stream registry, the batched access log, and video
    ingestion (storage; embedded, the in-process transcoder too)."""

    @asynccontextmanager
    async def open_playback(runtime: Runtime) -> AsyncIterator[PlaybackResources]:
        local_media = LocalMediaStore(settings.media_root)
        runtime.health_checks["media"] = local_media.ping
        storage = open_storage(settings)
        runtime.health_checks["storage"] = storage.ping
        # With object storage the playlists live in the bucket; the manifest routes read them there.
        media = local_media if settings.storage_backend == "local" else StorageMediaStore(storage, settings.media_root)
        recorder = AccessRecorder(runtime.db, flush_seconds=settings.access_log_flush_seconds)
        resources = PlaybackResources(token_key=await signing.open_token_key(settings), media=media,
                                      media_signer=await open_media_signer(settings),
                                      streams=open_stream_registry(runtime.cache), access_records=recorder,
                                      storage=storage)
        recorder.start()
        try:
            async with open_ingestion(runtime, settings, storage):
                yield resources
        finally:
            await recorder.stop()

    return open_playback
