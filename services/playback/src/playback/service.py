"""Playback use cases: who may watch what, playback sessions and tokens, per-viewer playlists.

Money and access follow one chain: catalog grants or revokes an enrollment, playback honours it
through its read model, re-checked at every manifest fetch so a refund cuts playback quickly.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import quote

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from common.cache import Cache
from common.db import upsert_insert, utcnow
from common.errors import DomainError, Forbidden, NotFound, Unprocessable, UpstreamUnavailable
from common.http import ServiceClient
from common.observability.metrics import count
from playback import hls, signing
from playback.media import LocalMediaStore
from playback.models import GRANTED, REFUSED, AccessLog, Entitlement, PlaybackSession
from playback.schemas import LessonInfo
from playback.settings import PlaybackSettings

log = logging.getLogger(__name__)

PUBLISHED = "published"
# "Not enrolled" answers are cached briefly, so a learner who has just paid is not kept waiting.
NEGATIVE_CACHE_SECONDS = 5


@dataclass(frozen=True)
class Refusal:
    """A decision against the caller, returned (not raised) so its access-log row commits first."""

    error: type[DomainError]
    reason: str
    detail: str

    def raise_error(self) -> NoReturn:
        raise self.error(self.detail, code=self.reason)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    manifest_url: str
    session_id: uuid.UUID
    watermark: str


# --- catalog lookups -------------------------------------------------------------------------


async def get_lesson(*, catalog: ServiceClient, cache: Cache, lesson_id: uuid.UUID,
                     cache_seconds: int) -> LessonInfo:
    """Catalog's view of a lesson, cached briefly (it changes rarely and every play needs it)."""
    key = f"playback:lesson:{lesson_id}"
    cached = await cache.get(key)
    if cached is not None:
        return LessonInfo.model_validate_json(cached)
    response = await catalog.get(f"/internal/lessons/{lesson_id}")
    if response.status_code == 404:
        raise NotFound("lesson not found", code="lesson_not_found")
    if response.status_code != 200:
        log.warning("catalog lesson lookup failed", extra={"status": response.status_code})
        raise UpstreamUnavailable("catalog is unavailable")
    try:
        lesson = LessonInfo.model_validate_json(response.content)
    except ValidationError as exc:
        raise UpstreamUnavailable("catalog answered with an unexpected lesson shape") from exc
    await cache.set(key, lesson.model_dump_json().encode(), cache_seconds)
    return lesson


async def catalog_says_enrolled(*, catalog: ServiceClient, cache: Cache, user_id: uuid.UUID,
                                course_id: uuid.UUID, cache_seconds: int) -> bool:
    """Ask catalog directly: covers the gap before the enrollment event reaches the read model."""
    key = f"playback:enrolled:{user_id}:{course_id}"
    cached = await cache.get(key)
    if cached is not None:
        return cached == b"1"
    response = await catalog.get("/internal/enrollments/check",
                                 params={"user_id": str(user_id), "course_id": str(course_id)})
    if response.status_code != 200:
        log.warning("catalog enrollment check failed", extra={"status": response.status_code})
        raise UpstreamUnavailable("catalog is unavailable")
    try:
        enrolled = response.json()["enrolled"] is True
    except (ValueError, KeyError, TypeError) as exc:
        raise UpstreamUnavailable("catalog answered with an unexpected enrollment shape") from exc
    await cache.set(key, b"1" if enrolled else b"0",
                    cache_seconds if enrolled else min(cache_seconds, NEGATIVE_CACHE_SECONDS))
    return enrolled


# --- entitlements ----------------------------------------------------------------------------


async def entitlement_source(*, db_session: AsyncSession, catalog: ServiceClient, cache: Cache,
                             settings: PlaybackSettings, user_id: uuid.UUID,
                             course_id: uuid.UUID) -> str | None:
    """Why the user may watch the course ('enrolled' / 'enrolled_per_catalog'), or None.

    The read model decides whenever it has a row (a revocation there is final); only when it has
    never heard of the pair does catalog answer.
    """
    row = await db_session.get(Entitlement, (user_id, course_id))
    if row is not None:
        return "enrolled" if row.active else None
    enrolled = await catalog_says_enrolled(catalog=catalog, cache=cache, user_id=user_id,
                                           course_id=course_id,
                                           cache_seconds=settings.entitlement_cache_seconds)
    return "enrolled_per_catalog" if enrolled else None


async def record_enrollment(*, db_session: AsyncSession, user_id: uuid.UUID, course_id: uuid.UUID,
                            version: int, active: bool) -> None:
    """Apply an enrollment change only if it is newer than what we hold (order-independent).

    One upsert guarded by the version, so concurrent deliveries cannot interleave.
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


# --- decisions -------------------------------------------------------------------------------


def _log_decision(db_session: AsyncSession, *, user_id: uuid.UUID, lesson_id: uuid.UUID,
                  asset_id: uuid.UUID | None, session_id: uuid.UUID | None, decision: str,
                  reason: str) -> None:
    db_session.add(AccessLog(user_id=user_id, lesson_id=lesson_id, asset_id=asset_id,
                             session_id=session_id, decision=decision, reason=reason, at=utcnow()))
    if decision == REFUSED:
        count("playback", "access_refused")


def _refuse(db_session: AsyncSession, refusal: Refusal, *, user_id: uuid.UUID, lesson_id: uuid.UUID,
            asset_id: uuid.UUID | None, session_id: uuid.UUID | None = None) -> Refusal:
    _log_decision(db_session, user_id=user_id, lesson_id=lesson_id, asset_id=asset_id,
                  session_id=session_id, decision=REFUSED, reason=refusal.reason)
    return refusal


def manifest_url(settings: PlaybackSettings, session_id: uuid.UUID, token: str,
                 rendition: str | None = None) -> str:
    name = f"{rendition}/index.m3u8" if rendition else "master.m3u8"
    return (f"{settings.public_base_url}/api/playback/manifests/{session_id}/{name}"
            f"?token={quote(token, safe='')}")


async def start_playback(*, db_session: AsyncSession, settings: PlaybackSettings, key: signing.TokenKey,
                         catalog: ServiceClient, cache: Cache, user_id: uuid.UUID,
                         lesson: LessonInfo) -> IssuedToken | Refusal:
    """Decide, then open a playback session and sign its 90 s token; every decision is logged."""
    def refuse(error: type[DomainError], reason: str, detail: str) -> Refusal:
        return _refuse(db_session, Refusal(error, reason, detail), user_id=user_id,
                       lesson_id=lesson.lesson_id, asset_id=lesson.asset_id)

    if lesson.course_status != PUBLISHED:
        return refuse(NotFound, "course_not_published", "lesson not found")
    if not lesson.is_video or lesson.asset_id is None:
        return refuse(Unprocessable, "not_a_video_lesson", "this lesson has no video")
    reason = "preview" if lesson.is_preview else await entitlement_source(
        db_session=db_session, catalog=catalog, cache=cache, settings=settings, user_id=user_id,
        course_id=lesson.course_id)
    if reason is None:
        return refuse(Forbidden, "not_enrolled", "you are not enrolled in this course")

    now = utcnow()
    issued_at = int(now.timestamp())
    expires_at = issued_at + settings.token_ttl_seconds
    session_id = uuid.uuid4()
    mark = signing.watermark(settings.secure_link_secret.get_secret_value(), user_id, session_id)
    db_session.add(PlaybackSession(
        id=session_id, user_id=user_id, lesson_id=lesson.lesson_id, course_id=lesson.course_id,
        asset_id=lesson.asset_id, is_preview=lesson.is_preview, watermark=mark, created_at=now,
        expires_at=dt.datetime.fromtimestamp(expires_at, dt.UTC)))
    _log_decision(db_session, user_id=user_id, lesson_id=lesson.lesson_id, asset_id=lesson.asset_id,
                  session_id=session_id, decision=GRANTED, reason=reason)
    claims = signing.PlaybackClaims(user_id=user_id, session_id=session_id, asset_id=lesson.asset_id,
                                    lesson_id=lesson.lesson_id, course_id=lesson.course_id,
                                    watermark=mark)
    token = signing.sign_playback_token(key, claims=claims, issued_at=issued_at, expires_at=expires_at)
    count("playback", "tokens_issued")
    return IssuedToken(token=token, expires_in=settings.token_ttl_seconds,
                       manifest_url=manifest_url(settings, session_id, token), session_id=session_id,
                       watermark=mark)


async def authorize_manifest(*, db_session: AsyncSession, settings: PlaybackSettings,
                             catalog: ServiceClient, cache: Cache, claims: signing.PlaybackClaims,
                             session_id: uuid.UUID) -> PlaybackSession | Refusal:
    """A verified token opens only its own session, and only while the entitlement still holds."""
    def refuse(reason: str, detail: str, known_session: uuid.UUID | None = None) -> Refusal:
        return _refuse(db_session, Refusal(Forbidden, reason, detail), user_id=claims.user_id,
                       lesson_id=claims.lesson_id, asset_id=claims.asset_id, session_id=known_session)

    if claims.session_id != session_id:
        return refuse("session_mismatch", "this token belongs to another playback session")
    row = await db_session.get(PlaybackSession, session_id)
    if row is None or row.user_id != claims.user_id or row.asset_id != claims.asset_id:
        return refuse("unknown_session", "unknown playback session")
    reason = "preview" if row.is_preview else await entitlement_source(
        db_session=db_session, catalog=catalog, cache=cache, settings=settings, user_id=row.user_id,
        course_id=row.course_id)
    if reason is None:
        return refuse("not_enrolled", "you are no longer enrolled in this course", row.id)
    _log_decision(db_session, user_id=row.user_id, lesson_id=row.lesson_id, asset_id=row.asset_id,
                  session_id=row.id, decision=GRANTED, reason=f"manifest:{reason}")
    return row


# --- playlists -------------------------------------------------------------------------------


async def _read_playlist(store: LocalMediaStore, asset_id: uuid.UUID, relative: str) -> str:
    text = await store.read_text(str(asset_id), relative)
    if text is None:
        raise NotFound("playlist not found", code="playlist_not_found")
    return text


async def master_playlist(*, store: LocalMediaStore, settings: PlaybackSettings,
                          playback_session: PlaybackSession, token: str) -> str:
    """The asset's master playlist with each variant pointing at this viewer's variant route."""
    text = await _read_playlist(store, playback_session.asset_id, "master.m3u8")
    return hls.rewrite_master(
        text, lambda rendition: manifest_url(settings, playback_session.id, token, rendition))


async def media_playlist(*, store: LocalMediaStore, settings: PlaybackSettings,
                         playback_session: PlaybackSession, rendition: str,
                         now: float | None = None) -> str:
    """One rendition's playlist with absolute signed segment URLs: one signature per asset."""
    if not hls.is_valid_rendition(rendition):
        raise NotFound("rendition not found")
    text = await _read_playlist(store, playback_session.asset_id, f"{rendition}/index.m3u8")
    asset_id = str(playback_session.asset_id)
    secret = settings.secure_link_secret.get_secret_value()
    expires = hls.link_expiry(text, time.time() if now is None else now, settings.media_link_grace_seconds)
    signature = signing.media_signature(secret, asset_id, expires)
    base_url = settings.resolved_media_base_url
    return hls.rewrite_media(text, rendition, lambda path: signing.signed_media_url(
        base_url, secret, asset_id, path, expires, signature))

