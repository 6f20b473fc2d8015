"""What catalog opens besides the shared runtime, typed: read by routes through `ResourcesDep`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from catalog import demo, querycount
from catalog.public_cache import PublicCache
from catalog.settings import CatalogSettings
from common.app import OpenResources
from common.runtime import Runtime


@dataclass(frozen=True)
class CatalogResources:
    public_cache: PublicCache


def open_resources(settings: CatalogSettings) -> OpenResources:
    """The query counter, the public response cache (invalidated after each commit) and, embedded,
    the demo data: all before the first request."""

    @asynccontextmanager
    async def open_catalog(runtime: Runtime) -> AsyncIterator[CatalogResources]:
        querycount.install(runtime.db.engine)
        public_cache = PublicCache(runtime.cache, settings.public_cache_ttl_seconds,
                                   near_seconds=settings.public_max_age_seconds)
        runtime.db.on_commit(public_cache.after_commit)
        if settings.seed_demo_data:
            async with runtime.db.startup_transaction("demo-seed") as session:
                await demo.seed(db_session=session)
        yield CatalogResources(public_cache=public_cache)

    return open_catalog
