"""The video asset table: one row per upload, from `uploading` to `ready` / `failed` (or deleted).

It shares playback's DeclarativeBase so one Alembic history (and `run_env`) sees every table.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from common.db import JSONType, UTCDateTime, utcnow
from playback.models import Base

UPLOADING = "uploading"
PROCESSING = "processing"
READY = "ready"
FAILED = "failed"
# A tombstone: the row stays so a job still running for it cleans up after itself.
DELETED = "deleted"
VISIBLE_STATUSES = (UPLOADING, PROCESSING, READY, FAILED)


class VideoAsset(Base):
    __tablename__ = "video_assets"
    __table_args__ = (sa.Index("ix_video_assets_owner_created", "owner_id", "created_at"),
                      sa.Index("ix_video_assets_status", "status"))

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    title: Mapped[str] = mapped_column(sa.String(200))
    filename: Mapped[str] = mapped_column(sa.String(255))
    content_type: Mapped[str] = mapped_column(sa.String(100))
    # Declared at creation; the presigned PUT signs it and completion checks the stored object.
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    # S3 multipart upload id while a large upload is in progress (None: one PUT).
    upload_id: Mapped[str | None] = mapped_column(sa.String(1024), nullable=True)
    status: Mapped[str] = mapped_column(sa.String(16), default=UPLOADING)
    progress: Mapped[int] = mapped_column(sa.SmallInteger, default=0)
    # Transcode attempts started (incremented before ffmpeg runs, so a crash still counts).
    attempts: Mapped[int] = mapped_column(sa.SmallInteger, default=0)
    failure_reason: Mapped[str | None] = mapped_column(sa.String(500), nullable=True)
    duration_seconds: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    # [{"name": "360p", "width": 640, "height": 360, "bandwidth": 1000000}, ...]
    renditions: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    has_thumbnail: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    uploaded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ready_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
