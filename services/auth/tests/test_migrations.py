"""The accounts/sessions migration: models and schema agree, and on PostgreSQL the data written by
the previous revision (users, refresh-token families, a PEM signing key) carries over, both ways."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from auth.main import MIGRATIONS_DIR
from common.migrations import alembic_config, sync_url, upgrade
from common.testing import postgres_database

PREVIOUS = "f579193b2f6b"


def test_models_and_migrations_agree(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auth.db'}"
    upgrade(MIGRATIONS_DIR, url, None)
    command.check(alembic_config(MIGRATIONS_DIR, url, None))  # raises on any difference


def test_upgrade_keeps_sessions_and_keys_on_postgres() -> None:
    with postgres_database(["auth"]) as urls:
        url = urls["auth"]
        upgrade(MIGRATIONS_DIR, url, "auth", PREVIOUS)
        engine = sa.create_engine(sync_url(url), connect_args={"options": "-csearch_path=auth"})
        user_id, family = uuid.uuid4(), uuid.uuid4()
        now = dt.datetime.now(dt.UTC)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO users (id, email, full_name, password_hash, roles, is_active, "
                                 "created_at) VALUES (:id, 'old@example.com', 'Old', 'x', '[\"student\"]', true, "
                                 ":now)"), {"id": user_id, "now": now})
            for i in range(2):
                conn.execute(sa.text(
                    "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, created_at, expires_at) "
                    "VALUES (:id, :family, :user, :hash, :created, :expires)"),
                    {"id": uuid.uuid4(), "family": family, "user": user_id, "hash": f"h{i}",
                     "created": now + dt.timedelta(seconds=i), "expires": now + dt.timedelta(days=30)})
            conn.execute(sa.text("INSERT INTO signing_keys (kid, private_pem, public_jwk, created_at) "
                                 "VALUES ('k1', 'pem', '{}', :now)"), {"now": now})
        upgrade(MIGRATIONS_DIR, url, "auth")
        with engine.begin() as conn:
            session = conn.execute(sa.text("SELECT user_id, created_at, expires_at FROM sessions WHERE id = :f"),
                                   {"f": family}).one()
            assert session.user_id == user_id and session.created_at == now
            key = conn.execute(sa.text("SELECT private_key, activates_at, created_at FROM signing_keys")).one()
            assert key.private_key == "pem" and key.activates_at == key.created_at
        engine.dispose()
        command.downgrade(alembic_config(MIGRATIONS_DIR, url, "auth"), PREVIOUS)
        upgrade(MIGRATIONS_DIR, url, "auth")
