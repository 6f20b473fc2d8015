"""request ids on records (evidence trail)

Revision ID: a681cf986a15
Revises: d2c4e6f8a0b1
Create Date: 2026-12-04 19:18:11.708722
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'a681cf986a15'
down_revision: str | None = 'd2c4e6f8a0b1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=128), nullable=True))

    with op.batch_alter_table('playback_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('ended_request_id', sa.String(length=128), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('playback_sessions', schema=None) as batch_op:
        batch_op.drop_column('ended_request_id')
        batch_op.drop_column('request_id')

    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.drop_column('request_id')

