"""Autogenerate a migration for one service against a scratch SQLite file.

usage: uv run python scripts/new_migration.py <service> "<message>"
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from common.migrations import alembic_config, upgrade


def main() -> None:
    service, message = sys.argv[1], sys.argv[2]
    migrations_dir = Path("services") / service / "migrations"
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/scratch.db"
        upgrade(migrations_dir, url, None)
        command.revision(alembic_config(migrations_dir, url, None), message=message, autogenerate=True)


if __name__ == "__main__":
    main()
