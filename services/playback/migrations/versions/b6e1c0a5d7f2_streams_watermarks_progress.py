"""streams, watermark audit, watch progress

Revision ID: b6e1c0a5d7f2
Revises: a436dae4a49c
Create Date: 2026-11-22 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import common.db

revision: str = 'b6e1c0a5d7f2'
down_revision: str | None = 'a436dae4a49c'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('playback_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ended_at', common.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('end_reason', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('duration_seconds', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('last_position', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('last_heartbeat_at', common.db.UTCDateTime(), nullable=True))

    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.alter_column('user_id', existing_type=sa.Uuid(), nullable=True)
        batch_op.add_column(sa.Column('action', sa.String(length=16), nullable=True))

    op.create_table('watermarks_issued',
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('watermark', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('asset_id', sa.Uuid(), nullable=False),
    sa.Column('lesson_id', sa.Uuid(), nullable=False),
    sa.Column('course_id', sa.Uuid(), nullable=False),
    sa.Column('issued_at', common.db.UTCDateTime(), nullable=False),
    sa.Column('user_erased_at', common.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('session_id')
    )
    with op.batch_alter_table('watermarks_issued', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_watermarks_issued_watermark'), ['watermark'], unique=False)
        batch_op.create_index(batch_op.f('ix_watermarks_issued_user_id'), ['user_id'], unique=False)

    op.create_table('watch_progress',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('lesson_id', sa.Uuid(), nullable=False),
    sa.Column('course_id', sa.Uuid(), nullable=False),
    sa.Column('asset_id', sa.Uuid(), nullable=False),
    sa.Column('position_seconds', sa.Float(), nullable=False),
    sa.Column('watched_seconds', sa.Float(), nullable=False),
    sa.Column('duration_seconds', sa.Float(), nullable=True),
    sa.Column('updated_at', common.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('user_id', 'lesson_id')
    )
    with op.batch_alter_table('watch_progress', schema=None) as batch_op:
        batch_op.create_index('ix_watch_progress_user_course', ['user_id', 'course_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('watch_progress', schema=None) as batch_op:
        batch_op.drop_index('ix_watch_progress_user_course')
    op.drop_table('watch_progress')
    with op.batch_alter_table('watermarks_issued', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_watermarks_issued_user_id'))
        batch_op.drop_index(batch_op.f('ix_watermarks_issued_watermark'))
    op.drop_table('watermarks_issued')
    op.execute(sa.text("DELETE FROM access_log WHERE user_id IS NULL"))
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.drop_column('action')
        batch_op.alter_column('user_id', existing_type=sa.Uuid(), nullable=False)
    with op.batch_alter_table('playback_sessions', schema=None) as batch_op:
        batch_op.drop_column('last_heartbeat_at')
        batch_op.drop_column('last_position')
        batch_op.drop_column('duration_seconds')
        batch_op.drop_column('end_reason')
        batch_op.drop_column('ended_at')
