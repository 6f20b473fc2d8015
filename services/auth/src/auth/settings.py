"""Auth settings (env prefix AUTH_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class AuthSettings(ServiceSettings):
    service_name: ClassVar[str] = "auth"
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/data/auth.db"
    access_token_ttl_seconds: int = 900
    service_token_ttl_seconds: int = 300
    refresh_token_ttl_days: int = 30
    # "client:secret,client:secret" — the services allowed to use client credentials.
    service_clients: SecretStr = SecretStr(
        "catalog:dev-catalog-client-secret,billing:dev-billing-client-secret,"
        "playback:dev-playback-client-secret"
    )
    login_failures_per_ip_per_minute: int = 5
    login_failures_per_account_per_15_minutes: int = 10
    seed_demo_data: bool = False

    def service_client_secrets(self) -> dict[str, str]:
        pairs = [p.strip() for p in self.service_clients.get_secret_value().split(",") if p.strip()]
        return dict(pair.split(":", 1) for pair in pairs)

    def _secret_values(self) -> dict[str, str]:
        values = super()._secret_values()
        values.pop("service_clients", None)
        for client, secret in self.service_client_secrets().items():
            values[f"service_clients.{client}"] = secret
        return values
