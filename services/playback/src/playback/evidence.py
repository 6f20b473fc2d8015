"""Playback's part of the evidence trail (billing asks) and of a learner's data export (auth asks):
sessions with their watermarks, who opened and ended them, and the access log of tokens and
manifests, each with the request (or event correlation id) that caused it."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from playback.assets.models import VideoAsset
from playback.models import AccessLog, PlaybackSession, WatchProgress

# Sessions in an export: one per play, so a heavy learner has thousands; the newest this many.
MAX_EXPORTED_SESSIONS = 20_000


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _session_detail(row: PlaybackSession) -> dict[str, Any]:
    return {"session_id": str(row.id), "lesson_id": str(row.lesson_id), "course_id": str(row.course_id),
            "asset_id": str(row.asset_id), "watermark": row.watermark, "is_preview": row.is_preview}


async def trail(*, db_session: AsyncSession, user_id: uuid.UUID, course_id: uuid.UUID | None,
                limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Sessions opened and ended, and access decisions (tokens, manifests), newest `limit` of each."""
    sessions = sa.select(PlaybackSession).where(PlaybackSession.user_id == user_id)
    decisions = sa.select(AccessLog, PlaybackSession.course_id).outerjoin(
        PlaybackSession, PlaybackSession.id == AccessLog.session_id).where(AccessLog.user_id == user_id)
    if course_id is not None:
        sessions = sessions.where(PlaybackSession.course_id == course_id)
        decisions = decisions.where(PlaybackSession.course_id == course_id)
    rows = list(await db_session.scalars(sessions.order_by(PlaybackSession.created_at.desc()).limit(limit + 1)))
    logged = (await db_session.execute(decisions.order_by(AccessLog.at.desc()).limit(limit + 1))).all()
    entries: list[dict[str, Any]] = []
    for row in rows[:limit]:
        entries.append({"at": _iso(row.created_at), "kind": "playback.session_started", "request_id": row.request_id,
                        "detail": _session_detail(row)})
        if row.ended_at is not None:
            entries.append({"at": _iso(row.ended_at), "kind": "playback.session_ended",
                            "request_id": row.ended_request_id,
                            "detail": {**_session_detail(row), "end_reason": row.end_reason}})
    for entry, session_course in logged[:limit]:
        entries.append({"at": _iso(entry.at), "kind": f"playback.{entry.action or 'access'}_{entry.decision}",
                        "request_id": entry.request_id,
                        "detail": {"session_id": str(entry.session_id) if entry.session_id else None,
                                   "lesson_id": str(entry.lesson_id), "course_id": str(session_course)
                                   if session_course else None, "reason": entry.reason}})
    return entries, len(rows) > limit or len(logged) > limit


async def export(*, db_session: AsyncSession, user_id: uuid.UUID) -> dict[str, Any]:
    """Watch progress, playback sessions (newest first, capped) and, for instructors, their uploads."""
    progress = await db_session.scalars(sa.select(WatchProgress).where(WatchProgress.user_id == user_id)
                                        .order_by(WatchProgress.updated_at))
    sessions = list(await db_session.scalars(
        sa.select(PlaybackSession).where(PlaybackSession.user_id == user_id)
        .order_by(PlaybackSession.created_at.desc()).limit(MAX_EXPORTED_SESSIONS + 1)))
    assets = await db_session.scalars(sa.select(VideoAsset).where(VideoAsset.owner_id == user_id)
                                      .order_by(VideoAsset.created_at))
    return {
        "watch_progress": [{
            "lesson_id": str(p.lesson_id), "course_id": str(p.course_id), "position_seconds": p.position_seconds,
            "watched_seconds": p.watched_seconds, "duration_seconds": p.duration_seconds,
            "updated_at": _iso(p.updated_at),
        } for p in progress],
        "playback_sessions": [{
            **_session_detail(s), "created_at": _iso(s.created_at), "ended_at": _iso(s.ended_at),
            "end_reason": s.end_reason, "last_position": s.last_position,
        } for s in sessions[:MAX_EXPORTED_SESSIONS]],
        "playback_sessions_truncated": len(sessions) > MAX_EXPORTED_SESSIONS,
        "uploaded_assets": [{
            "id": str(a.id), "title": a.title, "filename": a.filename, "content_type": a.content_type,
            "size_bytes": a.size_bytes, "status": a.status, "duration_seconds": a.duration_seconds,
            "created_at": _iso(a.created_at), "ready_at": _iso(a.ready_at), "deleted_at": _iso(a.deleted_at),
        } for a in assets],
    }
