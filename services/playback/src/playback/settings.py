"""Playback settings (env prefix PLAYBACK_)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings

# The committed demo asset lives next to the package in a source checkout (services/playback/media).
DEFAULT_MEDIA_ROOT = Path(__file__).resolve().parents[2] / "media"


class PlaybackSettings(ServiceSettings):
    service_name: ClassVar[str] = "playback"
    model_config = SettingsConfigDict(env_prefix="PLAYBACK_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/data/playback.db"
    service_client_secret: SecretStr | None = SecretStr("dev-playback-client-secret")

    # Where HLS assets live (<media_root>/<asset_id>/master.m3u8, <rendition>/index.m3u8, segments).
    media_root: Path = DEFAULT_MEDIA_ROOT
    # Public prefix of signed segment URLs; None means "{public_base_url}/media" (gateway or Nginx).
    media_base_url: str | None = None
    # Shared with Nginx `secure_link_md5`; also keys the watermark HMAC (with domain separation).
    secure_link_secret: SecretStr = SecretStr("dev-secure-link-secret")
    # Signed segment URLs stay valid for the media duration plus this margin (clock skew, pauses).
    media_link_grace_seconds: int = 300

    token_ttl_seconds: int = 90
    # Ed25519 private key (PEM) that signs playback tokens: a file (k8s secret mount) or the value.
    token_private_key_file: Path | None = None
    token_private_key: SecretStr | None = None
    # Outside production, a key generated on first start is kept here so restarts keep tokens valid.
    generated_token_key_file: Path = Path("var/data/playback-token-key.pem")

    lesson_cache_seconds: int = 30
    entitlement_cache_seconds: int = 30

    @property
    def resolved_media_base_url(self) -> str:
        return (self.media_base_url or f"{self.public_base_url}/media").rstrip("/")

    @model_validator(mode="after")
    def _production_needs_a_token_key(self) -> PlaybackSettings:
        if (self.environment == "production" and self.token_private_key is None
                and self.token_private_key_file is None):
            raise ValueError("production needs PLAYBACK_TOKEN_PRIVATE_KEY or PLAYBACK_TOKEN_PRIVATE_KEY_FILE")
        return self
