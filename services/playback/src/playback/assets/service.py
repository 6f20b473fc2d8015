"""Asset use cases: create + presigned upload, completion, reads, delete, and the transcode job.

Lifecycle: uploading -> processing -> ready | failed (deleted is a tombstone). Every state change
that others care about commits together with its outbox event; the job message itself travels
through the outbox too (`playback.transcode.requested.v1`), so completing an upload and queueing
its transcode are one atomic step.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import math
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path

import aiofiles
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import Database, utcnow
from common.errors import Conflict, Forbidden, NotFound, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from common.events.outbox import add_event
from common.observability.metrics import count
from common.security import Principal, constant_time_equals
from contracts.events import AssetDeleted, AssetFailed, AssetReady, TranscodeRequested
from playback import forensic
from playback.assets import transcoder
from playback.assets.models import (
    DELETED,
    FAILED,
    PROCESSING,
    READY,
    UPLOADING,
    VISIBLE_STATUSES,
    VideoAsset,
)
from playback.assets.schemas import (
    AssetCreate,
    AssetRead,
    CompletedPart,
    Rendition,
    UploadInstructions,
    UploadPart,
)
from playback.assets.storage import Storage
from playback.settings import PlaybackSettings

log = logging.getLogger(__name__)

ADMIN = "admin"
MAX_PARTS = 10_000  # S3's limit per multipart upload
OUTPUT_CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t", ".jpg": "image/jpeg"}


def upload_key(asset_id: uuid.UUID) -> str:
    """The raw upload lives outside the served prefix: a viewer's signed link never reaches it."""
    return f"uploads/{asset_id}"


def forensic_reference_key(asset_id: uuid.UUID) -> str:
    """The A/B detector's reference: outside the served prefix too (it tells the variants apart)."""
    return f"forensics/{asset_id}.npz"


def asset_prefix(asset_id: uuid.UUID) -> str:
    return f"{asset_id}/"


def allowed_content_types(settings: PlaybackSettings) -> set[str]:
    return {t.strip().lower() for t in settings.upload_content_types.split(",") if t.strip()}


def _api_url(settings: PlaybackSettings, path: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/api/playback{path}"


# --- local upload signatures (the embedded stand-in for an S3 presigned PUT) ------------------


def upload_signature(secret: str, asset_id: uuid.UUID, expires: int) -> str:
    digest = hmac.new(secret.encode(), f"playback-upload:{asset_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def check_upload_signature(secret: str, asset_id: uuid.UUID, expires: int, signature: str) -> None:
    if not constant_time_equals(upload_signature(secret, asset_id, expires), signature):
        raise Forbidden("invalid upload signature", code="bad_signature")
    if expires < time.time():
        raise Forbidden("the upload URL has expired", code="upload_url_expired")


# --- views -----------------------------------------------------------------------------------


def to_read(settings: PlaybackSettings, asset: VideoAsset) -> AssetRead:
    return AssetRead(
        asset_id=asset.id, owner_id=asset.owner_id, title=asset.title, filename=asset.filename,
        content_type=asset.content_type, size_bytes=asset.size_bytes, status=asset.status,
        progress=asset.progress, failure_reason=asset.failure_reason if asset.status == FAILED else None,
        duration_seconds=asset.duration_seconds,
        renditions=[Rendition.model_validate(r) for r in asset.renditions or []],
        thumbnail_url=_api_url(settings, f"/assets/{asset.id}/thumbnail.jpg") if asset.has_thumbnail else None,
        created_at=asset.created_at, updated_at=asset.updated_at, ready_at=asset.ready_at)


def _user_id(principal: Principal) -> uuid.UUID:
    try:
        return uuid.UUID(principal.subject)
    except ValueError as exc:
        raise Forbidden("a user token is required") from exc


async def load_for(*, db_session: AsyncSession, asset_id: uuid.UUID, principal: Principal,
                   for_update: bool = False) -> VideoAsset:
    """The asset if the caller owns it (or is an admin); 404 otherwise, so ids are not probeable."""
    asset = await db_session.get(VideoAsset, asset_id, with_for_update=for_update)
    if asset is None or asset.status == DELETED or (
            asset.owner_id != _user_id(principal) and not principal.has_any_role(ADMIN)):
        raise NotFound("asset not found", code="asset_not_found")
    return asset


# --- create, upload, complete ----------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    asset: VideoAsset
    upload: UploadInstructions


async def create_asset(*, db_session: AsyncSession, settings: PlaybackSettings, storage: Storage,
                       principal: Principal, body: AssetCreate) -> Created:
    content_type = body.content_type.split(";")[0].strip().lower()
    if content_type not in allowed_content_types(settings):
        raise UnsupportedMediaType(f"uploads must be one of: {', '.join(sorted(allowed_content_types(settings)))}",
                                   code="unsupported_content_type")
    if body.size_bytes > settings.upload_max_bytes:
        raise PayloadTooLarge(f"uploads are limited to {settings.upload_max_bytes} bytes",
                              code="upload_too_large", max_bytes=settings.upload_max_bytes)
    now = utcnow()
    asset = VideoAsset(id=uuid.uuid4(), owner_id=_user_id(principal), title=body.title or body.filename,
                       filename=body.filename, content_type=content_type, size_bytes=body.size_bytes,
                       status=UPLOADING, progress=0, attempts=0, has_thumbnail=False, created_at=now,
                       updated_at=now)
    db_session.add(asset)
    ttl = settings.upload_url_ttl_seconds
    expires = math.floor(time.time()) + ttl
    instructions = {"headers": {"Content-Type": content_type}, "complete_url": _api_url(
        settings, f"/assets/{asset.id}/complete"), "expires_at": dt.datetime.fromtimestamp(expires, dt.UTC)}
    key = upload_key(asset.id)
    if body.size_bytes > settings.upload_multipart_threshold_bytes:
        asset.upload_id = await storage.start_multipart(key, content_type=content_type)
    if asset.upload_id is not None:
        part = settings.upload_part_bytes
        if math.ceil(body.size_bytes / part) > MAX_PARTS:
            raise PayloadTooLarge(f"at most {MAX_PARTS} parts of {part} bytes", code="upload_too_large")
        parts: list[UploadPart] = []
        for number, offset in enumerate(range(0, body.size_bytes, part), start=1):
            size = min(part, body.size_bytes - offset)
            url = await storage.presign_part(key, upload_id=asset.upload_id, part_number=number, size=size,
                                             expires_in=ttl)
            parts.append(UploadPart(part_number=number, url=url, size=size))
        upload = UploadInstructions(url=None, part_size=part, parts=parts, **instructions)
    else:
        single = await storage.presign_put(key, content_type=content_type, size=body.size_bytes, expires_in=ttl)
        if single is None:
            signature = upload_signature(settings.secure_link_secret.get_secret_value(), asset.id, expires)
            single = _api_url(settings, f"/assets/{asset.id}/upload?expires={expires}&signature={signature}")
        upload = UploadInstructions(url=single, **instructions)
    count("playback", "assets_created")
    return Created(asset, upload)


async def receive_upload(*, db: Database, settings: PlaybackSettings, storage: Storage, asset_id: uuid.UUID,
                         expires: int, signature: str, content_type: str | None,
                         content_length: int | None, body: AsyncIterable[bytes]) -> None:
    """The local PUT target: same rules as the presigned S3 PUT (signed, declared type and size)."""
    check_upload_signature(settings.secure_link_secret.get_secret_value(), asset_id, expires, signature)
    async with db.session() as session:
        asset = await session.get(VideoAsset, asset_id)
    if asset is None or asset.status == DELETED:
        raise NotFound("asset not found", code="asset_not_found")
    if asset.status != UPLOADING:
        raise Conflict("this asset is no longer accepting an upload", code="upload_closed")
    if (content_type or "").split(";")[0].strip().lower() != asset.content_type:
        raise UnsupportedMediaType(f"Content-Type must be {asset.content_type}, as declared",
                                   code="content_type_mismatch")
    limit = min(asset.size_bytes, settings.upload_max_bytes)
    if content_length is not None and content_length > limit:
        raise PayloadTooLarge(f"this upload was declared as {asset.size_bytes} bytes", code="upload_too_large")
    with tempfile.TemporaryDirectory(dir=settings.transcode_work_dir) as tmp:
        path = Path(tmp) / "upload"
        received = 0
        async with aiofiles.open(path, "wb") as handle:
            async for chunk in body:
                received += len(chunk)
                if received > limit:
                    raise PayloadTooLarge(f"this upload was declared as {asset.size_bytes} bytes",
                                          code="upload_too_large")
                await handle.write(chunk)
        await storage.put_file(upload_key(asset_id), path, asset.content_type)
    async with db.session() as session:
        status = await session.scalar(sa.select(VideoAsset.status).where(VideoAsset.id == asset_id))
    if status in (None, FAILED, DELETED):
        # Expired or deleted while the body streamed in: leave no orphan object behind.
        await storage.delete(upload_key(asset_id))
        raise Conflict("this asset is no longer accepting an upload", code="upload_closed")


async def _assemble_parts(storage: Storage, asset: VideoAsset, parts: list[CompletedPart] | None) -> None:
    assert asset.upload_id is not None
    if not parts:
        raise Unprocessable("a multipart upload completes with its parts' ETags", code="parts_required")
    numbers = [p.part_number for p in parts]
    if numbers != list(range(1, len(parts) + 1)):
        raise Unprocessable("parts must be numbered 1..n, in order", code="bad_parts")
    try:
        await storage.complete_multipart(upload_key(asset.id), upload_id=asset.upload_id,
                                         parts=[(p.part_number, p.etag) for p in parts])
    except FileNotFoundError:
        pass  # completed by an earlier call whose transaction did not commit: the object is there
    except ValueError as exc:
        raise Unprocessable(str(exc), code="bad_parts") from exc
    asset.upload_id = None


async def complete_upload(*, db_session: AsyncSession, settings: PlaybackSettings, storage: Storage,
                          principal: Principal, asset_id: uuid.UUID,
                          parts: list[CompletedPart] | None = None) -> VideoAsset:
    """uploading -> processing and queue the transcode (idempotent: later calls return the asset)."""
    asset = await load_for(db_session=db_session, asset_id=asset_id, principal=principal, for_update=True)
    if asset.status != UPLOADING:
        return asset
    if asset.upload_id is not None:
        await _assemble_parts(storage, asset, parts)
    found = await storage.stat(upload_key(asset.id))
    if found is None:
        raise Conflict("no upload was received for this asset", code="upload_missing")
    size, stored_type = found
    if size > settings.upload_max_bytes or size != asset.size_bytes:
        await storage.delete(upload_key(asset.id))
        error = PayloadTooLarge if size > asset.size_bytes else Unprocessable
        raise error(f"received {size} bytes, declared {asset.size_bytes}; upload the file again",
                    code="upload_size_mismatch")
    if stored_type is not None and stored_type.split(";")[0].strip().lower() != asset.content_type:
        await storage.delete(upload_key(asset.id))
        raise UnsupportedMediaType(f"the upload's Content-Type is not {asset.content_type}",
                                   code="content_type_mismatch")
    now = utcnow()
    asset.status, asset.uploaded_at, asset.updated_at = PROCESSING, now, now
    await add_event(db_session, TranscodeRequested(asset_id=asset.id))
    return asset


# --- reads and delete ------------------------------------------------------------------------


async def list_assets(*, db_session: AsyncSession, principal: Principal, page: int,
                      page_size: int) -> tuple[list[VideoAsset], int]:
    """The caller's own assets, newest first."""
    where = sa.and_(VideoAsset.owner_id == _user_id(principal), VideoAsset.status.in_(VISIBLE_STATUSES))
    total = await db_session.scalar(sa.select(sa.func.count()).select_from(VideoAsset).where(where))
    rows = await db_session.scalars(sa.select(VideoAsset).where(where)
                                    .order_by(VideoAsset.created_at.desc(), VideoAsset.id)
                                    .offset((page - 1) * page_size).limit(page_size))
    return list(rows), int(total or 0)


async def delete_asset(*, db_session: AsyncSession, principal: Principal, asset_id: uuid.UUID) -> VideoAsset:
    """Tombstone + `playback.asset.deleted.v1`; the caller purges storage after the commit.

    Deleting a deleted asset again only repeats the purge (no second event).
    """
    asset = await db_session.get(VideoAsset, asset_id, with_for_update=True)
    if asset is not None and asset.status == DELETED and (
            asset.owner_id == _user_id(principal) or principal.has_any_role(ADMIN)):
        return asset
    asset = await load_for(db_session=db_session, asset_id=asset_id, principal=principal, for_update=True)
    now = utcnow()
    asset.status, asset.deleted_at, asset.updated_at = DELETED, now, now
    await add_event(db_session, AssetDeleted(asset_id=asset.id, deleted_at=now))
    count("playback", "assets_deleted")
    return asset


async def purge_storage(storage: Storage, asset_id: uuid.UUID, upload_id: str | None = None) -> None:
    """Every object of the asset: renditions, thumbnail, the source and an unfinished multipart upload."""
    await storage.delete_prefix(asset_prefix(asset_id))
    await storage.delete(upload_key(asset_id))
    await storage.delete(forensic_reference_key(asset_id))
    if upload_id is not None:
        await storage.abort_multipart(upload_key(asset_id), upload_id=upload_id)


# --- abandoned uploads -----------------------------------------------------------------------

UPLOAD_EXPIRED = "upload_expired"
EXPIRY_BATCH = 100


async def expire_uploads(*, db: Database, storage: Storage, settings: PlaybackSettings,
                         now: dt.datetime | None = None) -> int:
    """Fail every asset still `uploading` `upload_expiry_seconds` after its creation (reason
    `upload_expired`), removing its partial upload and aborting an open S3 multipart upload.

    Each asset is handled in its own transaction that holds the row lock while storage is purged,
    then commits `failed` with its event: a crash in between rolls back and the next sweep redoes
    the (idempotent) purge, and a concurrent `complete` waits and then sees `failed`. SKIP LOCKED
    lets several workers sweep at once. Returns how many assets expired.
    """
    cutoff = (now or utcnow()) - dt.timedelta(seconds=settings.upload_expiry_seconds)
    async with db.session() as session:
        candidates = list(await session.scalars(
            sa.select(VideoAsset.id).where(VideoAsset.status == UPLOADING, VideoAsset.created_at < cutoff)
            .order_by(VideoAsset.created_at).limit(EXPIRY_BATCH)))
    expired = 0
    for asset_id in candidates:
        async with db.transaction() as session:
            asset = await session.get(VideoAsset, asset_id, with_for_update={"skip_locked": True},
                                      populate_existing=True)
            if asset is None or asset.status != UPLOADING or asset.created_at >= cutoff:
                continue  # completed, deleted or being handled by another sweeper meanwhile
            await storage.delete(upload_key(asset.id))
            if asset.upload_id is not None:
                await storage.abort_multipart(upload_key(asset.id), upload_id=asset.upload_id)
                asset.upload_id = None
            await _fail(session, asset, UPLOAD_EXPIRED)
        expired += 1
    if expired:
        count("playback", "uploads_expired", expired)
    return expired


# --- the transcode job -----------------------------------------------------------------------

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
    """Issue 19: A/B segment variants named with the forensic key, unless watermarking is off."""
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
