"""Per-viewer playlists: the manifest checks the token and entitlement, then signs the asset's prefix once."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

from cachetools import TTLCache

from common.errors import NotFound
from common.observability.metrics import count
from playback import forensic, hls
from playback.cdn import MediaSigner
from playback.media import LocalMediaStore
from playback.settings import PlaybackSettings

from .decisions import manifest_url
from .entitlements import ManifestSession


async def _read_playlist(store: LocalMediaStore, asset_id: uuid.UUID, relative: str) -> str:
    text = await store.read_text(str(asset_id), relative)
    if text is None:
        raise NotFound("playlist not found", code="playlist_not_found")
    return text


async def master_playlist(*, store: LocalMediaStore, settings: PlaybackSettings,
                          playback_session: ManifestSession, token: str) -> str:
    """The asset's master playlist with each variant pointing at this viewer's variant route."""
    text = await _packaged(store, playback_session.asset_id, "master.m3u8", str)
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


# (media root, asset, playlist path) -> what was built from that packaged playlist. Packaged
# playlists never change under their asset id; the short lifetime bounds what a deleted asset
# leaves behind. A file read is a thread-pool hop: it was a tenth of a master playlist's CPU.
TEMPLATE_CACHE_SECONDS = 60.0
TEMPLATE_CACHE_ENTRIES = 1024
_PACKAGED: TTLCache[tuple[str, str, str], object] = TTLCache(maxsize=TEMPLATE_CACHE_ENTRIES,
                                                            ttl=TEMPLATE_CACHE_SECONDS)
Built = TypeVar("Built")


async def _packaged(store: LocalMediaStore, asset_id: uuid.UUID, relative: str, build: Callable[[str], Built]) -> Built:
    key = (str(store.root), str(asset_id), relative)
    hit = _PACKAGED.get(key)
    if hit is None:
        hit = _PACKAGED[key] = build(await _read_playlist(store, asset_id, relative))
    return cast(Built, hit)


async def _media_template(store: LocalMediaStore, asset_id: uuid.UUID, rendition: str,
                          names_key: bytes = b"") -> _MediaTemplate:
    def build(text: str) -> _MediaTemplate:
        template = hls.media_template(text, rendition)
        return _MediaTemplate(template=template, duration=hls.media_duration(text),
                              ab=forensic.ab_template(template, key=names_key, asset_id=str(asset_id)))

    return await _packaged(store, asset_id, f"{rendition}/index.m3u8", build)


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
