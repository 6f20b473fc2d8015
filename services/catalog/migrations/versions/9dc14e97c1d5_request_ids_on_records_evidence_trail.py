"""request ids on records (evidence trail)

Revision ID: 9dc14e97c1d5
Revises: 1b49572f0c08
Create Date: 2026-12-04 19:18:07.482246
"""

import uuid
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
    # Enrollments from before the history: their current state as its one known step (its cause
    # unknown), so a trail shows the access these learners hold or lost.
    enrollments = sa.table('enrollments', sa.column('id', sa.Uuid()), sa.column('user_id', sa.Uuid()),
                           sa.column('course_id', sa.Uuid()), sa.column('status', sa.String()),
                           sa.column('source', sa.String()), sa.column('order_id', sa.Uuid()),
                           sa.column('version', sa.Integer()), sa.column('updated_at', common.db.UTCDateTime()))
    history = sa.table('enrollment_history', sa.column('id', sa.Uuid()), sa.column('enrollment_id', sa.Uuid()),
                       sa.column('user_id', sa.Uuid()), sa.column('course_id', sa.Uuid()),
                       sa.column('action', sa.String()), sa.column('source', sa.String()),
                       sa.column('order_id', sa.Uuid()), sa.column('version', sa.Integer()),
                       sa.column('at', common.db.UTCDateTime()))
    rows = op.get_bind().execute(sa.select(enrollments)).all()
    if rows:
        op.bulk_insert(history, [{
            'id': uuid.uuid4(), 'enrollment_id': row.id, 'user_id': row.user_id, 'course_id': row.course_id,
            'action': 'granted' if row.status == 'active' else 'revoked', 'source': row.source[:32],
            'order_id': row.order_id, 'version': row.version, 'at': row.updated_at} for row in rows])



def downgrade() -> None:
    with op.batch_alter_table('enrollment_audit', schema=None) as batch_op:
        batch_op.drop_column('request_id')

    with op.batch_alter_table('enrollment_history', schema=None) as batch_op:
        batch_op.drop_index('ix_enrollment_history_user_course')

    op.drop_table('enrollment_history')
