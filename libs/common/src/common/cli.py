"""The commands every service has (`python -m <service> migrate`), one implementation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from common import migrations
from common.runtime import open_bus
from common.settings import ServiceSettings


def migrate(settings: ServiceSettings, migrations_dir: Path, consumed: Iterable[str]) -> None:
    """Apply the schema migrations, then declare the service's queues so no event is missed."""
    migrations.upgrade(migrations_dir, settings.database_url.get_secret_value(), settings.db_schema)
    keys = list(dict.fromkeys(consumed))
    if settings.broker_url and keys:
        asyncio.run(_declare(settings, keys))


async def _declare(settings: ServiceSettings, keys: list[str]) -> None:
    bus = open_bus(settings)
    await bus.start()
    try:
        await bus.declare(settings.service_name, keys)
    finally:
        await bus.close()
