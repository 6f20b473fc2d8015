"""Asset routes (under /api/playback/assets): instructors and admins upload and manage videos."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status

from common.app import RuntimeDep, get_settings
from common.bounds import INT64_MAX, PageNumber, PageSize
from common.errors import NotFound
from common.security import Principal, require_roles
from playback.api.deps import ResourcesDep
from playback.assets import service
from playback.assets.schemas import AssetCreate, AssetCreated, AssetList, AssetRead, UploadComplete
from playback.assets.storage import Storage
from playback.settings import PlaybackSettings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/assets", tags=["assets"])

SettingsDep = Annotated[PlaybackSettings, Depends(get_settings)]
Author = Annotated[Principal, Depends(require_roles("instructor", "admin"))]


async def get_storage(resources: ResourcesDep) -> Storage:
    return resources.storage


StorageDep = Annotated[Storage, Depends(get_storage)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AssetCreated)
async def create_asset(body: AssetCreate, user: Author, runtime: RuntimeDep, settings: SettingsDep,
                       storage: StorageDep) -> AssetCreated:
    """A new asset in `uploading` and where to PUT the file (S3 presigned URL, or this service)."""
    async with runtime.db.transaction() as session:
        created = await service.create_asset(db_session=session, settings=settings, storage=storage,
                                             principal=user, body=body)
    read = service.to_read(settings, created.asset)
    return AssetCreated(**read.model_dump(), upload=created.upload)


@router.put("/{asset_id}/upload", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def upload(asset_id: uuid.UUID, request: Request, runtime: RuntimeDep, settings: SettingsDep,
                 storage: StorageDep, expires: Annotated[int, Query(ge=0, le=INT64_MAX)],
                 signature: Annotated[str, Query(max_length=64)],
                 content_type: Annotated[str | None, Header(max_length=255)] = None,
                 content_length: Annotated[int | None,
                                           Header(ge=0, le=INT64_MAX, include_in_schema=False)] = None) -> Response:
    """The local-disk stand-in for a presigned S3 PUT: the signed URL is the credential."""
    await service.receive_upload(db=runtime.db, settings=settings, storage=storage, asset_id=asset_id,
                                 expires=expires, signature=signature, content_type=content_type,
                                 content_length=content_length, body=request.stream())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{asset_id}/complete", status_code=status.HTTP_202_ACCEPTED, response_model=AssetRead)
async def complete(asset_id: uuid.UUID, user: Author, runtime: RuntimeDep, settings: SettingsDep,
                   storage: StorageDep, body: UploadComplete | None = None) -> AssetRead:
    """The upload is done: transcoding is queued (`processing`). Repeating the call is harmless.

    After a multipart upload the body lists the parts' ETags; a single PUT needs no body.
    """
    async with runtime.db.transaction() as session:
        asset = await service.complete_upload(db_session=session, settings=settings, storage=storage,
                                              principal=user, asset_id=asset_id,
                                              parts=body.parts if body else None)
    return service.to_read(settings, asset)


@router.get("", response_model=AssetList)
async def list_assets(user: Author, runtime: RuntimeDep, settings: SettingsDep,
                      page: PageNumber = 1,
                      page_size: PageSize = 20) -> AssetList:
    """The caller's own assets, newest first."""
    async with runtime.db.session() as session:
        rows, total = await service.list_assets(db_session=session, principal=user, page=page,
                                                page_size=page_size)
    return AssetList(items=[service.to_read(settings, a) for a in rows], total=total, page=page,
                     page_size=page_size)


@router.get("/{asset_id}", response_model=AssetRead)
async def get_asset(asset_id: uuid.UUID, user: Author, runtime: RuntimeDep, settings: SettingsDep) -> AssetRead:
    """Status, progress (0-100 while processing), failure reason, duration and renditions."""
    async with runtime.db.session() as session:
        asset = await service.load_for(db_session=session, asset_id=asset_id, principal=user)
    return service.to_read(settings, asset)


@router.get("/{asset_id}/thumbnail.jpg", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "JPEG thumbnail"}})
async def thumbnail(asset_id: uuid.UUID, user: Author, runtime: RuntimeDep, storage: StorageDep) -> Response:
    async with runtime.db.session() as session:
        asset = await service.load_for(db_session=session, asset_id=asset_id, principal=user)
    data = await storage.read_bytes(f"{asset.id}/thumbnail.jpg") if asset.has_thumbnail else None
    if data is None:
        raise NotFound("no thumbnail for this asset", code="thumbnail_not_found")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


@router.delete("/{asset_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_asset(asset_id: uuid.UUID, user: Author, runtime: RuntimeDep, storage: StorageDep) -> Response:
    """Removes the asset's files; catalog hears `playback.asset.deleted.v1`. Repeating it is harmless."""
    async with runtime.db.transaction() as session:
        asset = await service.delete_asset(db_session=session, principal=user, asset_id=asset_id)
    await service.purge_storage(storage, asset_id, asset.upload_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
