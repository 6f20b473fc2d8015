"""Ending playback sessions (revocation, disabled users, sign-out) and erasing a user's playback data."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import utcnow
from common.observability import context as obs_context
from common.observability.metrics import count
from playback.models import (
    AccessLog,
    Entitlement,
    PlaybackSession,
    WatchProgress,
    WatermarkIssued,
)

from .outcomes import SESSIONS_ENDED

log = logging.getLogger(__name__)


async def end_sessions(*, db_session: AsyncSession, user_id: uuid.UUID, reason: str,
                       course_id: uuid.UUID | None = None, created_before: dt.datetime | None = None) -> int:
    """Mark the user's running sessions ended (all, or one course's paid ones); returns how many.

    Their heartbeats and manifest fetches are refused from the next request on; the stream registry
    drops them when the user next needs the slot.
    """
    conditions = [PlaybackSession.user_id == user_id, PlaybackSession.ended_at.is_(None)]
    if course_id is not None:
        conditions += [PlaybackSession.course_id == course_id, PlaybackSession.is_preview.is_(False)]
    if created_before is not None:
        conditions.append(PlaybackSession.created_at < created_before)
    result = await db_session.execute(
        sa.update(PlaybackSession).where(*conditions).values(ended_at=utcnow(), end_reason=reason,
                                                        ended_request_id=obs_context.request_id.get())
        .execution_options(synchronize_session=False))
    ended = int(getattr(result, "rowcount", 0) or 0)
    if ended:
        SESSIONS_ENDED.labels(reason).inc(ended)
        log.info("playback sessions ended", extra={"reason": reason, "sessions": ended})
    return ended


async def erase_user(*, db_session: AsyncSession, user_id: uuid.UUID, erased_at: dt.datetime) -> None:
    """auth.user.deleted.v1: progress, sessions and entitlements go; the audit stays, anonymised.

    The watermark log keeps watermark -> session, asset, lesson and time (a leak can still be dated
    and tied to a session), with the user id cleared; access-log rows lose the user id likewise.
    """
    for model in (PlaybackSession, WatchProgress, Entitlement):
        await db_session.execute(sa.delete(model).where(model.user_id == user_id)
                                 .execution_options(synchronize_session=False))
    await db_session.execute(sa.update(WatermarkIssued).where(WatermarkIssued.user_id == user_id)
                             .values(user_id=None, user_erased_at=erased_at)
                             .execution_options(synchronize_session=False))
    await db_session.execute(sa.update(AccessLog).where(AccessLog.user_id == user_id).values(user_id=None)
                             .execution_options(synchronize_session=False))
    count("playback", "users_erased")
