"""Auth settings (env prefix AUTH_)."""

from __future__ import annotations

import logging
from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings

log = logging.getLogger(__name__)


class AuthSettings(ServiceSettings):
    service_name: ClassVar[str] = "auth"
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore")

    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///var/data/auth.db")

    # Tokens. Access tokens are short-lived JWTs; refresh tokens are opaque, rotated on every use,
    # and live at most `refresh_token_ttl_days` (absolute) and `refresh_token_idle_hours` unused.
    access_token_ttl_seconds: int = 900
    service_token_ttl_seconds: int = 300
    refresh_token_ttl_days: int = 30
    refresh_token_idle_hours: int = 7 * 24
    # A rotated refresh token presented again within this many seconds is a concurrent refresh
    # (two tabs, a retry): refused, but the session survives. Later, it is reuse: the family dies.
    refresh_reuse_grace_seconds: float = 5.0

    # Browser clients: the refresh token in an httpOnly, Secure, SameSite=Strict cookie scoped to
    # `<public prefix>/refresh`. Endpoints that read it check Origin (or Referer) against
    # `allowed_origins` (comma-separated; default: the origin of public_base_url).
    refresh_cookie_name: str = "__Secure-triple-refresh"
    refresh_cookie_secure: bool = True
    refresh_cookie_path: str | None = None  # default: the app's root path (gateway prefix) + /refresh
    allowed_origins: str = ""

    # Signing keys: a new key is published in JWKS `key_activation_delay_seconds` before it signs
    # (every verifier's JWKS cache has refreshed by then), the old one stays published until its
    # last token expired. Private keys are encrypted at rest with AES-256-GCM under the first of
    # `signing_key_encryption_keys` (comma-separated, base64url 32-byte keys; the others still
    # decrypt, for KEK rotation with `python -m auth keys rewrap`).
    key_activation_delay_seconds: int = 900
    signing_key_encryption_keys: SecretStr | None = None
    signing_key_cache_seconds: float = 30.0

    # "client:secret,client:secret" — the services allowed to use client credentials (auth too:
    # it asks the others for their parts of a learner's data export).
    service_clients: SecretStr = SecretStr(
        "catalog:dev-catalog-client-secret,billing:dev-billing-client-secret,"
        "playback:dev-playback-client-secret,auth:dev-auth-client-secret"
    )
    service_client_secret: SecretStr | None = SecretStr("dev-auth-client-secret")
    # The peers auth asks for their parts of a learner's data export.
    catalog_url: str = "http://127.0.0.1:8000/api/catalog"
    billing_url: str = "http://127.0.0.1:8000/api/billing"
    playback_url: str = "http://127.0.0.1:8000/api/playback"

    # Passwords: argon2id, OWASP Password Storage Cheat Sheet (m=19 MiB, t=2, p=1). Changing them
    # rehashes each account at its next successful login.
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19 * 1024
    argon2_parallelism: int = 1
    # Threads that hash (each holds memory_kib while it runs); default: one per CPU but one.
    password_hash_threads: int | None = None
    password_min_length: int = 8
    password_max_length: int = 256

    # Abuse resistance (Redis in distributed mode, memory embedded; every key expires).
    login_failures_per_ip_per_minute: int = 5
    login_failures_per_account_per_15_minutes: int = 10
    password_reset_requests_per_ip_per_hour: int = 20
    password_reset_requests_per_account_per_hour: int = 3
    verification_mails_per_account_per_hour: int = 5
    password_checks_per_account_per_15_minutes: int = 5
    # Proxies whose X-Real-IP is believed (the gateway); anyone else is their socket address.
    # Loopback only by default: `make run` serves the LAN directly, and a private-range default
    # would let any host there pick its own per-IP login budget. Deployments whose gateway sits
    # on a pod or container network name it (k8s/base/auth, infra/compose).
    trusted_proxies: str = "127.0.0.1/32,::1/128"

    # Single-use mailed tokens.
    email_verification_ttl_hours: int = 48
    password_reset_ttl_minutes: int = 30
    email_change_ttl_hours: int = 24
    # Where the links in mails point (the web frontend); default: public_base_url.
    frontend_url: str | None = None

    seed_demo_data: bool = False

    @model_validator(mode="after")
    def _check_auth_settings(self) -> AuthSettings:
        if self.password_min_length < 8 or self.password_max_length < 64:
            raise ValueError("password length limits below ASVS minimums (8 to at least 64)")
        if self.environment == "production" and not self.smtp_host:
            raise ValueError("production needs AUTH_SMTP_HOST: without it verification and reset codes "
                             "would be written to the log")
        if self.environment == "production" and self.signing_key_encryption_keys is None:
            raise ValueError("production needs AUTH_SIGNING_KEY_ENCRYPTION_KEYS: signing keys are never stored "
                             "unencrypted there (generate one with `python -m auth keys generate-kek`)")
        return self

    def service_client_secrets(self) -> dict[str, str]:
        pairs = [p.strip() for p in self.service_clients.get_secret_value().split(",") if p.strip()]
        return dict(pair.split(":", 1) for pair in pairs)

    def origins(self) -> set[str]:
        configured = {o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()}
        return configured or {_origin(self.public_base_url)}

    def link_base(self) -> str:
        return (self.frontend_url or self.public_base_url).rstrip("/")

    def _secret_values(self) -> dict[str, str]:
        values = super()._secret_values()
        values.pop("service_clients", None)
        for client, secret in self.service_client_secrets().items():
            values[f"service_clients.{client}"] = secret
        return values


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
