"""Playback's HTTP API (served under /api/playback at the gateway)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from common.errors import Unauthorized
from common.security import CurrentUser
from playback import hls, service, signing
from playback.api.deps import MediaStoreDep, RuntimeDep, SettingsDep, TokenKeyDep
from playback.media import HLS_PLAYLIST
from playback.models import PlaybackSession
from playback.schemas import TokenRequest, TokenResponse

router = APIRouter()

# Playlists carry per-viewer signed URLs: no shared cache may keep them.
PLAYLIST_HEADERS = {"Cache-Control": "private, no-store"}
PLAYLIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {HLS_PLAYLIST: {}}, "description": "HLS playlist"}}
PlaybackToken = Annotated[str | None, Query(max_length=4096, description="playback token from POST /token")]
Rendition = Annotated[str, Path(pattern=hls.RENDITION_PATTERN)]


def _user_id(subject: str) -> uuid.UUID:
    try:
        return uuid.UUID(subject)
    except ValueError as exc:
        raise Unauthorized("token subject is not a user", code="invalid_token") from exc


@router.post("/token", response_model=TokenResponse)
async def issue_token(body: TokenRequest, user: CurrentUser, runtime: RuntimeDep, settings: SettingsDep,
                      key: TokenKeyDep) -> TokenResponse:
    """A 90 s playback token and manifest URL for a preview lesson or an enrolled learner."""
    user_id = _user_id(user.subject)
    catalog = runtime.client("catalog")
    lesson = await service.get_lesson(catalog=catalog, cache=runtime.cache, lesson_id=body.lesson_id,
                                      cache_seconds=settings.lesson_cache_seconds)
    async with runtime.db.transaction() as session:
        outcome = await service.start_playback(db_session=session, settings=settings, key=key,
                                               catalog=catalog, cache=runtime.cache, user_id=user_id,
                                               lesson=lesson)
    if isinstance(outcome, service.Refusal):
        outcome.raise_error()
    return TokenResponse(token=outcome.token, expires_in=outcome.expires_in,
                         manifest_url=outcome.manifest_url, session_id=outcome.session_id,
                         watermark=outcome.watermark)


async def _authorized_session(runtime: RuntimeDep, settings: SettingsDep, key: TokenKeyDep,
                              session_id: uuid.UUID, token: str | None) -> PlaybackSession:
    claims = signing.verify_playback_token(key, token)
    async with runtime.db.transaction() as session:
        outcome = await service.authorize_manifest(db_session=session, settings=settings,
                                                   catalog=runtime.client("catalog"), cache=runtime.cache,
                                                   claims=claims, session_id=session_id)
    if isinstance(outcome, service.Refusal):
        outcome.raise_error()
    return outcome


@router.get("/manifests/{session_id}/master.m3u8", response_class=Response, responses=PLAYLIST_RESPONSES)
async def master_manifest(session_id: uuid.UUID, runtime: RuntimeDep, settings: SettingsDep,
                          key: TokenKeyDep, store: MediaStoreDep, token: PlaybackToken = None) -> Response:
    """The master playlist; its variants point back here, carrying the same token."""
    playback_session = await _authorized_session(runtime, settings, key, session_id, token)
    assert token is not None  # verified above
    body = await service.master_playlist(store=store, settings=settings, playback_session=playback_session,
                                         token=token)
    return Response(body, media_type=HLS_PLAYLIST, headers=PLAYLIST_HEADERS)


@router.get("/manifests/{session_id}/{rendition}/index.m3u8", response_class=Response,
            responses=PLAYLIST_RESPONSES)
async def variant_manifest(session_id: uuid.UUID, rendition: Rendition, runtime: RuntimeDep,
                           settings: SettingsDep, key: TokenKeyDep, store: MediaStoreDep,
                           token: PlaybackToken = None) -> Response:
    """One rendition's playlist with signed, absolute segment URLs."""
    playback_session = await _authorized_session(runtime, settings, key, session_id, token)
    body = await service.media_playlist(store=store, settings=settings, playback_session=playback_session,
                                        rendition=rendition)
    return Response(body, media_type=HLS_PLAYLIST, headers=PLAYLIST_HEADERS)
