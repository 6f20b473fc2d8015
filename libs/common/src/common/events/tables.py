"""Outbox and inbox tables; every service's schema has one of each (see its first migration)."""

from __future__ import annotations

import sqlalchemy as sa

from common.db import JSONType, UTCDateTime

metadata = sa.MetaData()

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("routing_key", sa.String(200), nullable=False),
    sa.Column("envelope", JSONType, nullable=False),
    sa.Column("headers", JSONType, nullable=False, default=dict),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("published_at", UTCDateTime, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("dead_at", UTCDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Index(
        "ix_outbox_pending",
        "created_at",
        postgresql_where=sa.text("published_at IS NULL AND dead_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL AND dead_at IS NULL"),
    ),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("routing_key", sa.String(200), nullable=False),
    sa.Column("processed_at", UTCDateTime, nullable=False),
)


def create_messaging_tables() -> None:
    """Called from each service's first Alembic revision so the DDL is written once."""
    from alembic import op

    metadata.create_all(op.get_bind(), tables=[outbox, inbox])


def drop_messaging_tables() -> None:
    from alembic import op

    metadata.drop_all(op.get_bind(), tables=[inbox, outbox])
