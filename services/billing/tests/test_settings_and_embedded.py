"""Settings guard rails, and the embedded mode (SQLite file, local provider) end to end."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from billing_testkit import ADMIN, STUDENT, open_platform
from pydantic import ValidationError

from billing.settings import BillingSettings

PRODUCTION: dict[str, Any] = {"environment": "production",
              "database_url": "postgresql+psycopg://u:Vq7Lm2Xr9Tz4Wp8Kd1@db/triple",
              "service_client_secret": "a-real-client-credential-0123456789",
              "stripe_webhook_secret": "whsec_0123456789abcdefghijklmnop", "payment_provider": "stripe",
              "stripe_api_key": "sk_live_0123456789abcdef"}


def test_production_refuses_placeholders_and_the_local_provider() -> None:
    with pytest.raises(ValidationError, match="stripe_webhook_secret"):
        BillingSettings(**{**PRODUCTION, "stripe_webhook_secret": "whsec_dev-local-webhook-secret"})
    with pytest.raises(ValidationError, match="stripe_api_key"):
        BillingSettings(**{**PRODUCTION, "stripe_api_key": "sk_test_dev-placeholder"})
    with pytest.raises(ValidationError, match="PAYMENT_PROVIDER=stripe"):
        BillingSettings(**{**PRODUCTION, "payment_provider": "local"})
    with pytest.raises(ValidationError, match="1900"):
        BillingSettings(**{**PRODUCTION, "checkout_session_ttl_seconds": 600})
    live = BillingSettings(**PRODUCTION)
    assert live.success_url("o-1") == "http://127.0.0.1:8000/checkout/success?order_id=o-1"


async def test_embedded_mode_on_sqlite_pays_through_the_local_page(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/billing.db"
    async with open_platform(database_url=url, migrate_on_start=None) as platform:
        assert platform.settings.should_migrate_on_start
        response = await platform.checkout(STUDENT, key=f"embedded-{uuid.uuid4()}")
        assert response.status_code == 201, response.text
        order_id = response.json()["order_id"]
        path = response.json()["checkout_url"].removeprefix("http://testserver")
        assert (await platform.client.post(f"{path}/pay")).status_code == 200
        assert (await platform.order(order_id))["status"] == "paid"
        assert len(await platform.events("billing.order.paid.v1", order_id)) == 1

        # The same guards and reads on SQLite: one open checkout per learner and course, totals.
        buyer = await platform.new_user()
        first = await platform.checkout(buyer, key="one")
        second = await platform.checkout(buyer, key="two")
        assert (first.status_code, second.status_code) == (201, 200)
        assert first.json()["order_id"] == second.json()["order_id"]
        admin = await platform.auth(ADMIN)
        refund = await platform.client.post(f"/api/billing/orders/{order_id}/refund", headers=admin,
                                            json={"reason": "sqlite", "amount": 900})
        assert refund.json()["status"] == "partially_refunded", refund.text
        listing = await platform.client.get("/api/billing/admin/orders", headers=admin)
        assert listing.json()["totals"] == [{"currency": "EUR", "orders": 1, "gross_amount": 4900,
                                             "discount_amount": 0, "refunded_amount": 900, "net_amount": 4000,
                                             "tax_amount": 638, "net_of_tax_amount": 3362}]
