"""Playback's HTTP API (served under /api/playback at the gateway; /internal/* is for services only)."""

from __future__ import annotations

import logging
import tempfile
import uuid
from pathlib import Path as FilePath
from typing import Annotated, Any

import aiofiles
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response

from common.bounds import INT64_MAX
from common.errors import NotFound, PayloadTooLarge, Unauthorized, Unprocessable, UnsupportedMediaType
from common.security import AdminUser, CurrentUser, Principal, require_service
from playback import hls, leaks, service, signing
from playback.api.deps import (
    MediaStoreDep,
    ResourcesDep,
    RuntimeDep,
    SettingsDep,
    StreamsDep,
)
from playback.assets.routes import StorageDep
from playback.media import HLS_PLAYLIST
from playback.resources import PlaybackResources
from playback.schemas import (
    CourseProgress,
    HeartbeatRequest,
    HeartbeatResponse,
    ProgressTotals,
    TokenRequest,
    TokenResponse,
    WatermarkLookup,
    WatermarkRecord,
    WatermarkTrace,
)

log = logging.getLogger(__name__)

router = APIRouter()

# Playlists carry per-viewer signed URLs: no shared cache may keep them.
PLAYLIST_HEADERS = {"Cache-Control": "private, no-store"}
PLAYLIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {HLS_PLAYLIST: {}}, "description": "HLS playlist"}}
PlaybackToken = Annotated[str | None, Query(max_length=4096, description="playback token from POST /token")]
Rendition = Annotated[str, Path(max_length=32, pattern=hls.RENDITION_PATTERN)]
# signing.watermark: base32 of 10 bytes.
Watermark = Annotated[str, Path(max_length=16, pattern=r"^[A-Za-z2-7]{16}$")]
BillingService = Annotated[Principal, Depends(require_service("billing"))]


def _user_id(subject: str) -> uuid.UUID:
    try:
        return uuid.UUID(subject)
    except ValueError as exc:
        raise Unauthorized("token subject is not a user", code="invalid_token") from exc


@router.post("/token", response_model=TokenResponse,
             responses={403: {"description": "not enrolled"}, 409: {"description": "too many streams"}})
async def issue_token(body: TokenRequest, user: CurrentUser, runtime: RuntimeDep, settings: SettingsDep,
                      resources: ResourcesDep) -> TokenResponse:
    """A 90 s playback token and manifest URL for a preview lesson or an enrolled learner.

    Takes one of the user's concurrent stream slots (409 `too_many_streams` under the "refuse"
    policy, or the least recently active stream ends under "end_oldest").
    """
    user_id = _user_id(user.subject)
    catalog = runtime.client("catalog")
    try:
        lesson = await service.get_lesson(catalog=catalog, cache=resources.lessons, lesson_id=body.lesson_id,
                                          cache_seconds=settings.lesson_cache_seconds)
    except NotFound as exc:
        async with runtime.db.transaction() as session:
            service.log_refusal(session, action="token", user_id=user_id, lesson_id=body.lesson_id,
                                reason=exc.code or "lesson_not_found")
        raise
    entitlement, resume = None, 0.0
    ended_elsewhere: tuple[str, ...] = ()
    if lesson.course_status == service.PUBLISHED and lesson.is_video:
        facts = await service.token_facts(db=runtime.db, user_id=user_id, course_id=lesson.course_id,
                                          lesson_id=lesson.lesson_id,
                                          stream_idle_timeout_seconds=settings.stream_idle_timeout_seconds)
        resume, ended_elsewhere = facts.resume_position, facts.ended_elsewhere
        entitlement = await service.decide_entitlement(
            catalog=catalog, cache=runtime.cache, settings=settings, user_id=user_id, course_id=lesson.course_id,
            is_preview=lesson.is_preview, held=facts.entitlement)
    duration = None
    if entitlement is not None and lesson.asset_id is not None:  # read from storage, before the transaction
        duration = await service.asset_duration(store=resources.media, cache=runtime.cache, asset_id=lesson.asset_id)
    outcome = await service.start_playback(db=runtime.db, settings=settings, key=resources.token_key,
                                           streams=resources.streams,
                                           user_id=user_id, lesson=lesson, entitlement=entitlement,
                                           duration=duration, resume_position=resume,
                                           ended_elsewhere=ended_elsewhere)
    if isinstance(outcome, service.Refusal):
        outcome.raise_error()
    return TokenResponse(token=outcome.token, expires_in=outcome.expires_in,
                         manifest_url=outcome.manifest_url, session_id=outcome.session_id,
                         watermark=outcome.watermark, resume_position_seconds=outcome.resume_position_seconds,
                         heartbeat_interval_seconds=settings.heartbeat_interval_seconds)


async def _authorized_session(runtime: RuntimeDep, settings: SettingsDep, resources: PlaybackResources,
                              session_id: uuid.UUID, token: str | None) -> service.ManifestSession:
    try:
        claims = signing.verify_playback_token(resources.token_key, token)
    except Unauthorized as exc:  # no trustworthy user to write down: metrics only
        service.ACCESS_DECISIONS.labels("manifest", "refused", exc.code or "invalid_token").inc()
        raise
    outcome = await service.authorize_manifest(
        db=runtime.db, catalog=runtime.client("catalog"), cache=runtime.cache, settings=settings,
        streams=resources.streams, recorder=resources.access_records, claims=claims, session_id=session_id)
    if isinstance(outcome, service.Refusal):
        outcome.raise_error()
    return outcome


@router.get("/manifests/{session_id}/master.m3u8", response_class=Response, responses=PLAYLIST_RESPONSES)
async def master_manifest(session_id: uuid.UUID, runtime: RuntimeDep, settings: SettingsDep,
                          resources: ResourcesDep, token: PlaybackToken = None) -> Response:
    """The master playlist; its variants point back here, carrying the same token."""
    playback_session = await _authorized_session(runtime, settings, resources, session_id, token)
    assert token is not None  # verified above
    body = await service.master_playlist(store=resources.media, settings=settings, playback_session=playback_session,
                                         token=token)
    return Response(body, media_type=HLS_PLAYLIST, headers=PLAYLIST_HEADERS)


@router.get("/manifests/{session_id}/{rendition}/index.m3u8", response_class=Response,
            responses=PLAYLIST_RESPONSES)
async def variant_manifest(session_id: uuid.UUID, rendition: Rendition, runtime: RuntimeDep,
                           settings: SettingsDep, resources: ResourcesDep, token: PlaybackToken = None) -> Response:
    """One rendition's playlist with signed, absolute media URLs (or CloudFront signed cookies)."""
    playback_session = await _authorized_session(runtime, settings, resources, session_id, token)
    body, cookies = await service.media_playlist(store=resources.media, settings=settings,
                                                 signer=resources.media_signer,
                                                 playback_session=playback_session, rendition=rendition)
    response = Response(body, media_type=HLS_PLAYLIST, headers=PLAYLIST_HEADERS)
    for cookie in cookies:
        response.headers.append("set-cookie", cookie)
    return response


@router.post("/sessions/{session_id}/heartbeat", response_model=HeartbeatResponse,
             responses={404: {"description": "not your session"},
                        410: {"description": "the session has ended: stop the player"}})
async def session_heartbeat(session_id: uuid.UUID, body: HeartbeatRequest, user: CurrentUser,
                            runtime: RuntimeDep, settings: SettingsDep, streams: StreamsDep) -> HeartbeatResponse:
    """Keep this stream alive (at least every 60 s) and record the position for progress/resume."""
    async with runtime.db.transaction() as session:
        outcome = await service.heartbeat(db_session=session, settings=settings, streams=streams,
                                          user_id=_user_id(user.subject), session_id=session_id,
                                          position=body.position_seconds)
    if isinstance(outcome, service.Refusal):
        outcome.raise_error()
    return HeartbeatResponse(session_id=outcome.session_id, position_seconds=outcome.position_seconds,
                             watched_seconds=outcome.watched_seconds, watermark=outcome.watermark,
                             heartbeat_interval_seconds=settings.heartbeat_interval_seconds)


@router.post("/sessions/{session_id}/stop", status_code=204, response_class=Response)
async def stop_session(session_id: uuid.UUID, user: CurrentUser, runtime: RuntimeDep, streams: StreamsDep,
                       body: HeartbeatRequest | None = None) -> Response:
    """End this stream now and free its slot (idempotent); an optional final position is recorded."""
    async with runtime.db.transaction() as session:
        await service.stop(db_session=session, streams=streams, user_id=_user_id(user.subject),
                           session_id=session_id, position=body.position_seconds if body else None)
    return Response(status_code=204)


async def _course_progress(runtime: RuntimeDep, settings: SettingsDep, store: MediaStoreDep,
                           user_id: uuid.UUID, course_id: uuid.UUID) -> CourseProgress:
    course = await service.get_course_lessons(catalog=runtime.client("catalog"), cache=runtime.cache,
                                              course_id=course_id, cache_seconds=settings.lesson_cache_seconds)
    return await service.course_progress(db=runtime.db, course=course, store=store, cache=runtime.cache,
                                         user_id=user_id)


@router.get("/progress", response_model=CourseProgress)
async def my_progress(course_id: uuid.UUID, user: CurrentUser, runtime: RuntimeDep, settings: SettingsDep,
                      store: MediaStoreDep) -> CourseProgress:
    """The caller's resume positions and completion of a course (kept across refunds)."""
    return await _course_progress(runtime, settings, store, _user_id(user.subject), course_id)


@router.get("/internal/progress", response_model=ProgressTotals, tags=["internal"])
async def internal_progress(user_id: uuid.UUID, course_id: uuid.UUID, _caller: BillingService,
                            runtime: RuntimeDep, settings: SettingsDep, store: MediaStoreDep) -> ProgressTotals:
    """How much of a course a user has watched (billing's self-refund policy reads watched_ratio)."""
    progress = await _course_progress(runtime, settings, store, user_id, course_id)
    return ProgressTotals.model_validate(progress.model_dump(include=set(ProgressTotals.model_fields)))


@router.get("/admin/watermarks/{watermark}", response_model=WatermarkLookup)
async def lookup_watermark(watermark: Watermark, admin: AdminUser, runtime: RuntimeDep) -> WatermarkLookup:
    """Which playback session (user, asset, time) was handed this watermark: leak forensics."""
    mark = watermark.upper()
    async with runtime.db.session() as session:
        rows = await service.watermark_sessions(db_session=session, watermark=mark)
    log.info("watermark lookup", extra={"admin": admin.subject, "watermark": mark, "found": len(rows)})
    return WatermarkLookup(watermark=mark, sessions=[WatermarkRecord.model_validate(row, from_attributes=True)
                                                     for row in rows])


@router.post("/admin/watermarks/identify", response_model=WatermarkTrace,
             responses={413: {"description": "recording too large"}, 415: {"description": "not a video upload"},
                        422: {"description": "not decodable as video"}})
async def identify_recording(request: Request, admin: AdminUser, runtime: RuntimeDep, settings: SettingsDep,
                             storage: StorageDep,
                             content_type: Annotated[str, Header(max_length=255)],
                             content_length: Annotated[int | None,
                                                       Header(ge=0, le=INT64_MAX, include_in_schema=False)] = None,
                             asset_id: uuid.UUID | None = None) -> WatermarkTrace:
    """Trace a leaked recording (the raw video as the body, at most PLAYBACK_FORENSIC_UPLOAD_MAX_BYTES)
    to the session whose A/B marks it carries; admins only, every run logged."""
    limit = settings.forensic_upload_max_bytes
    if not content_type.split(";")[0].strip().lower().startswith("video/"):
        raise UnsupportedMediaType("send the recording as video/* (the raw file as the body)",
                                   code="unsupported_content_type")
    if content_length is not None and content_length > limit:
        raise PayloadTooLarge(f"recordings are limited to {limit} bytes", code="recording_too_large",
                              max_bytes=limit)
    with tempfile.TemporaryDirectory(dir=settings.transcode_work_dir) as tmp:
        path = FilePath(tmp) / "recording"
        received = 0
        async with aiofiles.open(path, "wb") as handle:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise PayloadTooLarge(f"recordings are limited to {limit} bytes", code="recording_too_large",
                                          max_bytes=limit)
                await handle.write(chunk)
        try:
            trace = await leaks.identify_recording(db=runtime.db, storage=storage,
                                                   settings=settings, recording=path, asset_id=asset_id)
        except ValueError as exc:
            raise Unprocessable(str(exc), code="not_a_video") from exc
    log.info("watermark trace", extra={"admin": admin.subject, "outcome": trace.outcome,
                                       "asset_id": str(trace.asset_id), "bytes": received})
    return trace
