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

from billing.models import Order
from billing.providers.base import CheckoutSession, checkout_idempotency_key
from billing.settings import BillingSettings
from common.errors import UpstreamUnavailable

log = logging.getLogger(__name__)

Outcome = Literal["paid", "declined"]
EVENT_TYPES: dict[Outcome, str] = {
    "paid": "checkout.session.completed",
    "declined": "checkout.session.async_payment_failed",
}


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

    async def create_checkout(self, order: Order) -> CheckoutSession:
        session_id = self.session_id_for(order.id)
        base = self.settings.public_base_url.rstrip("/")
        return CheckoutSession(session_id, f"{base}/api/billing/local-checkout/{session_id}")

    async def refund(self, order: Order, amount: int, reason: str) -> str:
        return f"re_local_{order.id.hex}"

    async def close(self) -> None:
        return None

    def build_event(self, order: Order, outcome: Outcome) -> dict[str, Any]:
        """The snapshot event Stripe sends for a Checkout Session, with the fields billing reads."""
        session: dict[str, Any] = {
            "id": order.provider_session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "complete",
            "client_reference_id": str(order.id),
            "metadata": {"order_id": str(order.id), "course_id": str(order.course_id)},
            "amount_total": order.amount,
            "currency": order.currency.lower(),
            "payment_status": "paid" if outcome == "paid" else "unpaid",
            "payment_intent": f"pi_local_{order.id.hex}",
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
