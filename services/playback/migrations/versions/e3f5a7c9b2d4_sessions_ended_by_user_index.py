"""sessions by user, end reason and end time (the stream-limit check of a token)

Revision ID: e3f5a7c9b2d4
Revises: a681cf986a15
Create Date: 2026-12-04 21:35:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = 'e3f5a7c9b2d4'
down_revision: str | None = 'a681cf986a15'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_playback_sessions_user_ended', 'playback_sessions',
                    ['user_id', 'end_reason', 'ended_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_playback_sessions_user_ended', table_name='playback_sessions')
