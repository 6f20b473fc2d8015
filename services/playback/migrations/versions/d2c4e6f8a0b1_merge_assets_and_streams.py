"""merge the video-assets and streams branches (issues 6 and 7 branched from the initial schema)

Revision ID: d2c4e6f8a0b1
Revises: 7c1e0a2f9b31, b6e1c0a5d7f2
Create Date: 2026-12-04 16:20:00.000000
"""

from collections.abc import Sequence

revision: str = 'd2c4e6f8a0b1'
down_revision: str | Sequence[str] | None = ('7c1e0a2f9b31', 'b6e1c0a5d7f2')
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: one head again, so the next migration has a single parent."""


def downgrade() -> None:
    """Nothing to undo."""
