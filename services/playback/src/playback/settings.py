"""Playback settings (env prefix PLAYBACK_)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings

# The committed demo asset lives next to the package in a source checkout (services/playback/media).
DEFAULT_MEDIA_ROOT = Path(__file__).resolve().parents[2] / "media"


class PlaybackSettings(ServiceSettings):
    service_name: ClassVar[str] = "playback"
    model_config = SettingsConfigDict(env_prefix="PLAYBACK_", extra="ignore")

    # The peers it calls (gateway prefixes in both modes; direct service URLs in distributed mode).
    catalog_url: str = "http://127.0.0.1:8000/api/catalog"

    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///var/data/playback.db")
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
    # Manifest grants are written to the access log in batches this often (what a crash can lose:
    # playback.access_records); refusals, tokens and watermarks commit before the answer.
    access_log_flush_seconds: float = Field(default=0.5, gt=0, le=10)
    # Catalog's "enrolled" answers (the fallback before the grant event lands) are cached this long;
    # "not enrolled" never is, and a revoke event invalidates the cached "yes" (key carries the version).
    entitlement_cache_seconds: int = Field(default=5, ge=0, le=60)

    # Signed media URLs: "nginx" (secure_link md5, local and `make up`) or "cloudfront" (custom policy
    # with a wildcard resource over the asset prefix, CloudFront key group key pair).
    media_signer: Literal["nginx", "cloudfront"] = "nginx"
    cloudfront_key_pair_id: str | None = None
    cloudfront_private_key_file: Path | None = None
    cloudfront_private_key: SecretStr | None = None
    # CloudFront only: sign with cookies (set on the media playlist response) instead of query strings.
    cloudfront_signed_cookies: bool = False
    # Domain attribute of those cookies (the media host or a parent shared with the API host).
    cloudfront_cookie_domain: str | None = None

    # Concurrent streams per user, held in Redis (in memory embedded) and kept alive by heartbeats.
    max_concurrent_streams: int = Field(default=2, ge=1, le=20)
    # "refuse": the new stream gets 409; "end_oldest": the least recently active one is ended.
    stream_limit_policy: Literal["refuse", "end_oldest"] = "end_oldest"
    # Players heartbeat every `heartbeat_interval_seconds` (the contract says at least every 60 s); a
    # stream silent for `stream_idle_timeout_seconds` no longer counts and cannot be resumed.
    heartbeat_interval_seconds: int = Field(default=30, ge=5, le=60)
    stream_idle_timeout_seconds: int = Field(default=120, ge=30, le=3600)

    # --- video ingestion (playback.assets) ---
    # "local": objects under media_root (what the media app / Nginx serve); "s3": a bucket via boto3.
    storage_backend: Literal["local", "s3"] = "local"
    s3_bucket: str | None = None
    s3_key_prefix: str = ""
    s3_endpoint_url: str | None = None  # MinIO, moto, ... (None: AWS)
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None  # None: boto3's default chain (IRSA, instance role)
    s3_secret_access_key: SecretStr | None = None
    upload_max_bytes: int = Field(default=20 * 1024**3, ge=1)
    # S3: files above the threshold upload in parts (presigned part URLs + complete with the ETags);
    # S3 wants parts of at least 5 MiB and at most 10,000 of them.
    upload_multipart_threshold_bytes: int = Field(default=100 * 1024**2, ge=5 * 1024**2)
    upload_part_bytes: int = Field(default=64 * 1024**2, ge=5 * 1024**2, le=5 * 1024**3)
    upload_content_types: str = "video/mp4,video/quicktime,video/webm,video/x-matroska,video/mpeg"
    upload_url_ttl_seconds: int = 3600
    # An asset still `uploading` this long after its creation fails with `upload_expired`; its partial
    # upload is removed (an S3 multipart upload aborted). Checked every `upload_sweep_interval_seconds`
    # by the worker (distributed) or the in-process transcoder (embedded).
    upload_expiry_seconds: int = Field(default=24 * 3600, ge=60)
    upload_sweep_interval_seconds: float = Field(default=300, gt=0)
    # "auto": in the API process when there is no broker (embedded), else only `python -m playback.worker`.
    transcode_in_process: bool | None = None
    transcode_concurrency: int = 1  # jobs one worker runs at once (each is one multi-threaded ffmpeg)
    transcode_max_attempts: int = 3
    transcode_timeout_seconds: float = 3600
    transcode_retry_delay_ms: int = 5000
    transcode_segment_seconds: int = 4
    transcode_preset: str = "veryfast"
    # Every segment in A/B variants carrying a forensic mark, chosen per viewer (about
    # twice the storage and encode time); off: one variant, no per-viewer tracing in the pixels.
    forensic_watermark: bool = True
    # Largest recording an admin may upload for tracing (POST /admin/watermarks/identify).
    forensic_upload_max_bytes: int = Field(default=512 * 1024**2, ge=1)
    transcode_work_dir: Path | None = None  # scratch space for the source and outputs (None: system tmp)
    worker_host: str = "127.0.0.1"
    worker_port: int = 8000  # the worker's /health and /metrics
    # On shutdown the worker lets a running encode finish this long before it disconnects (k8s sets it
    # to the transcode timeout, with terminationGracePeriodSeconds above it).
    worker_stop_grace_seconds: float = 20

    @property
    def resolved_media_base_url(self) -> str:
        return (self.media_base_url or f"{self.public_base_url}/media").rstrip("/")

    @model_validator(mode="after")
    def _production_needs_a_token_key(self) -> PlaybackSettings:
        if (self.environment == "production" and self.token_private_key is None
                and self.token_private_key_file is None):
            raise ValueError("production needs PLAYBACK_TOKEN_PRIVATE_KEY or PLAYBACK_TOKEN_PRIVATE_KEY_FILE")
        return self

    @model_validator(mode="after")
    def _cloudfront_needs_a_key(self) -> PlaybackSettings:
        if self.media_signer == "cloudfront" and (
                not self.cloudfront_key_pair_id
                or (self.cloudfront_private_key is None and self.cloudfront_private_key_file is None)):
            raise ValueError("PLAYBACK_MEDIA_SIGNER=cloudfront needs PLAYBACK_CLOUDFRONT_KEY_PAIR_ID and "
                             "PLAYBACK_CLOUDFRONT_PRIVATE_KEY or PLAYBACK_CLOUDFRONT_PRIVATE_KEY_FILE")
        if self.upload_expiry_seconds <= self.upload_url_ttl_seconds:
            raise ValueError("upload_expiry_seconds must exceed upload_url_ttl_seconds (an upload URL "
                             "still valid must not meet an expired asset)")
        if self.stream_idle_timeout_seconds <= self.heartbeat_interval_seconds * 2:
            raise ValueError("stream_idle_timeout_seconds must exceed two heartbeat intervals")
        return self
