"""Creating an asset, receiving and completing its upload, and expiring abandoned uploads."""

from __future__ import annotations

import datetime as dt
import math
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
from common.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from common.events.outbox import add_event
from common.observability.metrics import count
from common.security import Principal
from contracts.events import TranscodeRequested
from playback.assets.models import (
    DELETED,
    FAILED,
    PROCESSING,
    UPLOADING,
    VideoAsset,
)
from playback.assets.schemas import (
    AssetCreate,
    CompletedPart,
    UploadInstructions,
    UploadPart,
)
from playback.assets.storage import Storage
from playback.settings import PlaybackSettings

from .keys import (
    MAX_PARTS,
    _api_url,
    _user_id,
    allowed_content_types,
    check_upload_signature,
    load_for,
    upload_key,
    upload_signature,
)
from .transcode import _fail


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
