"""Billing settings (env prefix BILLING_)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class BillingSettings(ServiceSettings):
    service_name: ClassVar[str] = "billing"
    model_config = SettingsConfigDict(env_prefix="BILLING_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/data/billing.db"
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

    @model_validator(mode="after")
    def _real_provider_in_production(self) -> BillingSettings:
        """The local provider marks orders paid without taking money: never in production."""
        if self.environment == "production" and self.payment_provider != "stripe":
            raise ValueError("production needs BILLING_PAYMENT_PROVIDER=stripe")
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
