"""Playback's tables: the entitlements read model, playback sessions and the access log."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import UTCDateTime, utcnow

GRANTED = "granted"
REFUSED = "refused"


class Base(DeclarativeBase):
    pass


class Entitlement(Base):
    """Catalog's enrollment state as last seen through events; `version` orders the changes."""

    __tablename__ = "entitlements"

    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    course_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    active: Mapped[bool] = mapped_column(sa.Boolean)
    version: Mapped[int] = mapped_column(sa.Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PlaybackSession(Base):
    """One per issued playback token: binds user, lesson and asset to a watermark."""

    __tablename__ = "playback_sessions"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    lesson_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    course_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    asset_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    # A preview session skips the entitlement re-check at manifest time.
    is_preview: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # Forensic watermark payload: maps a leaked stream back to this row, never reveals the email.
    watermark: Mapped[str] = mapped_column(sa.String(32), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class AccessLog(Base):
    """Every playback decision (token or manifest), granted or refused, with its reason."""

    __tablename__ = "access_log"
    __table_args__ = (sa.Index("ix_access_log_user_at", "user_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    lesson_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    asset_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    session_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    decision: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str] = mapped_column(sa.String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
