"""One settings base for every service, so each is configured the same way (env prefix per service)."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.db import is_sqlite_url

# Values that only ever belong on a laptop; production refuses to start with any of them.
PLACEHOLDER_MARKERS = ("change-me", "changeme", "dev-", "placeholder", "insecure", "secret")
# Connection URLs: secrets because they carry a password; only that password is checked for placeholders.
DSN_FIELDS = ("database_url", "redis_url", "broker_url")


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set `model_config` with their own env prefix."""

    service_name: ClassVar[str] = "service"

    # hide_input_in_errors: a refused setting must not print the URLs and secrets beside it.
    model_config = SettingsConfigDict(extra="ignore", secrets_dir=None, hide_input_in_errors=True)

    def __init__(self, **values: Any) -> None:
        """`<PREFIX>SECRETS_DIR` (e.g. AUTH_SECRETS_DIR=/run/secrets/auth) names a folder of secret files,
        one per setting named like its variable (AUTH_DATABASE_URL), as a mounted Secret provides them;
        the environment still wins over a file."""
        if "_secrets_dir" not in values:
            prefix = str(type(self).model_config.get("env_prefix", ""))
            secrets_dir = os.environ.get(f"{prefix}SECRETS_DIR")
            if secrets_dir:
                values["_secrets_dir"] = secrets_dir
        super().__init__(**values)

    environment: Literal["development", "test", "production"] = Field(
        default="development", validation_alias=AliasChoices("ENVIRONMENT", "environment")
    )
    # Embedded: SQLite file, in-process events, in-memory cache. Distributed: PostgreSQL/RabbitMQ/Redis.
    # DSNs are secrets (they carry passwords): `repr(settings)` and logs show them masked.
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///var/data/service.db")
    database_schema: str | None = None
    # Connections per process, all kept open once used (no overflow: see common.db.engine_options).
    database_pool_size: int = 10
    # A stalled or unreachable database costs a request seconds, then 503 (docs/faults.md).
    database_connect_timeout_seconds: float = 3.0
    database_pool_timeout_seconds: float = 3.0
    database_statement_timeout_seconds: float = 5.0
    migrate_on_start: bool | None = None
    redis_url: SecretStr | None = None
    redis_key_prefix: str = ""
    broker_url: SecretStr | None = None
    broker_exchange: str = "triple.events"
    broker_queue_prefix: str = ""
    broker_max_attempts: int = 5
    broker_retry_delay_ms: int = 2000

    # The identity provider every service verifies tokens against (JWKS) and takes its service token
    # from. The other peers a service calls are fields of its own settings (`<peer>_url`, read by
    # `Runtime.client(peer)`).
    auth_url: str = "http://127.0.0.1:8000/api/auth"
    public_base_url: str = "http://127.0.0.1:8000"

    jwt_issuer: str = "triple-academy-auth"
    jwt_audience: str = "triple-api"
    jwks_cache_seconds: int = 300
    jwks_refetch_cooldown_seconds: float = 10.0
    # How long a revoked user's old access tokens stay refused: longer than any access token lives.
    token_revocation_ttl_seconds: float = 3600.0

    # Client-credentials secret this service uses to call others; None means it calls nobody.
    service_client_secret: SecretStr | None = None
    http_timeout_seconds: float = 3.0
    http_retries: int = 2

    # Outgoing mail: SMTP when a host is set (distributed), otherwise written to the log (embedded).
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "Triple Academy <no-reply@triple.academy>"

    log_level: str = "INFO"
    log_json: bool = True
    otlp_endpoint: str | None = None

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite_url(self.database_url.get_secret_value())

    @property
    def db_schema(self) -> str | None:
        """PostgreSQL schema of this service; SQLite has none (one file per service)."""
        if self.is_sqlite:
            return None
        return self.database_schema or self.service_name

    @property
    def should_migrate_on_start(self) -> bool:
        """Embedded (SQLite) migrates on start; distributed runs migrations as a separate step."""
        if self.migrate_on_start is not None:
            return self.migrate_on_start
        return self.is_sqlite

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.environment != "production":
            return self
        bad = [name for name, value in self._secret_values().items() if _is_placeholder(value)]
        if bad:
            raise ValueError(f"placeholder secrets are not allowed in production: {', '.join(bad)}")
        if self.is_sqlite:
            raise ValueError("production needs PostgreSQL, not SQLite")
        return self

    def _secret_values(self) -> dict[str, str]:
        """Every secret to check: whole values, and of a connection URL only its password (a URL
        without one, e.g. certificate or IAM authentication, has nothing to check)."""
        values: dict[str, str] = {}
        for name in type(self).model_fields:
            value: Any = getattr(self, name)
            if not isinstance(value, SecretStr):
                continue
            if name not in DSN_FIELDS:
                values[name] = value.get_secret_value()
            elif (password := _url_password(value.get_secret_value())) is not None:
                values[f"{name} (password)"] = password
        return values


SERVICE_NAMES = ("auth", "catalog", "billing", "playback")


def composed_urls(base_url: str) -> dict[str, str]:
    """Settings for a service whose peers are all mounted under `<base_url>/api/<name>` (the embedded
    gateway and the in-process test platforms)."""
    base = base_url.rstrip("/")
    return {"public_base_url": base, **{f"{name}_url": f"{base}/api/{name}" for name in SERVICE_NAMES}}


def _is_placeholder(value: str) -> bool:
    lowered = value.lower()
    return len(value) < 16 or any(marker in lowered for marker in PLACEHOLDER_MARKERS)


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None
