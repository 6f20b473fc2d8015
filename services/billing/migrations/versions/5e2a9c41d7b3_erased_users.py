"""erased users: a payment racing an account's erasure is refunded

Revision ID: 5e2a9c41d7b3
Revises: c0db6a6b6612
Create Date: 2026-11-23 00:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import common.db

revision: str = '5e2a9c41d7b3'
down_revision: str | None = 'c0db6a6b6612'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('erased_users',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('erased_at', common.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('user_id')
    )
    # Accounts erased before this table existed: their orders carry the mark.
    op.execute("INSERT INTO erased_users (user_id, erased_at) "
               "SELECT user_id, min(anonymized_at) FROM orders WHERE anonymized_at IS NOT NULL GROUP BY user_id")


def downgrade() -> None:
    op.drop_table('erased_users')
