"""Billing settings (env prefix BILLING_)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class BillingSettings(ServiceSettings):
    service_name: ClassVar[str] = "billing"
    model_config = SettingsConfigDict(env_prefix="BILLING_", extra="ignore")

    # The peers it calls, and its own URL (the local provider posts webhooks there).
    catalog_url: str = "http://127.0.0.1:8000/api/catalog"
    billing_url: str = "http://127.0.0.1:8000/api/billing"
    playback_url: str = "http://127.0.0.1:8000/api/playback"

    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///var/data/billing.db")
    service_client_secret: SecretStr | None = SecretStr("dev-billing-client-secret")

    # "local" is the embedded provider (hosted page + Stripe-format signed webhooks); "stripe" is real.
    payment_provider: Literal["local", "stripe"] = "local"
    stripe_api_key: SecretStr = SecretStr("sk_test_dev-placeholder")
    stripe_webhook_secret: SecretStr = SecretStr("whsec_dev-local-webhook-secret")
    # Tests point the SDK at a local fake of Stripe's API; None means api.stripe.com.
    stripe_api_base: str | None = None
    stripe_timeout_seconds: float = 20.0
    stripe_max_network_retries: int = 2
    # "{order_id}" is replaced with our order id; None means a page under public_base_url.
    checkout_success_url: str | None = None
    checkout_cancel_url: str | None = None
    webhook_tolerance_seconds: int = 300
    # Open checkouts end after this. Stripe accepts 30 min to 24 h after creation (by its clock), so
    # a margin is kept at both ends; the local provider's sessions are expired by billing's worker.
    checkout_session_ttl_seconds: int = Field(default=84_600, ge=60, le=85_000)

    # Learner self-refund policy: within N days of payment and under this share of the course watched.
    self_refund_window_days: int = Field(default=14, ge=0)
    self_refund_max_watched_percent: int = Field(default=30, ge=0, le=100)

    # Background work: receipts, refunds left unconfirmed by a crash or outage, local session expiry.
    worker_interval_seconds: float = Field(default=5.0, gt=0)
    receipt_max_attempts: int = Field(default=8, ge=1)
    # A refund still "requested" (provider not yet answered) this long is retried with the same key.
    refund_retry_after_seconds: int = Field(default=60, ge=1)

    # The seller named on invoices and credit notes, and the country whose VAT applies to its
    # sales outside the EU VAT area's B2C rules (billing/tax.py).
    seller_name: str = Field(default="Triple Academy GmbH", min_length=1, max_length=200)
    seller_address: str = Field(default="Musterstrasse 1, 10115 Berlin, Germany", min_length=1, max_length=300)
    seller_vat_id: str = Field(default="DE123456789", min_length=1, max_length=20)
    seller_country: str = Field(default="DE", pattern=r"^[A-Z]{2}$")
    # True: catalog prices include the tax (what the buyer pays whatever the rate); False: the tax
    # of the buyer's country is added on top. With Stripe it is the line item's `tax_behavior`.
    tax_inclusive_prices: bool = True

    @model_validator(mode="after")
    def _real_provider_in_production(self) -> BillingSettings:
        """The local provider marks orders paid without taking money: never in production."""
        if self.environment == "production" and self.payment_provider != "stripe":
            raise ValueError("production needs BILLING_PAYMENT_PROVIDER=stripe")
        if self.payment_provider == "stripe" and self.checkout_session_ttl_seconds < 1900:
            raise ValueError("Stripe checkout sessions last at least 1800 s: checkout_session_ttl_seconds >= 1900")
        return self

    @model_validator(mode="after")
    def _default_redirect_urls(self) -> BillingSettings:
        base = self.public_base_url.rstrip("/")
        if not self.checkout_success_url:
            self.checkout_success_url = f"{base}/checkout/success?order_id={{order_id}}"
        if not self.checkout_cancel_url:
            self.checkout_cancel_url = f"{base}/checkout/cancel?order_id={{order_id}}"
        return self

    def success_url(self, order_id: object) -> str:
        return (self.checkout_success_url or "").replace("{order_id}", str(order_id))

    def cancel_url(self, order_id: object) -> str:
        return (self.checkout_cancel_url or "").replace("{order_id}", str(order_id))
