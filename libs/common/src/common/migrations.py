"""Alembic per service: one env for all, the version table in the service's own schema.

Migrations run with a synchronous engine in a worker thread, so the same code serves
`make migrate`, the one-shot Kubernetes job and the embedded start-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config

from common.db import engine_options, ensure_sqlite_dir, is_sqlite_url

log = logging.getLogger(__name__)


def sync_url(url: str) -> str:
    """The synchronous driver for a URL (psycopg 3 serves both; sqlite3 instead of aiosqlite)."""
    return url.replace("sqlite+aiosqlite", "sqlite")


def alembic_config(migrations_dir: Path, url: str, schema: str | None) -> Config:
    cfg = Config()
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("version_locations", str(migrations_dir / "versions"))
    cfg.attributes["database_url"] = url
    cfg.attributes["schema"] = schema
    return cfg


IncludeObject = Callable[[Any, str | None, str, bool, Any], bool]


def run_env(target_metadata: Any, include_object: IncludeObject | None = None) -> None:
    """Body of every service's migrations/env.py.

    The outbox/inbox tables are created by `create_messaging_tables()` in each service's first
    revision and left out of autogenerate comparisons. `include_object` (Alembic's hook) lets a
    service leave out more, e.g. database-only objects its models cannot map.
    """
    cfg = context.config
    url = sync_url(cfg.attributes["database_url"])
    schema = cfg.attributes.get("schema")
    ensure_sqlite_dir(url)
    options = engine_options(url, schema)
    options.pop("pool_size", None)
    options.pop("max_overflow", None)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, **options)
    with engine.connect() as connection:
        if schema and not _schema_exists(connection, schema):
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        connection.commit()  # end the autobegun transaction so Alembic's own one commits
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            render_as_batch=is_sqlite_url(url),
            compare_type=True,
            render_item=_render_item,
            include_object=_included(include_object),
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def _included(extra: IncludeObject | None) -> IncludeObject:
    if extra is None:
        return _not_messaging_table
    return lambda *args: _not_messaging_table(*args) and extra(*args)


def _not_messaging_table(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    from common.events.tables import metadata as messaging_metadata

    table = obj if type_ == "table" else getattr(obj, "table", None)
    table_name = getattr(table, "name", name)
    # The version table lives in the service's own schema (on the search_path), so autogenerate
    # would otherwise see it as a table the models dropped.
    return table_name not in messaging_metadata.tables and table_name != "alembic_version"


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render our column types by name so generated migrations stay portable."""
    from common.db import JSONType, UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "common.db.UTCDateTime()"
    if type_ == "type" and obj is JSONType:
        return "common.db.JSONType"
    return False


def _schema_exists(connection: sa.Connection, schema: str) -> bool:
    """Checked first: the service role owns its schema but may not create schemas."""
    found = connection.execute(
        sa.text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"), {"s": schema}
    ).first()
    return found is not None


def upgrade(migrations_dir: Path, url: str, schema: str | None, revision: str = "heads") -> None:
    command.upgrade(alembic_config(migrations_dir, url, schema), revision)


async def upgrade_async(migrations_dir: Path, url: str, schema: str | None) -> None:
    """Embedded start-up: migrate without blocking the event loop."""
    await asyncio.to_thread(upgrade, migrations_dir, url, schema)
    log.info("migrations applied", extra={"schema": schema or "sqlite"})
