"""Playback's tables: the entitlements read model, playback sessions, the access and watermark audit
logs, and watch progress."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import UTCDateTime, request_id_column, utcnow

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
    # A token reads the user's sessions that events ended lately (they may still hold a stream slot)
    # by user, end reason and time: a few index entries, however many sessions the user replaced.
    __table_args__ = (sa.Index("ix_playback_sessions_user_ended", "user_id", "end_reason", "ended_at"),)

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
    # Set once: stopped, replaced (end_oldest), timed_out, enrollment_revoked, user_disabled, signed_out.
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    # Media length (from the asset's playlist) caps positions; the last heartbeat credits watch time.
    duration_seconds: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    last_position: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    last_heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The token request that opened the session, and the request or event that ended it.
    request_id: Mapped[str | None] = request_id_column()
    ended_request_id: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)


class AccessLog(Base):
    """Every playback decision (token or manifest), granted or refused, with its reason."""

    __tablename__ = "access_log"
    __table_args__ = (sa.Index("ix_access_log_user_at", "user_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    # NULL once the user is erased (auth.user.deleted.v1): the decision stays, the person does not.
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    lesson_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    asset_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    session_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    decision: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str] = mapped_column(sa.String(64))
    # token, manifest, heartbeat (NULL on rows written before the column existed).
    action: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    request_id: Mapped[str | None] = request_id_column()


class WatermarkIssued(Base):
    """Every watermark handed out: a leaked recording's mark leads back to session, asset and time.

    Outlives the session row; on erasure the user id is cleared (anonymised), the rest is kept.
    """

    __tablename__ = "watermarks_issued"

    session_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    watermark: Mapped[str] = mapped_column(sa.String(32), index=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True, index=True)
    asset_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    lesson_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    course_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_erased_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WatchProgress(Base):
    """Where a learner is in a lesson and how much of it they have watched (kept after refunds)."""

    __tablename__ = "watch_progress"
    __table_args__ = (sa.Index("ix_watch_progress_user_course", "user_id", "course_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    lesson_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    course_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    asset_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    # The resume point: the last position a heartbeat reported.
    position_seconds: Mapped[float] = mapped_column(sa.Float, default=0.0)
    # Forward progress credited at no more than real time x MAX_PLAYBACK_RATE, capped at the duration.
    watched_seconds: Mapped[float] = mapped_column(sa.Float, default=0.0)
    duration_seconds: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
