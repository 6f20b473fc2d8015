"""Payment providers: the real Stripe and the embedded local one, behind one interface."""

from __future__ import annotations

import httpx

from billing.providers.base import CheckoutSession, PaymentProvider, ProviderEvent, verify_webhook
from billing.providers.local import LocalProvider
from billing.providers.stripe import StripeProvider
from billing.settings import BillingSettings

__all__ = ["CheckoutSession", "LocalProvider", "PaymentProvider", "ProviderEvent", "StripeProvider",
           "open_provider", "verify_webhook"]


def open_provider(settings: BillingSettings, http: httpx.AsyncClient) -> PaymentProvider:
    """The configured provider; the caller closes it (lifespan)."""
    if settings.payment_provider == "stripe":
        return StripeProvider(settings)
    return LocalProvider(settings, http)
