"""Who may watch what: starting a playback session, issuing its 90 s token, heartbeats, and
the audit of every decision."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from common.cache import Cache
from common.db import Database, upsert_insert, utcnow
from common.errors import Conflict, DomainError, Forbidden, NotFound, Unprocessable
from common.events import add_event
from common.http import ServiceClient
from common.observability import context as obs_context
from common.observability.metrics import count
from contracts.events import LessonCompleted
from contracts.peers import CatalogLesson
from playback import signing
from playback.access_records import AccessRecorder
from playback.models import (
    GRANTED,
    REFUSED,
    AccessLog,
    PlaybackSession,
    WatchProgress,
    WatermarkIssued,
)
from playback.settings import PlaybackSettings
from playback.streams import Admission, StreamRegistry

from .entitlements import ManifestSession, decide_entitlement, manifest_session
from .outcomes import (
    ACCESS_DECISIONS,
    COMPLETION_SHARE,
    MAX_PLAYBACK_RATE,
    PUBLISHED,
    REPLACED,
    RESTART_NEAR_END_SECONDS,
    SESSIONS_ENDED,
    STOPPED,
    TIMED_OUT,
    Gone,
    Heartbeat,
    IssuedToken,
    Refusal,
)


def _log_decision(db_session: AsyncSession, *, action: str, user_id: uuid.UUID, lesson_id: uuid.UUID,
                  asset_id: uuid.UUID | None, session_id: uuid.UUID | None, decision: str,
                  reason: str) -> None:
    db_session.add(AccessLog(user_id=user_id, lesson_id=lesson_id, asset_id=asset_id, session_id=session_id,
                             decision=decision, reason=reason, action=action, at=utcnow()))
    ACCESS_DECISIONS.labels(action, decision, reason.removeprefix(f"{action}:")).inc()
    if decision == REFUSED:
        count("playback", "access_refused")


def log_refusal(db_session: AsyncSession, *, action: str, user_id: uuid.UUID, lesson_id: uuid.UUID,
                reason: str) -> None:
    """A refusal decided outside a use case (e.g. catalog does not know the lesson)."""
    _log_decision(db_session, action=action, user_id=user_id, lesson_id=lesson_id, asset_id=None,
                  session_id=None, decision=REFUSED, reason=reason)


def _refuse(db_session: AsyncSession, refusal: Refusal, *, action: str, user_id: uuid.UUID,
            lesson_id: uuid.UUID, asset_id: uuid.UUID | None, session_id: uuid.UUID | None = None) -> Refusal:
    _log_decision(db_session, action=action, user_id=user_id, lesson_id=lesson_id, asset_id=asset_id,
                  session_id=session_id, decision=REFUSED, reason=refusal.reason)
    return refusal


def manifest_url(settings: PlaybackSettings, session_id: uuid.UUID, token: str,
                 rendition: str | None = None) -> str:
    name = f"{rendition}/index.m3u8" if rendition else "master.m3u8"
    return (f"{settings.public_base_url}/api/playback/manifests/{session_id}/{name}"
            f"?token={quote(token, safe='')}")


async def _admit_stream(*, streams: StreamRegistry, settings: PlaybackSettings, user_id: uuid.UUID,
                        session_id: uuid.UUID, ended_elsewhere: Sequence[str]) -> Admission:
    """Take a stream slot: one registry round trip that first drops the holders the database knows
    events ended (`token_facts` read them), then applies the configured policy at the limit."""
    return await streams.admit(str(user_id), str(session_id), limit=settings.max_concurrent_streams,
                               policy=settings.stream_limit_policy,
                               timeout_seconds=settings.stream_idle_timeout_seconds, drop=ended_elsewhere)


def _insert(table: sa.Table, prefix: str, columns: tuple[str, ...]) -> sa.Insert:
    return sa.insert(table).values({name: sa.bindparam(f"{prefix}_{name}", type_=table.c[name].type)
                                    for name in columns})


_SESSIONS, _WATERMARKS, _ACCESS_LOG = (cast(sa.Table, model.__table__)
                                      for model in (PlaybackSession, WatermarkIssued, AccessLog))
_SESSION_COLUMNS = ("id", "user_id", "lesson_id", "course_id", "asset_id", "is_preview", "watermark", "created_at",
                    "expires_at", "duration_seconds", "last_position", "last_heartbeat_at", "request_id")
_WATERMARK_COLUMNS = ("session_id", "watermark", "user_id", "asset_id", "lesson_id", "course_id", "issued_at")
_ACCESS_COLUMNS = ("id", "user_id", "lesson_id", "asset_id", "session_id", "decision", "reason", "action", "at",
                   "request_id")
# Built once with bound parameters, so each token reuses the compiled statement (no per-request
# cache-key or compilation work). Empty `replaced`: the UPDATE matches nothing.
_GRANT_STEPS = (
    sa.update(_SESSIONS).where(_SESSIONS.c.id.in_(sa.bindparam("replaced", expanding=True)),
                               _SESSIONS.c.ended_at.is_(None))
    .values(ended_at=sa.bindparam("replaced_at", type_=_SESSIONS.c.ended_at.type), end_reason=REPLACED,
            ended_request_id=sa.bindparam("replaced_by", type_=_SESSIONS.c.ended_request_id.type)),
    _insert(_SESSIONS, "s", _SESSION_COLUMNS),
    _insert(_WATERMARKS, "w", _WATERMARK_COLUMNS),
)
_GRANT_AUDIT = _insert(_ACCESS_LOG, "a", _ACCESS_COLUMNS)
# PostgreSQL: all of it as one statement (data-modifying CTEs: all or nothing, one round trip).
_GRANT = _GRANT_AUDIT.add_cte(*(step.cte(f"grant_{i}") for i, step in enumerate(_GRANT_STEPS)))


async def _write_grant(db: Database, *, replaced: list[uuid.UUID], now: dt.datetime,
                       session_row: dict[str, Any], access_row: dict[str, Any]) -> None:
    """Write a granted token: end the sessions it replaced, open its session, log its watermark and
    its audit row, committed when this returns: one statement on PostgreSQL on a bare autocommit
    connection (no ORM session, no BEGIN/COMMIT round trips), one per table in a transaction elsewhere."""
    # The request that caused each row (the evidence trail): the bound statements carry it explicitly.
    request_id = obs_context.request_id.get()
    params = {"replaced": replaced, "replaced_at": now, "replaced_by": request_id,
              **{f"s_{name}": session_row[name] for name in _SESSION_COLUMNS},
              **{f"w_{name}": session_row[name] for name in _WATERMARK_COLUMNS if name in session_row},
              "w_session_id": session_row["id"], "w_issued_at": now,
              **{f"a_{name}": access_row[name] for name in _ACCESS_COLUMNS}}
    if not db.is_sqlite:
        async with db.statements() as connection:
            await connection.execute(_GRANT, params)
        return
    async with db.transaction() as db_session:
        for statement in (*_GRANT_STEPS, _GRANT_AUDIT):
            await db_session.execute(statement, params)


async def start_playback(*, db: Database, settings: PlaybackSettings, key: signing.TokenKey,
                         streams: StreamRegistry, user_id: uuid.UUID, lesson: CatalogLesson, entitlement: str | None,
                         duration: float | None, resume_position: float = 0.0,
                         ended_elsewhere: Sequence[str] = ()) -> IssuedToken | Refusal:
    """Decide, take a stream slot, then open a playback session, log its watermark and sign its
    90 s token; every decision lands in the access log, committed before this returns. `entitlement`
    (`decide_entitlement`), the `resume_position` (`token_facts`) and the media `duration`
    (`asset_duration`, a storage read) are looked up before, so no write waits on another system.
    `ended_elsewhere` (`token_facts`): the user's sessions events ended, dropped from the stream
    registry before counting."""
    async def refuse(error: type[DomainError], reason: str, detail: str, **extra: Any) -> Refusal:
        async with db.transaction() as db_session:
            return _refuse(db_session, Refusal(error, reason, detail, extra), action="token", user_id=user_id,
                           lesson_id=lesson.lesson_id, asset_id=lesson.asset_id)

    if lesson.course_status != PUBLISHED:
        return await refuse(NotFound, "course_not_published", "lesson not found")
    if not lesson.is_video or lesson.asset_id is None:
        return await refuse(Unprocessable, "not_a_video_lesson", "this lesson has no video")
    reason = entitlement
    if reason is None:
        return await refuse(Forbidden, "not_enrolled", "you are not enrolled in this course")

    session_id = uuid.uuid4()
    admission = await _admit_stream(streams=streams, settings=settings, user_id=user_id, session_id=session_id,
                                    ended_elsewhere=ended_elsewhere)
    if not admission.admitted:
        return await refuse(Conflict, "too_many_streams",
                            f"at most {settings.max_concurrent_streams} streams at a time: stop one to start another",
                            active_sessions=list(admission.active))
    resume = resume_position
    if duration is not None and resume >= duration - min(RESTART_NEAR_END_SECONDS, 0.05 * duration):
        resume = 0.0

    now = utcnow()
    issued_at = int(now.timestamp())
    expires_at = issued_at + settings.token_ttl_seconds
    mark = signing.watermark(settings.secure_link_secret.get_secret_value(), user_id, session_id)
    replaced = [uuid.UUID(s) for s in admission.ended]
    await _write_grant(db, replaced=replaced, now=now, session_row={
        "id": session_id, "user_id": user_id, "lesson_id": lesson.lesson_id, "course_id": lesson.course_id,
        "asset_id": lesson.asset_id, "is_preview": lesson.is_preview, "watermark": mark, "created_at": now,
        "expires_at": dt.datetime.fromtimestamp(expires_at, dt.UTC), "duration_seconds": duration,
        "last_position": resume, "last_heartbeat_at": now, "request_id": obs_context.request_id.get(),
    }, access_row={
        "id": uuid.uuid4(), "user_id": user_id, "lesson_id": lesson.lesson_id, "asset_id": lesson.asset_id,
        "session_id": session_id, "decision": GRANTED, "reason": reason, "action": "token", "at": now,
        "request_id": obs_context.request_id.get(),
    })
    if replaced:
        SESSIONS_ENDED.labels(REPLACED).inc(len(replaced))
    ACCESS_DECISIONS.labels("token", GRANTED, reason).inc()
    claims = signing.PlaybackClaims(user_id=user_id, session_id=session_id, asset_id=lesson.asset_id,
                                    lesson_id=lesson.lesson_id, course_id=lesson.course_id,
                                    watermark=mark)
    token = signing.sign_playback_token(key, claims=claims, issued_at=issued_at, expires_at=expires_at)
    count("playback", "tokens_issued")
    return IssuedToken(token=token, expires_in=settings.token_ttl_seconds,
                       manifest_url=manifest_url(settings, session_id, token), session_id=session_id,
                       watermark=mark, resume_position_seconds=resume)


def _ended(row: PlaybackSession | ManifestSession) -> Refusal:
    return Refusal(Gone, "session_ended", f"this playback session has ended ({row.end_reason})",
                   {"end_reason": row.end_reason})


async def _still_streaming(db_session: AsyncSession, streams: StreamRegistry, settings: PlaybackSettings,
                           row: PlaybackSession) -> bool:
    """Refresh the session's slot; a session that fell out of the registry is over (timed out)."""
    if await streams.touch(str(row.user_id), str(row.id), timeout_seconds=settings.stream_idle_timeout_seconds):
        return True
    row.ended_at, row.end_reason = utcnow(), TIMED_OUT
    row.ended_request_id = obs_context.request_id.get()
    SESSIONS_ENDED.labels(TIMED_OUT).inc()
    return False


async def authorize_manifest(*, db: Database, catalog: ServiceClient, cache: Cache, settings: PlaybackSettings,
                             streams: StreamRegistry, recorder: AccessRecorder, claims: signing.PlaybackClaims,
                             session_id: uuid.UUID) -> ManifestSession | Refusal:
    """A verified token opens only its own, still running session, and only while the entitlement
    still holds (re-checked at every fetch: a revocation acts on the next manifest).

    A grant costs one read (session and entitlement row in one statement), the stream registry's
    touch, and a buffered access record (`AccessRecorder`): no transaction. A refusal is rare and
    commits its access-log row (and a timed-out session's end) before answering.
    """
    async def refuse(refusal: Refusal, known_session: uuid.UUID | None = None, *,
                     timed_out: bool = False) -> Refusal:
        async with db.transaction() as session:
            if timed_out and known_session is not None:
                await session.execute(
                    sa.update(PlaybackSession)
                    .where(PlaybackSession.id == known_session, PlaybackSession.ended_at.is_(None))
                    .values(ended_at=utcnow(), end_reason=TIMED_OUT, ended_request_id=obs_context.request_id.get())
                    .execution_options(synchronize_session=False))
            _refuse(session, refusal, action="manifest", user_id=claims.user_id, lesson_id=claims.lesson_id,
                    asset_id=claims.asset_id, session_id=known_session)
        return refusal

    if claims.session_id != session_id:
        return await refuse(Refusal(Forbidden, "session_mismatch", "this token belongs to another playback session"))
    row = await manifest_session(db=db, session_id=session_id)
    if row is None or row.user_id != claims.user_id or row.asset_id != claims.asset_id:
        return await refuse(Refusal(Forbidden, "unknown_session", "unknown playback session"))
    # Entitlement first: a session the revoke event ended answers 403 not_enrolled, as before the event.
    reason = await decide_entitlement(catalog=catalog, cache=cache, settings=settings, user_id=row.user_id,
                                      course_id=row.course_id, is_preview=row.is_preview, held=row.entitlement)
    if reason is None:
        return await refuse(Refusal(Forbidden, "not_enrolled", "you are no longer enrolled in this course"), row.id)
    if row.ended_at is not None:
        return await refuse(_ended(row), row.id)
    if not await streams.touch(str(row.user_id), str(row.id), timeout_seconds=settings.stream_idle_timeout_seconds):
        SESSIONS_ENDED.labels(TIMED_OUT).inc()
        return await refuse(Refusal(Gone, "session_ended", f"this playback session has ended ({TIMED_OUT})",
                                    {"end_reason": TIMED_OUT}), row.id, timed_out=True)
    recorder.grant(user_id=row.user_id, lesson_id=row.lesson_id, asset_id=row.asset_id, session_id=row.id,
                   action="manifest", reason=f"manifest:{reason}")
    ACCESS_DECISIONS.labels("manifest", GRANTED, reason).inc()
    return row


async def _own_session(db_session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID) -> PlaybackSession:
    row = await db_session.get(PlaybackSession, session_id, with_for_update=True)
    if row is None or row.user_id != user_id:
        ACCESS_DECISIONS.labels("heartbeat", REFUSED, "unknown_session").inc()
        raise NotFound("unknown playback session", code="unknown_session")
    return row


async def _record_position(db_session: AsyncSession, row: PlaybackSession, position: float) -> WatchProgress:
    """Move the resume point and credit forward playback since the last heartbeat (at most real
    time x MAX_PLAYBACK_RATE, never beyond the media's length)."""
    now = utcnow()
    duration = row.duration_seconds
    position = min(position, duration) if duration else position
    credited = 0.0
    if row.last_position is not None and row.last_heartbeat_at is not None:
        elapsed = max(0.0, (now - row.last_heartbeat_at).total_seconds())
        credited = max(0.0, min(position - row.last_position, elapsed * MAX_PLAYBACK_RATE))
    row.last_position, row.last_heartbeat_at = position, now
    await db_session.execute(upsert_insert(db_session, WatchProgress).values(
        user_id=row.user_id, lesson_id=row.lesson_id, course_id=row.course_id, asset_id=row.asset_id,
        position_seconds=0.0, watched_seconds=0.0, duration_seconds=duration, updated_at=now,
    ).on_conflict_do_nothing(index_elements=[WatchProgress.user_id, WatchProgress.lesson_id]))
    progress = await db_session.get(WatchProgress, (row.user_id, row.lesson_id), with_for_update=True,
                                    populate_existing=True)
    assert progress is not None  # inserted above when missing
    watched_before = progress.watched_seconds
    watched = watched_before + credited
    progress.watched_seconds = min(watched, duration) if duration else watched
    if duration and watched_before < COMPLETION_SHARE * duration <= progress.watched_seconds:
        # Only the crossing publishes; catalog decides whether the course is complete.
        await add_event(db_session, LessonCompleted(
            user_id=row.user_id, course_id=row.course_id, lesson_id=row.lesson_id, completed_at=now))
    progress.position_seconds = position
    progress.duration_seconds = duration or progress.duration_seconds
    progress.updated_at = now
    return progress


async def heartbeat(*, db_session: AsyncSession, settings: PlaybackSettings, streams: StreamRegistry,
                    user_id: uuid.UUID, session_id: uuid.UUID, position: float) -> Heartbeat | Refusal:
    """Keep the stream's slot and record the position; an ended or timed-out session is refused
    (410), which tells the player to stop."""
    row = await _own_session(db_session, user_id, session_id)

    def refuse() -> Refusal:
        return _refuse(db_session, _ended(row), action="heartbeat", user_id=user_id, lesson_id=row.lesson_id,
                       asset_id=row.asset_id, session_id=row.id)

    if row.ended_at is not None or not await _still_streaming(db_session, streams, settings, row):
        return refuse()
    progress = await _record_position(db_session, row, position)
    return Heartbeat(session_id=row.id, position_seconds=progress.position_seconds,
                     watched_seconds=progress.watched_seconds, watermark=row.watermark)


async def stop(*, db_session: AsyncSession, streams: StreamRegistry, user_id: uuid.UUID,
               session_id: uuid.UUID, position: float | None) -> None:
    """The player closed: free the slot at once (idempotent); a final position is recorded."""
    row = await _own_session(db_session, user_id, session_id)
    if row.ended_at is None:
        if position is not None:
            await _record_position(db_session, row, position)
        row.ended_at, row.end_reason = utcnow(), STOPPED
        row.ended_request_id = obs_context.request_id.get()
        SESSIONS_ENDED.labels(STOPPED).inc()
    await streams.release(str(user_id), str(session_id))
