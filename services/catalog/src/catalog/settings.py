"""Catalog settings (env prefix CATALOG_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class CatalogSettings(ServiceSettings):
    """Catalog calls auth only for the admin's backfill of learner names (`service_client_secret`)."""

    service_name: ClassVar[str] = "catalog"
    model_config = SettingsConfigDict(env_prefix="CATALOG_", extra="ignore")

    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///var/data/catalog.db")
    service_client_secret: SecretStr | None = SecretStr("dev-catalog-client-secret")
    seed_demo_data: bool = False
    # When true, instructors submit courses for review and only admins publish them.
    require_review: bool = False
    # Public list/detail answers kept in the cache (0 turns the cache off); invalidation is explicit,
    # this is only the safety net.
    public_cache_ttl_seconds: float = 60.0
    # Cache-Control max-age of anonymous reads: the edge may serve a published change this late.
    public_max_age_seconds: int = 1
