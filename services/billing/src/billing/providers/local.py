"""The embedded payment provider: a hosted page of our own that answers with Stripe-format webhooks.

Paying on the page builds the event Stripe would send, signs it the way Stripe does and posts it
to billing's own `/webhooks/stripe` over plain HTTP (no service token: it is a webhook), so the
embedded mode exercises exactly the verification and fulfilment code that Stripe's calls do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from typing import Any, Literal

import httpx
import stripe

from billing.models import Coupon, Order, Refund, RefundStatus
from billing.providers.base import CheckoutSession, ProviderRefund, checkout_idempotency_key
from billing.settings import BillingSettings
from common.errors import UpstreamUnavailable

log = logging.getLogger(__name__)

Outcome = Literal["paid", "declined", "expired"]
EVENT_TYPES: dict[Outcome, str] = {
    "paid": "checkout.session.completed",
    "declined": "checkout.session.async_payment_failed",
    "expired": "checkout.session.expired",
}
SESSION_STATUS: dict[Outcome, str] = {"paid": "complete", "declined": "complete", "expired": "expired"}


class LocalProvider:
    name = "local"

    def __init__(self, settings: BillingSettings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http

    def session_id_for(self, order_id: uuid.UUID) -> str:
        """Derived from the order id (idempotent like Stripe's key) but keyed, so not guessable."""
        secret = self.settings.stripe_webhook_secret.get_secret_value().encode()
        mac = hmac.new(secret, checkout_idempotency_key(order_id).encode(), hashlib.sha256)
        return f"cs_local_{mac.hexdigest()[:40]}"

    async def ensure_customer(self, user_id: uuid.UUID) -> str | None:
        return None

    async def ensure_coupon(self, coupon: Coupon) -> tuple[str, str] | None:
        return None  # the local page shows our own discounted amount

    async def create_checkout(self, order: Order, *, customer_id: str | None,
                              promotion_code_id: str | None) -> CheckoutSession:
        session_id = self.session_id_for(order.id)
        base = self.settings.public_base_url.rstrip("/")
        return CheckoutSession(session_id, f"{base}/api/billing/local-checkout/{session_id}")

    async def retrieve_checkout(self, order: Order) -> dict[str, Any] | None:
        return None  # the page's webhook is delivered before the buyer sees the success page

    async def expire_checkout(self, order: Order) -> bool:
        """The page only pays pending orders, so marking ours expired is enough."""
        return True

    async def refund(self, order: Order, refund: Refund) -> ProviderRefund:
        """Test money comes back at once; the id is derived from ours like Stripe's idempotency."""
        return ProviderRefund(f"re_local_{refund.id.hex}", RefundStatus.SUCCEEDED)

    async def delete_customer(self, customer_id: str) -> None:
        return None

    async def close(self) -> None:
        return None

    def build_event(self, order: Order, outcome: Outcome) -> dict[str, Any]:
        """The snapshot event Stripe sends for a Checkout Session, with the fields billing reads."""
        session: dict[str, Any] = {
            "id": order.provider_session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": SESSION_STATUS[outcome],
            "client_reference_id": str(order.id),
            "metadata": {"order_id": str(order.id), "course_id": str(order.course_id)},
            "amount_total": order.amount,
            "currency": order.currency.lower(),
            "payment_status": "paid" if outcome == "paid" else "unpaid",
            "payment_intent": f"pi_local_{order.id.hex}" if outcome != "expired" else None,
            "livemode": False,
        }
        return {
            "id": f"evt_local_{uuid.uuid4().hex}",
            "object": "event",
            "api_version": stripe.api_version,
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "type": EVENT_TYPES[outcome],
            "data": {"object": session},
        }

    def sign(self, payload: str, timestamp: int | None = None) -> str:
        return stripe.WebhookSignature.generate_signature_header(
            payload, self.settings.stripe_webhook_secret.get_secret_value(), timestamp)

    async def deliver(self, order: Order, outcome: Outcome) -> dict[str, Any]:
        """Send the outcome to billing's webhook as Stripe would; returns the event sent."""
        event = self.build_event(order, outcome)
        payload = json.dumps(event, separators=(",", ":"))
        url = f"{self.settings.billing_url.rstrip('/')}/webhooks/stripe"
        try:
            response = await self.http.post(
                url, content=payload.encode(), timeout=self.settings.http_timeout_seconds,
                headers={"Content-Type": "application/json", "Stripe-Signature": self.sign(payload)})
        except httpx.TransportError as exc:
            log.warning("local webhook delivery failed", extra={"order_id": str(order.id),
                                                                "error": repr(exc)})
            raise UpstreamUnavailable("billing's webhook endpoint is unreachable") from exc
        if response.status_code != 200:
            log.error("local webhook rejected", extra={"order_id": str(order.id),
                                                       "status": response.status_code})
            raise UpstreamUnavailable("billing's webhook endpoint rejected the payment event")
        return event
