"""Bodies of the asset routes; requests forbid unknown fields."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field

from common.bounds import INT64_MAX


class AssetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(min_length=3, max_length=100)
    size_bytes: int = Field(gt=0, le=INT64_MAX, description="exact size of the file the client will PUT")
    title: str | None = Field(default=None, max_length=200)


class UploadPart(BaseModel):
    part_number: int
    url: str
    size: int


class UploadInstructions(BaseModel):
    """Either PUT the whole file to `url` with `headers`, or (large files on S3) PUT each slice of
    `part_size` bytes to its part URL and keep each response's ETag; then POST `complete_url`
    (with `{"parts": [{"part_number", "etag"}]}` after a multipart upload)."""

    method: str = "PUT"
    url: str | None
    headers: dict[str, str]
    expires_at: dt.datetime
    complete_url: str
    part_size: int | None = None
    parts: list[UploadPart] | None = None


class CompletedPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    part_number: int = Field(ge=1, le=10000)
    etag: str = Field(min_length=1, max_length=200)


class UploadComplete(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parts: list[CompletedPart] | None = Field(default=None, max_length=10000)


class Rendition(BaseModel):
    name: str
    width: int
    height: int
    bandwidth: int


class AssetRead(BaseModel):
    asset_id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    filename: str
    content_type: str
    size_bytes: int
    status: str
    progress: int
    failure_reason: str | None
    duration_seconds: float | None
    renditions: list[Rendition]
    thumbnail_url: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    ready_at: dt.datetime | None


class AssetCreated(AssetRead):
    upload: UploadInstructions


class AssetList(BaseModel):
    items: list[AssetRead]
    total: int
    page: int
    page_size: int
