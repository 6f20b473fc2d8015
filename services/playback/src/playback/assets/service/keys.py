"""An asset's storage keys, the local upload signatures (the embedded stand-in for an S3
presigned PUT) and its API view: shared by every asset use case."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Forbidden, NotFound
from common.security import Principal, constant_time_equals
from playback.assets.models import (
    DELETED,
    FAILED,
    VideoAsset,
)
from playback.assets.schemas import (
    AssetRead,
    Rendition,
)
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




def upload_signature(secret: str, asset_id: uuid.UUID, expires: int) -> str:
    digest = hmac.new(secret.encode(), f"playback-upload:{asset_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def check_upload_signature(secret: str, asset_id: uuid.UUID, expires: int, signature: str) -> None:
    if not constant_time_equals(upload_signature(secret, asset_id, expires), signature):
        raise Forbidden("invalid upload signature", code="bad_signature")
    if expires < time.time():
        raise Forbidden("the upload URL has expired", code="upload_url_expired")




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
