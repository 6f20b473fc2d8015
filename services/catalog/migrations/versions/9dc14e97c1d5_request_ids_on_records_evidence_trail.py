"""request ids on records (evidence trail)

Revision ID: 9dc14e97c1d5
Revises: 1b49572f0c08
Create Date: 2026-12-04 19:18:07.482246
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import common.db

revision: str = '9dc14e97c1d5'
down_revision: str | None = '1b49572f0c08'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('enrollment_history',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('enrollment_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('course_id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('order_id', sa.Uuid(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('at', common.db.UTCDateTime(), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('enrollment_history', schema=None) as batch_op:
        batch_op.create_index('ix_enrollment_history_user_course', ['user_id', 'course_id', 'at'], unique=False)

    with op.batch_alter_table('enrollment_audit', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=128), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('enrollment_audit', schema=None) as batch_op:
        batch_op.drop_column('request_id')

    with op.batch_alter_table('enrollment_history', schema=None) as batch_op:
        batch_op.drop_index('ix_enrollment_history_user_course')

    op.drop_table('enrollment_history')
