"""What billing needs from a payment provider, and Stripe-format webhook verification.

Both providers deliver their outcome the same way (a signed Stripe-format event to
`/webhooks/stripe`), so the fulfilment path is the same in the embedded and distributed modes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import stripe

from billing.models import Order
from common.errors import InvalidInput


class CheckoutSession(NamedTuple):
    session_id: str
    checkout_url: str


class PaymentProvider(Protocol):
    """Every create call carries an idempotency key derived from our order id, so retries are safe."""

    name: str

    async def create_checkout(self, order: Order) -> CheckoutSession: ...

    async def refund(self, order: Order, amount: int, reason: str) -> str:
        """Refund `amount` of the order's payment; returns the provider's refund id."""
        ...

    async def close(self) -> None: ...


def checkout_idempotency_key(order_id: uuid.UUID) -> str:
    return f"checkout-{order_id}"


def refund_idempotency_key(order_id: uuid.UUID) -> str:
    return f"refund-{order_id}"


@dataclass(frozen=True)
class ProviderEvent:
    """A verified webhook event: Stripe's `evt_...` id, its type and its `data.object`."""

    id: str
    type: str
    object: dict[str, Any] = field(default_factory=dict)


def verify_webhook(payload: bytes, signature: str | None, secret: str, tolerance: int) -> ProviderEvent:
    """Check `Stripe-Signature` over the raw body (and its age), then read the event.

    Anything that is not a genuine, recent event becomes a 400, never a 500.
    """
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=tolerance)
    except stripe.SignatureVerificationError as exc:
        raise InvalidInput("webhook signature verification failed", code="invalid_signature") from exc
    except ValueError as exc:  # not JSON / not UTF-8 / not a snapshot event
        raise InvalidInput("webhook body is not a Stripe event", code="invalid_payload") from exc
    body = event.to_dict()
    data = body.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(body.get("id"), str) or not isinstance(body.get("type"), str) or not isinstance(obj, dict):
        raise InvalidInput("webhook event lacks id, type or data.object", code="invalid_payload")
    return ProviderEvent(id=body["id"], type=body["type"], object=obj)
