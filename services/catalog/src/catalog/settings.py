"""Catalog settings (env prefix CATALOG_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class CatalogSettings(ServiceSettings):
    """Catalog calls no other service, so `service_client_secret` stays None (no token provider)."""

    service_name: ClassVar[str] = "catalog"
    model_config = SettingsConfigDict(env_prefix="CATALOG_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/data/catalog.db"
    seed_demo_data: bool = False
