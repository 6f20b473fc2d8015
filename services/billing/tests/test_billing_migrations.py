"""Billing's migrations: models and schema agree, and on PostgreSQL an order paid before invoices
and tax existed carries over (no tax, no country) and the revision downgrades and upgrades again."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from billing.main import MIGRATIONS_DIR
from common.migrations import alembic_config, sync_url, upgrade
from common.testing import postgres_database

BEFORE_INVOICES = "5e2a9c41d7b3"


def test_models_and_migrations_agree(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    upgrade(MIGRATIONS_DIR, url, None)
    command.check(alembic_config(MIGRATIONS_DIR, url, None))  # raises on any difference


def test_orders_from_before_invoices_and_tax_carry_over_on_postgres() -> None:
    with postgres_database(["billing"]) as urls:
        url = urls["billing"]
        upgrade(MIGRATIONS_DIR, url, "billing", BEFORE_INVOICES)
        engine = sa.create_engine(sync_url(url), connect_args={"options": "-csearch_path=billing"})
        order_id, now = uuid.uuid4(), dt.datetime.now(dt.UTC)
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO orders (id, user_id, course_id, course_title, subtotal_amount, discount_amount, amount, "
                "amount_refunded, currency, coupon_redeemed, status, idempotency_key, provider, "
                "provider_expire_pending, created_at, updated_at, paid_at) VALUES (:id, :user, :course, 'Old', "
                "4900, 0, 4900, 0, 'EUR', false, 'paid', 'k', 'local', false, :now, :now, :now)"),
                {"id": order_id, "user": uuid.uuid4(), "course": uuid.uuid4(), "now": now})
        upgrade(MIGRATIONS_DIR, url, "billing")
        with engine.begin() as conn:
            row = conn.execute(sa.text("SELECT tax_amount, tax_inclusive, tax_source, reverse_charge, buyer_country "
                                       "FROM orders WHERE id = :id"), {"id": order_id}).one()
            assert tuple(row) == (0, True, "none", False, None)
        engine.dispose()
        command.downgrade(alembic_config(MIGRATIONS_DIR, url, "billing"), BEFORE_INVOICES)
        upgrade(MIGRATIONS_DIR, url, "billing")
