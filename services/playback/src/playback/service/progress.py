"""Watch progress: credited at most at twice real time, completion at 90 %, announced once per lesson."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from cachetools import TTLCache
from sqlalchemy.ext.asyncio import AsyncSession

from common.cache import Cache
from common.db import Database
from contracts.peers import CourseLessons
from playback import hls
from playback.media import LocalMediaStore
from playback.models import (
    WatchProgress,
    WatermarkIssued,
)
from playback.schemas import CourseProgress, LessonProgress

from .outcomes import ASSET_DURATION_CACHE_SECONDS, COMPLETION_SHARE
from .playlists import TEMPLATE_CACHE_ENTRIES

log = logging.getLogger(__name__)


# (media root, asset) -> duration: a packaged asset's length never changes, so each process keeps
# it too and a token costs no cache round trip for it.
_DURATIONS: TTLCache[tuple[str, uuid.UUID], float] = TTLCache(maxsize=TEMPLATE_CACHE_ENTRIES,
                                                              ttl=ASSET_DURATION_CACHE_SECONDS)


async def asset_duration(*, store: LocalMediaStore, cache: Cache, asset_id: uuid.UUID) -> float | None:
    """The media length of an asset (its first rendition's EXTINF sum), cached; None while unreadable."""
    local_key = (str(store.root), asset_id)
    hit = _DURATIONS.get(local_key)
    if hit is not None:
        return hit
    key = f"playback:asset-duration:{asset_id}"
    cached = await cache.get(key)
    if cached is not None:
        _DURATIONS[local_key] = float(cached)
        return float(cached)
    duration: float | None = None
    master = await store.read_text(str(asset_id), "master.m3u8")
    try:
        variants = [line.strip() for line in (master or "").splitlines() if line.strip()
                    and not line.startswith("#")]
        if variants:
            media = await store.read_text(str(asset_id), f"{hls.variant_rendition(variants[0])}/index.m3u8")
            duration = hls.media_duration(media) if media else None
    except hls.PlaylistError:
        log.warning("unreadable playlist", extra={"asset_id": str(asset_id)})
    if duration:  # an asset still processing is looked at again next time
        await cache.set(key, str(duration).encode(), ASSET_DURATION_CACHE_SECONDS)
        _DURATIONS[local_key] = duration
    return duration


async def course_progress(*, db: Database, course: CourseLessons, store: LocalMediaStore,
                          cache: Cache, user_id: uuid.UUID) -> CourseProgress:
    """Per-lesson progress and the course totals over its video lessons (time-weighted). The rows
    are read in a short session; missing durations are then read from storage with none open."""
    videos = [lesson for lesson in course.lessons
              if lesson.asset_id is not None and lesson.kind in (None, "video")]
    async with db.session() as session:
        rows = {row.lesson_id: row for row in await session.scalars(sa.select(WatchProgress).where(
            WatchProgress.user_id == user_id,
            WatchProgress.lesson_id.in_([lesson.lesson_id for lesson in videos])))}
    lessons: list[LessonProgress] = []
    for lesson in videos:
        row = rows.get(lesson.lesson_id)
        duration = lesson.duration_seconds or (row.duration_seconds if row else None)
        if not duration and lesson.asset_id is not None:
            duration = await asset_duration(store=store, cache=cache, asset_id=lesson.asset_id)
        watched = row.watched_seconds if row else 0.0
        watched = min(watched, duration) if duration else 0.0
        lessons.append(LessonProgress(
            lesson_id=lesson.lesson_id, position_seconds=row.position_seconds if row else 0.0,
            watched_seconds=round(watched, 3), duration_seconds=duration,
            completed=bool(duration) and watched >= COMPLETION_SHARE * (duration or 0)))
    total = sum(lesson.duration_seconds or 0.0 for lesson in lessons)
    watched_total = sum(lesson.watched_seconds for lesson in lessons)
    ratio = min(1.0, watched_total / total) if total else 0.0
    return CourseProgress(user_id=user_id, course_id=course.course_id, watched_seconds=round(watched_total),
                          total_seconds=round(total), watched_ratio=round(ratio, 4),
                          completion_percent=round(100 * ratio, 1),
                          completed_lessons=sum(1 for lesson in lessons if lesson.completed),
                          total_lessons=len(lessons), lessons=lessons)


async def watermark_sessions(*, db_session: AsyncSession, watermark: str) -> Sequence[WatermarkIssued]:
    return list(await db_session.scalars(sa.select(WatermarkIssued).where(WatermarkIssued.watermark == watermark)
                                         .order_by(WatermarkIssued.issued_at)))
