"""request ids on records (evidence trail)

Revision ID: f9f3972ea8a3
Revises: d37fb7eb0130
Create Date: 2026-12-04 19:18:04.940205
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'f9f3972ea8a3'
down_revision: str | None = 'd37fb7eb0130'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('order_audit', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=128), nullable=True))

    with op.batch_alter_table('order_refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=128), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('order_refunds', schema=None) as batch_op:
        batch_op.drop_column('request_id')

    with op.batch_alter_table('order_audit', schema=None) as batch_op:
        batch_op.drop_column('request_id')

