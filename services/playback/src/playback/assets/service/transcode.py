"""The transcode job: one attempt at a time per asset, progress written as it goes, outputs
stored, then ready or failed for good."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import Database, utcnow
from common.events.outbox import add_event
from common.observability.metrics import count
from contracts.events import AssetFailed, AssetReady
from playback import forensic
from playback.assets import transcoder
from playback.assets.models import (
    FAILED,
    PROCESSING,
    READY,
    VideoAsset,
)
from playback.assets.storage import Storage
from playback.settings import PlaybackSettings

from .keys import OUTPUT_CONTENT_TYPES, asset_prefix, forensic_reference_key, upload_key
from .listing import purge_storage

log = logging.getLogger(__name__)


SCRATCH_PREFIX = "transcode-"


async def _fail(session: AsyncSession, asset: VideoAsset, reason: str) -> None:
    now = utcnow()
    asset.status, asset.failure_reason, asset.updated_at = FAILED, reason[:500], now
    await add_event(session, AssetFailed(
        asset_id=asset.id, owner_id=asset.owner_id, reason=asset.failure_reason, failed_at=now))
    count("playback", "assets_failed")
    log.warning("asset failed", extra={"asset_id": str(asset.id), "reason": asset.failure_reason})


GAVE_UP = "gave_up"


async def _begin_attempt(db: Database, asset_id: uuid.UUID, max_attempts: int) -> int | str | None:
    """Count this attempt before any work (a crash still counts); None when there is nothing to do,
    GAVE_UP when the attempts ran out (the asset is now `failed`)."""
    async with db.transaction() as session:
        asset = await session.get(VideoAsset, asset_id, with_for_update=True)
        if asset is None or asset.status != PROCESSING:
            return None
        if asset.attempts >= max_attempts:
            last = f": {asset.failure_reason}" if asset.failure_reason else ""
            await _fail(session, asset, f"transcoding gave up after {asset.attempts} attempts{last}")
            return GAVE_UP
        asset.attempts += 1
        asset.progress, asset.updated_at = 0, utcnow()
        return asset.attempts


async def _fail_for_good(db: Database, storage: Storage, asset_id: uuid.UUID, reason: str) -> None:
    async with db.transaction() as session:
        asset = await session.get(VideoAsset, asset_id, with_for_update=True)
        if asset is not None and asset.status == PROCESSING:
            await _fail(session, asset, reason)
    await _drop_source(storage, asset_id)


async def _drop_source(storage: Storage, asset_id: uuid.UUID) -> None:
    """A failed or ready asset never reads its upload again (a new attempt means a new asset)."""
    try:
        await storage.delete(upload_key(asset_id))
    except Exception:
        log.warning("could not remove the source upload", extra={"asset_id": str(asset_id)}, exc_info=True)


async def _release_attempt(db: Database, asset_id: uuid.UUID) -> None:
    async with db.transaction() as session:
        await session.execute(sa.update(VideoAsset).where(VideoAsset.id == asset_id, VideoAsset.status == PROCESSING,
                                                          VideoAsset.attempts > 0)
                              .values(attempts=VideoAsset.attempts - 1, progress=0, updated_at=utcnow()))


async def _note_error(db: Database, asset_id: uuid.UUID, error: str) -> None:
    """Keep the latest transient error: it becomes the reason if the attempts run out."""
    async with db.transaction() as session:
        await session.execute(sa.update(VideoAsset).where(VideoAsset.id == asset_id,
                                                          VideoAsset.status == PROCESSING)
                              .values(failure_reason=error[:500], updated_at=utcnow()))


def _progress_writer(db: Database, asset_id: uuid.UUID) -> transcoder.ProgressCallback:
    """Progress into the asset row (what the API shows) and, every 10 %, into the log (what an
    operator tailing the worker sees during a long encode)."""
    last = {"at": 0.0, "percent": 0, "logged": 0}
    started = time.monotonic()

    async def write(percent: int) -> None:
        now = time.monotonic()
        if percent // 10 > last["logged"] // 10:
            last["logged"] = percent
            log.info("transcoding progress %d%%", percent,
                     extra={"asset_id": str(asset_id), "percent": percent, "elapsed_seconds": round(now - started)})
        if now - last["at"] < 1.0 and percent - last["percent"] < 10:
            return
        last["at"], last["percent"] = now, percent
        async with db.transaction() as session:
            await session.execute(sa.update(VideoAsset).where(VideoAsset.id == asset_id,
                                                              VideoAsset.status == PROCESSING)
                                  .values(progress=percent, updated_at=utcnow()))

    return write


async def _store_outputs(storage: Storage, asset_id: uuid.UUID, out: Path) -> None:
    """Replace whatever an earlier, interrupted attempt left; the master playlist goes last."""
    await storage.delete_prefix(asset_prefix(asset_id))
    found = await asyncio.to_thread(lambda: [p for p in out.rglob("*") if p.is_file()])
    files = sorted(found, key=lambda p: p.name == "master.m3u8")
    for path in files:
        key = f"{asset_id}/{path.relative_to(out).as_posix()}"
        await storage.put_file(key, path, OUTPUT_CONTENT_TYPES.get(path.suffix, "application/octet-stream"))


def _variant_namer(settings: PlaybackSettings, asset_id: uuid.UUID) -> transcoder.VariantNamer | None:
    """A/B segment variants named with the forensic key, unless watermarking is off."""
    if not settings.forensic_watermark:
        return None
    key = forensic.names_key(settings.secure_link_secret.get_secret_value())
    return lambda rendition, name, variant: forensic.variant_file(key, str(asset_id), rendition, name, variant)


async def _mark_ready(db: Database, asset_id: uuid.UUID, result: transcoder.TranscodeResult) -> bool:
    """processing -> ready with its event, in one transaction; False if the asset went away meanwhile."""
    async with db.transaction() as session:
        asset = await session.get(VideoAsset, asset_id, with_for_update=True)
        if asset is None or asset.status != PROCESSING:
            return asset is not None and asset.status == READY
        now = utcnow()
        asset.status, asset.progress, asset.failure_reason = READY, 100, None
        asset.duration_seconds = result.duration
        asset.renditions = [r.as_dict() for r in result.renditions]
        asset.has_thumbnail = result.thumbnail
        asset.ready_at = asset.updated_at = now
        await add_event(session, AssetReady(
            asset_id=asset.id, owner_id=asset.owner_id,
            # Whole seconds on the wire (catalog's lesson durations are integers).
            duration_seconds=max(1, round(result.duration)), ready_at=now))
    count("playback", "assets_ready")
    return True


async def run_transcode(*, db: Database, storage: Storage, settings: PlaybackSettings,
                        asset_id: uuid.UUID) -> str:
    """One delivery of a transcode job; safe to run again for the same asset (redelivery).

    Returns what happened ("skipped", "ready", "failed", "deleted"). Raises on a transient error
    (storage, ffmpeg crash, timeout) after recording it; the queue then retries the job, and
    `transcode_max_attempts` bounds that.
    """
    attempt = await _begin_attempt(db, asset_id, settings.transcode_max_attempts)
    if attempt == GAVE_UP:
        await _drop_source(storage, asset_id)
        return "failed"
    if not isinstance(attempt, int):
        return "skipped"
    log.info("transcode started", extra={"asset_id": str(asset_id), "attempt": attempt})
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=settings.transcode_work_dir))
    try:
        source, out = work / "source", work / "out"
        out.mkdir()
        if not await storage.download(upload_key(asset_id), source):
            await _fail_for_good(db, storage, asset_id, "the uploaded file is missing")
            return "failed"
        try:
            result = await transcoder.transcode(
                source, out, segment_seconds=settings.transcode_segment_seconds,
                preset=settings.transcode_preset, limit_seconds=settings.transcode_timeout_seconds,
                on_progress=_progress_writer(db, asset_id), variant_namer=_variant_namer(settings, asset_id))
        except transcoder.NotAVideo as exc:
            await _fail_for_good(db, storage, asset_id, str(exc))
            return "failed"
        await _store_outputs(storage, asset_id, out)
        if result.forensic_reference is not None:
            reference = work / "forensic.npz"
            await asyncio.to_thread(reference.write_bytes, result.forensic_reference)
            await storage.put_file(forensic_reference_key(asset_id), reference, "application/octet-stream")
        if not await _mark_ready(db, asset_id, result):
            await purge_storage(storage, asset_id)  # deleted while we worked: leave nothing behind
            return "deleted"
        await _drop_source(storage, asset_id)
        log.info("transcode finished", extra={"asset_id": str(asset_id), "attempt": attempt,
                                              "seconds": round(time.monotonic() - started, 2),
                                              "duration": result.duration})
        return "ready"
    except asyncio.CancelledError:
        # This process is stopping, not crashing: the interrupted attempt is not held against the asset.
        with contextlib.suppress(Exception):
            await asyncio.shield(_release_attempt(db, asset_id))
        raise
    except Exception as exc:
        await _note_error(db, asset_id, f"attempt {attempt}: {type(exc).__name__}: {exc}")
        raise
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


def clear_scratch(work_dir: Path | None) -> int:
    """Remove what a killed worker left in its own work dir (an emptyDir survives a container
    restart); only for a dedicated PLAYBACK_TRANSCODE_WORK_DIR, never the shared system tmp."""
    if work_dir is None or not work_dir.is_dir():
        return 0
    stale = [p for p in work_dir.iterdir() if p.is_dir() and p.name.startswith(SCRATCH_PREFIX)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


async def assets_needing_work(db: Database) -> list[uuid.UUID]:
    """Assets whose job may have been lost (embedded restart): every one still `processing`."""
    async with db.session() as session:
        rows = await session.scalars(sa.select(VideoAsset.id).where(VideoAsset.status == PROCESSING)
                                     .order_by(VideoAsset.uploaded_at))
        return list(rows)
