"""Pure pieces: the Nginx-compatible link signature, playlist rewriting, token keys and settings."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest
from pydantic import ValidationError

from common import security
from common.errors import Unauthorized
from common.testing import count_jwt_decodes
from playback import hls, signing
from playback.settings import DEFAULT_MEDIA_ROOT, PlaybackSettings

ASSET = "20000000-0000-4000-8000-000000000001"


def test_media_signature_matches_nginx_secure_link_md5() -> None:
    # echo -n '2147483647/media/<asset>/ s3cr3t-value' | openssl md5 -binary | openssl base64 | tr +/ -_ | tr -d =
    assert signing.media_signature("s3cr3t-value", ASSET, 2147483647) == "bKuLoU-YTjNWE_S71ex6JQ"


def test_media_link_verdicts() -> None:
    sig = signing.media_signature("k", ASSET, 1000)
    assert signing.media_link_valid("k", ASSET, sig, "1000", now=999) is True
    assert signing.media_link_valid("k", ASSET, sig, "1000", now=1001) is None
    assert signing.media_link_valid("k", ASSET, sig, "1001", now=999) is False
    assert signing.media_link_valid("other", ASSET, sig, "1000", now=999) is False
    assert signing.media_link_valid("k", ASSET, None, "1000", now=999) is False
    assert signing.media_link_valid("k", ASSET, sig, "-5", now=999) is False
    assert signing.media_link_valid("k", ASSET, "é" + sig, "1000", now=999) is False


def test_master_rewrite_points_variants_at_the_viewer_route() -> None:
    master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=320x180\n360p/index.m3u8\n"
    out = hls.rewrite_master(master, lambda r: f"https://x/{r}?token=t")
    assert out == "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=320x180\nhttps://x/360p?token=t\n"
    for bad in ("../360p/index.m3u8", "https://evil/360p/index.m3u8", "360p/other.m3u8", "/360p/index.m3u8"):
        with pytest.raises(hls.PlaylistError):
            hls.rewrite_master(f"#EXTM3U\n{bad}\n", lambda r: r)


def test_media_rewrite_signs_segments_and_init_sections() -> None:
    media = ('#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:4.0,\na.m4s\n'
             "#EXTINF:2.5,\nb.m4s\n#EXT-X-ENDLIST\n")
    out = hls.rewrite_media(media, "720p", lambda path: f"https://cdn/{path}?sig")
    assert '#EXT-X-MAP:URI="https://cdn/720p/init.mp4?sig"' in out
    assert hls.media_duration(media) == 6.5
    assert hls.link_expiry(media, 1000.2, 300) == 1307
    assert [line for line in out.splitlines() if not line.startswith("#")] == [
        "https://cdn/720p/a.m4s?sig", "https://cdn/720p/b.m4s?sig"]
    for bad in ("../secret.ts", "http://evil/a.ts", "/etc/passwd", "a/../../b.ts", ".hidden"):
        with pytest.raises(hls.PlaylistError):
            hls.rewrite_media(f"#EXTM3U\n#EXTINF:1,\n{bad}\n", "720p", lambda p: p)
    with pytest.raises(hls.PlaylistError):
        hls.rewrite_media("#EXTM3U\n", "../x", lambda p: p)


def test_committed_demo_asset_is_small_and_complete() -> None:
    asset = DEFAULT_MEDIA_ROOT / ASSET
    files = [p for p in asset.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 150_000
    master = hls.rewrite_master((asset / "master.m3u8").read_text(), lambda rendition: rendition)
    assert master.splitlines()[-1] == "360p" and "RESOLUTION=320x180" in master
    media = (asset / "360p" / "index.m3u8").read_text()
    assert 5.5 <= hls.media_duration(media) <= 6.5
    for name in [line for line in media.splitlines() if not line.startswith("#") and line]:
        assert (asset / "360p" / name).is_file()


def test_watermark_is_short_stable_and_per_session() -> None:
    user, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    mark = signing.watermark("k", user, first)
    assert mark == signing.watermark("k", user, first) and len(mark) == 16 and mark.isalnum()
    assert mark != signing.watermark("k", user, second) != signing.watermark("other", user, second)


def test_token_round_trip_and_pinned_key() -> None:
    key = signing.token_key_from_pem(signing.generate_pem())
    claims = signing.PlaybackClaims(user_id=uuid.uuid4(), session_id=uuid.uuid4(), asset_id=uuid.UUID(ASSET),
                                    lesson_id=uuid.uuid4(), course_id=uuid.uuid4(), watermark="WM")
    now = int(time.time())
    token = signing.sign_playback_token(key, claims=claims, issued_at=now, expires_at=now + 90)
    assert signing.verify_playback_token(key, token) == claims
    other = signing.token_key_from_pem(signing.generate_pem())
    with pytest.raises(Unauthorized):
        signing.verify_playback_token(other, token)
    with pytest.raises(Unauthorized):
        signing.verify_playback_token(key, None)
    expired = signing.sign_playback_token(key, claims=claims, issued_at=now - 200, expires_at=now - 100)
    with pytest.raises(Unauthorized) as info:
        signing.verify_playback_token(key, expired)
    assert info.value.code == "token_expired"


def test_kid_is_derived_from_the_public_key() -> None:
    pem = signing.generate_pem()
    assert signing.token_key_from_pem(pem).kid == signing.token_key_from_pem(pem).kid
    assert signing.token_key_from_pem(pem).kid != signing.token_key_from_pem(signing.generate_pem()).kid


def _new_key() -> signing.TokenKey:
    return signing.token_key_from_pem(signing.generate_pem())


def _claims() -> signing.PlaybackClaims:
    return signing.PlaybackClaims(user_id=uuid.uuid4(), session_id=uuid.uuid4(), asset_id=uuid.UUID(ASSET),
                                  lesson_id=uuid.uuid4(), course_id=uuid.uuid4(), watermark="WM")


def _signed(key: signing.TokenKey, claims: signing.PlaybackClaims) -> str:
    now = int(time.time())
    return signing.sign_playback_token(key, claims=claims, issued_at=now, expires_at=now + 90)


def test_a_verified_playback_token_is_cached_per_key_id(monkeypatch: pytest.MonkeyPatch) -> None:
    key, other = _new_key(), _new_key()
    claims = _claims()
    token = _signed(key, claims)
    decoded = count_jwt_decodes(monkeypatch)
    assert signing.verify_playback_token(key, token) == claims == signing.verify_playback_token(key, token)
    assert decoded == [token]  # the player's next playlists: from the cache
    # Cached under key's id only: another key still refuses it, and the same claims signed by
    # another key are refused by key, whatever it has cached.
    for verifying, presented in ((other, token), (key, _signed(other, claims))):
        with pytest.raises(Unauthorized) as refused:
            signing.verify_playback_token(verifying, presented)
        assert refused.value.code == "invalid_token"
    assert decoded == [token]


def test_a_cached_playback_token_past_its_expiry_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the cache's clock (common.security) moves on: PyJWT would still take the token, so
    the refusal is the cache's own `exp` check, worded as PyJWT's refusal is."""
    key = _new_key()
    token = _signed(key, _claims())  # exp: 90 s from now
    signing.verify_playback_token(key, token)
    decoded = count_jwt_decodes(monkeypatch)
    monkeypatch.setattr(security, "time", SimpleNamespace(time=lambda: time.time() + 90, monotonic=time.monotonic))
    with pytest.raises(Unauthorized) as expired:
        signing.verify_playback_token(key, token)
    assert expired.value.code == "token_expired" and expired.value.detail == "playback token expired"
    assert decoded == []


@pytest.mark.parametrize("claim", ["sub", "sid", "aid", "lid", "cid"])
def test_a_signed_playback_token_with_a_malformed_id_is_refused_and_not_cached(
        monkeypatch: pytest.MonkeyPatch, claim: str) -> None:
    """Had it been cached, its next use would fail outside the 401 handling (a 500)."""
    key = _new_key()
    payload = jwt.decode(_signed(key, _claims()), options={"verify_signature": False})
    token = jwt.encode({**payload, claim: "not-a-uuid"}, key.private_key, algorithm=signing.ALGORITHM,
                       headers={"kid": key.kid})
    decoded = count_jwt_decodes(monkeypatch)
    for _ in range(2):
        with pytest.raises(Unauthorized) as refused:
            signing.verify_playback_token(key, token)
        assert refused.value.code == "invalid_token"
    assert decoded == [token, token]


def test_development_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = PlaybackSettings(generated_token_key_file=tmp_path / "data" / "key.pem")
    first = signing.load_token_key(settings)
    assert (tmp_path / "data" / "key.pem").stat().st_mode & 0o777 == 0o600
    assert signing.load_token_key(settings).kid == first.kid
    from_file = PlaybackSettings(token_private_key_file=tmp_path / "data" / "key.pem")
    assert signing.load_token_key(from_file).kid == first.kid


def test_settings_defaults_and_production_refusals() -> None:
    settings = PlaybackSettings(public_base_url="https://academy.example")
    assert settings.resolved_media_base_url == "https://academy.example/media"
    assert settings.token_ttl_seconds == 90 and settings.entitlement_cache_seconds == 5
    assert settings.media_root == DEFAULT_MEDIA_ROOT and DEFAULT_MEDIA_ROOT.name == "media"
    assert PlaybackSettings(media_base_url="https://cdn.example/media/").resolved_media_base_url == (
        "https://cdn.example/media")
    def production(**overrides: str) -> PlaybackSettings:
        values = {"database_url": "postgresql+psycopg://u:Vq7Lm2Xr9Tz4Wp8Kd1@db/x", "environment": "production",
                  "secure_link_secret": "a-strong-link-key-8f1c2d9e7b",
                  "service_client_secret": "a-strong-client-key-77aa", **overrides}
        return PlaybackSettings.model_validate(values)

    with pytest.raises(ValidationError, match="TOKEN_PRIVATE_KEY"):
        production()
    pem = signing.generate_pem().decode()
    with pytest.raises(ValidationError, match="placeholder"):
        production(secure_link_secret="dev-secure-link-secret", token_private_key=pem)
    assert production(token_private_key=pem).token_private_key is not None


def test_media_template_fills_like_a_rewrite() -> None:
    media = ('#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:4.0,\na.m4s\n#EXTINF:2.5,\nb.m4s\n#EXT-X-ENDLIST\n')
    template = hls.media_template(media, "720p")
    assert hls.fill_template(template, "https://cdn/x/", "?sig=1") == hls.rewrite_media(
        media, "720p", lambda path: f"https://cdn/x/{path}?sig=1")
    with pytest.raises(hls.PlaylistError):
        hls.media_template("#EXTM3U\n#EXTINF:1,\na\x00.ts\n", "720p")
    with pytest.raises(hls.PlaylistError):
        hls.media_template("#EXTM3U\n#EXT-X-FOO:\x01\n", "720p")
