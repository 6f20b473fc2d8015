"""The entitlement read model: enrollments granted and revoked by catalog's events, and the check at every token."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from common.cache import Cache
from common.db import Database, upsert_insert, utcnow
from common.errors import UpstreamUnavailable
from common.http import ServiceClient
from playback.models import (
    Entitlement,
    PlaybackSession,
    WatchProgress,
)
from playback.settings import PlaybackSettings

from .catalog_lookups import catalog_says_enrolled
from .outcomes import ENROLLMENT_REVOKED, SIGNED_OUT, USER_DISABLED


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
    """What a token decision reads from playback's database: the entitlement, the resume point, and
    the user's sessions that events ended lately (`ended_elsewhere`: they may still hold a slot in
    the stream registry, which only hears of ends it made itself)."""

    entitlement: HeldEntitlement
    resume_position: float
    ended_elsewhere: tuple[str, ...] = ()


# Ends the stream registry never hears of: an event handler only has a database transaction.
# (Replaced sessions leave the registry in the admission that replaced them, stopped ones in the
# request that stopped them, timed-out ones had already left it.)
ENDED_BY_EVENTS = (ENROLLMENT_REVOKED, USER_DISABLED, SIGNED_OUT)


def _token_facts_statement() -> sa.Select[Any]:
    user_id, course_id, lesson_id = (sa.bindparam(name, type_=sa.Uuid)
                                     for name in ("user_id", "course_id", "lesson_id"))
    held = (Entitlement.user_id == user_id, Entitlement.course_id == course_id)
    return sa.select(
        sa.select(Entitlement.active).where(*held).scalar_subquery(),
        sa.select(Entitlement.version).where(*held).scalar_subquery(),
        sa.select(WatchProgress.position_seconds).where(
            WatchProgress.user_id == user_id, WatchProgress.lesson_id == lesson_id).scalar_subquery(),
        # ix_playback_sessions_user_ended: only the user's event-ended sessions are read.
        sa.select(sa.func.aggregate_strings(sa.cast(PlaybackSession.id, sa.String), ",")).where(
            PlaybackSession.user_id == user_id, PlaybackSession.end_reason.in_(ENDED_BY_EVENTS),
            PlaybackSession.ended_at > sa.bindparam("ended_since", type_=PlaybackSession.ended_at.type),
        ).scalar_subquery())


# Built once with bound parameters: each request reuses the compiled statement.
_TOKEN_FACTS = _token_facts_statement()


async def token_facts(*, db: Database, user_id: uuid.UUID, course_id: uuid.UUID, lesson_id: uuid.UUID,
                      stream_idle_timeout_seconds: float) -> TokenFacts:
    """Entitlement row, resume point and sessions ended by events in one statement, outside any
    transaction.

    A registry member silent for the idle timeout is gone already; twice the timeout covers a touch
    that raced the end (the end's time is taken before its statement waits for row locks) and
    replicas' clocks a little apart.
    """
    ended_since = utcnow() - dt.timedelta(seconds=2 * stream_idle_timeout_seconds)
    async with db.statements() as connection:
        active, version, position, ended = (await connection.execute(
            _TOKEN_FACTS, {"user_id": user_id, "course_id": course_id, "lesson_id": lesson_id,
                           "ended_since": ended_since})).one()
    return TokenFacts(entitlement=HeldEntitlement.of(active, version), resume_position=position or 0.0,
                      ended_elsewhere=tuple(str(uuid.UUID(sid)) for sid in ended.split(",")) if ended else ())


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
                                 Entitlement.course_id == PlaybackSession.course_id)
            ).where(PlaybackSession.id == sa.bindparam("session_id", type_=sa.Uuid))


async def manifest_session(*, db: Database, session_id: uuid.UUID) -> ManifestSession | None:
    """The session and its entitlement row by primary keys: one statement, outside any transaction."""
    async with db.statements() as connection:
        row = (await connection.execute(_MANIFEST_SESSION, {"session_id": session_id})).first()
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
