"""Listing an owner's assets and deleting one (the storage purge follows the commit)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import utcnow
from common.events.outbox import add_event
from common.observability.metrics import count
from common.security import Principal
from contracts.events import AssetDeleted
from playback.assets.models import (
    DELETED,
    VISIBLE_STATUSES,
    VideoAsset,
)
from playback.assets.storage import Storage

from .keys import ADMIN, _user_id, asset_prefix, forensic_reference_key, load_for, upload_key


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
