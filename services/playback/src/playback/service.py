"""Playback use cases: who may watch what, playback sessions and tokens, concurrent streams,
per-viewer playlists, watch progress, and the audit of every decision.

Money and access follow one chain: catalog grants or revokes an enrollment, playback honours it
through its read model, re-checked at every token and manifest fetch so a refund cuts playback
quickly; the revoke event also ends the sessions already running.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import sqlalchemy as sa
from prometheus_client import Counter
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from common.cache import Cache
from common.db import Database, autocommit, upsert_insert, utcnow
from common.errors import Conflict, DomainError, Forbidden, NotFound, Unprocessable, UpstreamUnavailable
from common.events import add_event
from common.http import ServiceClient
from common.observability.metrics import count
from contracts.events import LessonCompleted
from contracts.peers import CatalogLesson, CourseLessons, EnrollmentCheck
from playback import forensic, hls, signing
from playback.access_records import AccessRecorder
from playback.cdn import MediaSigner
from playback.media import LocalMediaStore
from playback.models import (
    GRANTED,
    REFUSED,
    AccessLog,
    Entitlement,
    PlaybackSession,
    WatchProgress,
    WatermarkIssued,
)
from playback.schemas import CourseProgress, LessonProgress
from playback.settings import PlaybackSettings
from playback.streams import Admission, StreamRegistry

log = logging.getLogger(__name__)
_Catalog = TypeVar("_Catalog", bound=BaseModel)

PUBLISHED = "published"
# Watch time is credited at most this fast (2x playback speed); seeking ahead earns nothing.
MAX_PLAYBACK_RATE = 2.0
# A lesson counts as completed once this share of it has been watched.
COMPLETION_SHARE = 0.9
# Resuming within this many seconds (at most 5 % of the lesson) of the end starts it over.
RESTART_NEAR_END_SECONDS = 10.0
ASSET_DURATION_CACHE_SECONDS = 300

# Why a session ended (playback_sessions.end_reason).
STOPPED, REPLACED, TIMED_OUT = "stopped", "replaced", "timed_out"
ENROLLMENT_REVOKED, USER_DISABLED, SIGNED_OUT = "enrollment_revoked", "user_disabled", "signed_out"

ACCESS_DECISIONS = Counter(
    "playback_access_decisions_total", "Playback access decisions (token, manifest, heartbeat) by outcome",
    ["action", "decision", "reason"])
SESSIONS_ENDED = Counter("playback_sessions_ended_total", "Playback sessions ended, by reason", ["reason"])


class Gone(DomainError):
    """The playback session is over (stopped, replaced, timed out, revoked): start a new one."""

    status = 410
    title = "Gone"


@dataclass(frozen=True)
class Refusal:
    """A decision against the caller, returned (not raised) so its audit row commits first."""

    error: type[DomainError]
    reason: str
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)

    def raise_error(self) -> NoReturn:
        raise self.error(self.detail, code=self.reason, **self.extra)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    manifest_url: str
    session_id: uuid.UUID
    watermark: str
    resume_position_seconds: float


@dataclass(frozen=True)
class Heartbeat:
    session_id: uuid.UUID
    position_seconds: float
    watched_seconds: float
    watermark: str


# --- catalog lookups -------------------------------------------------------------------------


async def _cached_catalog_read(model: type[_Catalog], *, catalog: ServiceClient, cache: Cache, path: str,
                               cache_seconds: int, missing: NotFound) -> _Catalog:
    """GET one of catalog's internal resources, validated into `model` and cached briefly (it changes
    rarely and plays need it); 404 -> `missing`, anything else unexpected -> 503."""
    key = f"playback:catalog:{path}"
    cached = await cache.get(key)
    if cached is not None:
        return model.model_validate_json(cached)
    found = await catalog.get_model(path, model, missing=missing)
    await cache.set(key, found.model_dump_json().encode(), cache_seconds)
    return found


async def get_lesson(*, catalog: ServiceClient, cache: Cache, lesson_id: uuid.UUID,
                     cache_seconds: int) -> CatalogLesson:
    """Catalog's view of a lesson (GET /internal/lessons/{id})."""
    return await _cached_catalog_read(CatalogLesson, catalog=catalog, cache=cache,
                                      path=f"/internal/lessons/{lesson_id}", cache_seconds=cache_seconds,
                                      missing=NotFound("lesson not found", code="lesson_not_found"))


async def get_course_lessons(*, catalog: ServiceClient, cache: Cache, course_id: uuid.UUID,
                             cache_seconds: int) -> CourseLessons:
    """Catalog's lesson list of a course (GET /internal/courses/{id}/lessons)."""
    return await _cached_catalog_read(CourseLessons, catalog=catalog, cache=cache,
                                      path=f"/internal/courses/{course_id}/lessons", cache_seconds=cache_seconds,
                                      missing=NotFound("course not found", code="course_not_found"))


async def catalog_says_enrolled(*, catalog: ServiceClient, cache: Cache, user_id: uuid.UUID,
                                course_id: uuid.UUID, cache_seconds: int, read_model_version: int) -> bool:
    """Ask catalog directly: covers the gap before the grant event reaches the read model.

    Only "yes" is cached, under a key that carries the read model's version of the pair: a revoke
    event bumps the version, so a cached "yes" can never outlive it (not even one written by a
    check that was in flight while the event was applied).
    """
    key = f"playback:enrolled:{user_id}:{course_id}:v{read_model_version}"
    if cache_seconds and await cache.get(key) == b"1":
        return True
    check = await catalog.get_model("/internal/enrollments/check", EnrollmentCheck,
                                    params={"user_id": str(user_id), "course_id": str(course_id)})
    enrolled = check.enrolled
    if enrolled and cache_seconds:
        await cache.set(key, b"1", cache_seconds)
    return enrolled


# --- entitlements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldEntitlement:
    """The read model's row for (user, course): whether there is one, whether it is active, its version."""

    found: bool = False
    active: bool = False
    version: int = 0

    @classmethod
    def of(cls, active: bool | None, version: int | None) -> HeldEntitlement:
        return cls() if active is None else cls(found=True, active=active, version=version or 0)


async def decide_entitlement(*, catalog: ServiceClient, cache: Cache, settings: PlaybackSettings,
                             user_id: uuid.UUID, course_id: uuid.UUID, is_preview: bool,
                             held: HeldEntitlement) -> str | None:
    """Why the user may watch: 'preview' (no entitlement needed), 'enrolled' (an active read-model
    row, read by the caller in its one statement), 'enrolled_per_catalog', or None.

    Without an active row catalog, the source of truth, is asked: the grant may not have arrived yet
    (first purchase, or a re-purchase after a refund). When the read model holds a revocation and
    catalog cannot be reached, the revocation stands (403, not 503).

    Called with no database session open: embedded (SQLite), every transaction holds its database's
    write lock, and catalog's outbox relay holds catalog's lock while it delivers an event to
    playback; calling catalog from inside a playback transaction would close that cycle.
    """
    if is_preview:
        return "preview"
    if held.active:
        return "enrolled"
    try:
        enrolled = await catalog_says_enrolled(catalog=catalog, cache=cache, user_id=user_id,
                                               course_id=course_id, cache_seconds=settings.entitlement_cache_seconds,
                                               read_model_version=held.version)
    except UpstreamUnavailable:
        if held.found:
            return None
        raise
    return "enrolled_per_catalog" if enrolled else None


@dataclass(frozen=True)
class TokenFacts:
    """What a token decision reads from playback's database: the entitlement and the resume point."""

    entitlement: HeldEntitlement
    resume_position: float


def _token_facts_statement(user_id: uuid.UUID, course_id: uuid.UUID, lesson_id: uuid.UUID) -> sa.Select[Any]:
    held = (Entitlement.user_id == user_id, Entitlement.course_id == course_id)
    return sa.select(
        sa.select(Entitlement.active).where(*held).scalar_subquery(),
        sa.select(Entitlement.version).where(*held).scalar_subquery(),
        sa.select(WatchProgress.position_seconds).where(
            WatchProgress.user_id == user_id, WatchProgress.lesson_id == lesson_id).scalar_subquery())


async def token_facts(*, db: Database, user_id: uuid.UUID, course_id: uuid.UUID,
                      lesson_id: uuid.UUID) -> TokenFacts:
    """Entitlement row and resume position in one statement, outside any transaction."""
    async with db.session() as session:
        await autocommit(session)
        active, version, position = (await session.execute(
            _token_facts_statement(user_id, course_id, lesson_id))).one()
    return TokenFacts(entitlement=HeldEntitlement.of(active, version), resume_position=position or 0.0)


@dataclass(frozen=True)
class ManifestSession:
    """A playback session as a manifest fetch needs it, with its read-model entitlement, in one row."""

    id: uuid.UUID
    user_id: uuid.UUID
    lesson_id: uuid.UUID
    course_id: uuid.UUID
    asset_id: uuid.UUID
    is_preview: bool
    watermark: str
    ended_at: dt.datetime | None
    end_reason: str | None
    entitlement: HeldEntitlement


_MANIFEST_SESSION = sa.select(
    PlaybackSession.id, PlaybackSession.user_id, PlaybackSession.lesson_id, PlaybackSession.course_id,
    PlaybackSession.asset_id, PlaybackSession.is_preview, PlaybackSession.watermark, PlaybackSession.ended_at,
    PlaybackSession.end_reason, Entitlement.active, Entitlement.version,
).outerjoin(Entitlement, sa.and_(Entitlement.user_id == PlaybackSession.user_id,
                                 Entitlement.course_id == PlaybackSession.course_id))


async def manifest_session(*, db: Database, session_id: uuid.UUID) -> ManifestSession | None:
    """The session and its entitlement row by primary keys: one statement, outside any transaction."""
    async with db.session() as session:
        await autocommit(session)
        row = (await session.execute(_MANIFEST_SESSION.where(PlaybackSession.id == session_id))).first()
    if row is None:
        return None
    return ManifestSession(id=row.id, user_id=row.user_id, lesson_id=row.lesson_id, course_id=row.course_id,
                           asset_id=row.asset_id, is_preview=row.is_preview, watermark=row.watermark,
                           ended_at=row.ended_at, end_reason=row.end_reason,
                           entitlement=HeldEntitlement.of(row.active, row.version))


async def record_enrollment(*, db_session: AsyncSession, user_id: uuid.UUID, course_id: uuid.UUID,
                            version: int, active: bool) -> bool:
    """Apply an enrollment change only if it is newer than what we hold (order-independent).

    One upsert guarded by the version, so concurrent deliveries cannot interleave. Returns whether
    this change is now the current state.
    """
    stmt = upsert_insert(db_session, Entitlement).values(user_id=user_id, course_id=course_id, active=active,
                                                         version=version, updated_at=utcnow())
    stmt = stmt.on_conflict_do_update(
        index_elements=[Entitlement.user_id, Entitlement.course_id],
        set_={"active": stmt.excluded.active, "version": stmt.excluded.version,
              "updated_at": stmt.excluded.updated_at},
        where=Entitlement.version < stmt.excluded.version,
    )
    await db_session.execute(stmt)
    current = await db_session.scalar(sa.select(Entitlement.version).where(
        Entitlement.user_id == user_id, Entitlement.course_id == course_id))
    return current == version


# --- sessions ending, erasure ------------------------------------------------------------------


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
        sa.update(PlaybackSession).where(*conditions).values(ended_at=utcnow(), end_reason=reason)
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


# --- decisions -------------------------------------------------------------------------------


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


async def _admit_stream(*, db_session: AsyncSession, streams: StreamRegistry, settings: PlaybackSettings,
                        user_id: uuid.UUID, session_id: uuid.UUID) -> Admission:
    """Take a stream slot. At the limit, first drop holders the database already knows have ended
    (an event handler ended them but could not reach Redis), then apply the configured policy."""
    limits: dict[str, Any] = {"limit": settings.max_concurrent_streams,
                              "timeout_seconds": settings.stream_idle_timeout_seconds}
    first = await streams.admit(str(user_id), str(session_id), policy="refuse", **limits)
    if first.admitted:
        return first
    holders = [uuid.UUID(member) for member in first.active]
    ended = [str(sid) for sid in await db_session.scalars(sa.select(PlaybackSession.id).where(
        PlaybackSession.id.in_(holders), PlaybackSession.ended_at.is_not(None)))]
    if ended:
        await streams.release(str(user_id), *ended)
    if not ended and settings.stream_limit_policy == "refuse":
        return first
    return await streams.admit(str(user_id), str(session_id), policy=settings.stream_limit_policy, **limits)


async def start_playback(*, db_session: AsyncSession, settings: PlaybackSettings, key: signing.TokenKey,
                         streams: StreamRegistry, user_id: uuid.UUID, lesson: CatalogLesson, entitlement: str | None,
                         duration: float | None, resume_position: float = 0.0) -> IssuedToken | Refusal:
    """Decide, take a stream slot, then open a playback session, log its watermark and sign its
    90 s token; every decision lands in the access log, in this transaction. `entitlement`
    (`decide_entitlement`), the `resume_position` (`token_facts`) and the media `duration`
    (`asset_duration`, a storage read) are looked up before this transaction opened, so it never
    waits on another system and its statements are writes only."""
    def refuse(error: type[DomainError], reason: str, detail: str, **extra: Any) -> Refusal:
        return _refuse(db_session, Refusal(error, reason, detail, extra), action="token", user_id=user_id,
                       lesson_id=lesson.lesson_id, asset_id=lesson.asset_id)

    if lesson.course_status != PUBLISHED:
        return refuse(NotFound, "course_not_published", "lesson not found")
    if not lesson.is_video or lesson.asset_id is None:
        return refuse(Unprocessable, "not_a_video_lesson", "this lesson has no video")
    reason = entitlement
    if reason is None:
        return refuse(Forbidden, "not_enrolled", "you are not enrolled in this course")

    session_id = uuid.uuid4()
    admission = await _admit_stream(db_session=db_session, streams=streams, settings=settings,
                                    user_id=user_id, session_id=session_id)
    if not admission.admitted:
        return refuse(Conflict, "too_many_streams",
                      f"at most {settings.max_concurrent_streams} streams at a time: stop one to start another",
                      active_sessions=list(admission.active))
    if admission.ended:
        await db_session.execute(
            sa.update(PlaybackSession)
            .where(PlaybackSession.id.in_([uuid.UUID(s) for s in admission.ended]),
                   PlaybackSession.ended_at.is_(None))
            .values(ended_at=utcnow(), end_reason=REPLACED).execution_options(synchronize_session=False))
        SESSIONS_ENDED.labels(REPLACED).inc(len(admission.ended))

    resume = resume_position
    if duration is not None and resume >= duration - min(RESTART_NEAR_END_SECONDS, 0.05 * duration):
        resume = 0.0

    now = utcnow()
    issued_at = int(now.timestamp())
    expires_at = issued_at + settings.token_ttl_seconds
    mark = signing.watermark(settings.secure_link_secret.get_secret_value(), user_id, session_id)
    db_session.add(PlaybackSession(
        id=session_id, user_id=user_id, lesson_id=lesson.lesson_id, course_id=lesson.course_id,
        asset_id=lesson.asset_id, is_preview=lesson.is_preview, watermark=mark, created_at=now,
        expires_at=dt.datetime.fromtimestamp(expires_at, dt.UTC), duration_seconds=duration,
        last_position=resume, last_heartbeat_at=now))
    db_session.add(WatermarkIssued(session_id=session_id, watermark=mark, user_id=user_id,
                                   asset_id=lesson.asset_id, lesson_id=lesson.lesson_id,
                                   course_id=lesson.course_id, issued_at=now))
    _log_decision(db_session, action="token", user_id=user_id, lesson_id=lesson.lesson_id,
                  asset_id=lesson.asset_id, session_id=session_id, decision=GRANTED, reason=reason)
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
                    .values(ended_at=utcnow(), end_reason=TIMED_OUT).execution_options(synchronize_session=False))
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
        SESSIONS_ENDED.labels(STOPPED).inc()
    await streams.release(str(user_id), str(session_id))


# --- progress --------------------------------------------------------------------------------


# (media root, asset) -> (monotonic expiry, duration): a packaged asset's length never changes, so
# each process keeps it too and a token costs no cache round trip for it.
_DURATIONS: dict[tuple[str, uuid.UUID], tuple[float, float]] = {}


async def asset_duration(*, store: LocalMediaStore, cache: Cache, asset_id: uuid.UUID) -> float | None:
    """The media length of an asset (its first rendition's EXTINF sum), cached; None while unreadable."""
    local_key, now = (str(store.root), asset_id), time.monotonic()
    hit = _DURATIONS.get(local_key)
    if hit is not None and hit[0] > now:
        return hit[1]
    key = f"playback:asset-duration:{asset_id}"
    cached = await cache.get(key)
    if cached is not None:
        _remember_duration(local_key, float(cached))
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
        _remember_duration(local_key, duration)
    return duration


def _remember_duration(key: tuple[str, uuid.UUID], duration: float) -> None:
    if len(_DURATIONS) >= TEMPLATE_CACHE_ENTRIES:
        _DURATIONS.clear()
    _DURATIONS[key] = (time.monotonic() + ASSET_DURATION_CACHE_SECONDS, duration)


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


# --- playlists -------------------------------------------------------------------------------


async def _read_playlist(store: LocalMediaStore, asset_id: uuid.UUID, relative: str) -> str:
    text = await store.read_text(str(asset_id), relative)
    if text is None:
        raise NotFound("playlist not found", code="playlist_not_found")
    return text


async def master_playlist(*, store: LocalMediaStore, settings: PlaybackSettings,
                          playback_session: ManifestSession, token: str) -> str:
    """The asset's master playlist with each variant pointing at this viewer's variant route."""
    text = await _read_playlist(store, playback_session.asset_id, "master.m3u8")
    return hls.rewrite_master(
        text, lambda rendition: manifest_url(settings, playback_session.id, token, rendition))


def sign_media_playlist(template: str, *, signer: MediaSigner, media_base_url: str, asset_id: str,
                        expires: int) -> tuple[str, tuple[str, ...]]:
    """Fill a media template (`hls.media_template`): every URI becomes
    `<base>/<asset>/<rendition>/<file>?<query>` with one signature (or one set of cookies) for the
    whole asset prefix, so signing costs the same for 10 segments or 2,000."""
    signed = signer.sign(asset_id, expires)
    suffix = f"?{signed.query}" if signed.query else ""
    return hls.fill_template(template, f"{media_base_url}/{asset_id}/", suffix), signed.set_cookies


@dataclass(frozen=True)
class _MediaTemplate:
    template: str
    duration: float
    ab: forensic.ABTemplate | None = None  # A/B segment variants: each viewer gets their own mix


# (media root, asset, rendition) -> (monotonic expiry, template). Packaged renditions never change
# under their asset id; the short lifetime bounds what a deleted asset leaves behind.
_TEMPLATES: dict[tuple[str, str, str], tuple[float, _MediaTemplate]] = {}
TEMPLATE_CACHE_SECONDS = 60.0
TEMPLATE_CACHE_ENTRIES = 1024


async def _media_template(store: LocalMediaStore, asset_id: uuid.UUID, rendition: str,
                          names_key: bytes = b"") -> _MediaTemplate:
    key = (str(store.root), str(asset_id), rendition)
    now = time.monotonic()
    hit = _TEMPLATES.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    text = await _read_playlist(store, asset_id, f"{rendition}/index.m3u8")
    template = hls.media_template(text, rendition)
    entry = _MediaTemplate(template=template, duration=hls.media_duration(text),
                           ab=forensic.ab_template(template, key=names_key, asset_id=str(asset_id)))
    if len(_TEMPLATES) >= TEMPLATE_CACHE_ENTRIES:
        _TEMPLATES.clear()
    _TEMPLATES[key] = (now + TEMPLATE_CACHE_SECONDS, entry)
    return entry


async def media_playlist(*, store: LocalMediaStore, settings: PlaybackSettings, signer: MediaSigner,
                         playback_session: ManifestSession, rendition: str,
                         now: float | None = None) -> tuple[str, tuple[str, ...]]:
    """One rendition's playlist with absolute signed media URLs (and cookies in CloudFront cookie mode);
    the links live for the media's duration plus a grace period."""
    if not hls.is_valid_rendition(rendition):
        raise NotFound("rendition not found")
    secret = settings.secure_link_secret.get_secret_value()
    media = await _media_template(store, playback_session.asset_id, rendition, forensic.names_key(secret))
    template = media.template
    if media.ab is not None:
        template = forensic.viewer_template(media.ab, forensic.codeword(
            forensic.code_key(secret), playback_session.watermark, media.ab.positions))
    expires = math.ceil((time.time() if now is None else now) + media.duration + settings.media_link_grace_seconds)
    count("playback", "manifests_served")
    return sign_media_playlist(template, signer=signer, media_base_url=settings.resolved_media_base_url,
                               asset_id=str(playback_session.asset_id), expires=expires)
