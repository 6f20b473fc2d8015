"""video assets (ingestion: upload, transcode, lifecycle)

Revision ID: 7c1e0a2f9b31
Revises: a436dae4a49c
Create Date: 2026-11-22 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import common.db

revision: str = '7c1e0a2f9b31'
down_revision: str | None = 'a436dae4a49c'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('video_assets',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('owner_id', sa.Uuid(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('upload_id', sa.String(length=1024), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('progress', sa.SmallInteger(), nullable=False),
    sa.Column('attempts', sa.SmallInteger(), nullable=False),
    sa.Column('failure_reason', sa.String(length=500), nullable=True),
    sa.Column('duration_seconds', sa.Float(), nullable=True),
    sa.Column('renditions', common.db.JSONType, nullable=True),
    sa.Column('has_thumbnail', sa.Boolean(), nullable=False),
    sa.Column('created_at', common.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', common.db.UTCDateTime(), nullable=False),
    sa.Column('uploaded_at', common.db.UTCDateTime(), nullable=True),
    sa.Column('ready_at', common.db.UTCDateTime(), nullable=True),
    sa.Column('deleted_at', common.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('video_assets', schema=None) as batch_op:
        batch_op.create_index('ix_video_assets_owner_created', ['owner_id', 'created_at'], unique=False)
        batch_op.create_index('ix_video_assets_status', ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('video_assets', schema=None) as batch_op:
        batch_op.drop_index('ix_video_assets_status')
        batch_op.drop_index('ix_video_assets_owner_created')
    op.drop_table('video_assets')
