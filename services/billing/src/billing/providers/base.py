"""What billing needs from a payment provider, and Stripe-format webhook verification.

Both providers deliver their outcome the same way (a signed Stripe-format event to
`/webhooks/stripe`), so the fulfilment path is the same in the embedded and distributed modes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import stripe

from billing.models import Coupon, Order, Refund, RefundStatus
from common.errors import InvalidInput


class CheckoutSession(NamedTuple):
    session_id: str
    checkout_url: str


class ProviderRefund(NamedTuple):
    refund_id: str
    status: RefundStatus  # pending, succeeded or failed


# Stripe's refund statuses -> ours (requires_action: the money has not come back yet).
STRIPE_REFUND_STATUS = {"pending": RefundStatus.PENDING, "requires_action": RefundStatus.PENDING,
                        "succeeded": RefundStatus.SUCCEEDED, "failed": RefundStatus.FAILED,
                        "canceled": RefundStatus.FAILED}


class PaymentProvider(Protocol):
    """Every create call carries an idempotency key derived from our own ids, so retries are safe."""

    name: str

    async def ensure_customer(self, user_id: uuid.UUID) -> str | None:
        """The provider's customer for this user (created once), or None if it has no such notion."""
        ...

    async def ensure_coupon(self, coupon: Coupon) -> tuple[str, str] | None:
        """The provider's (coupon id, promotion code id) for our coupon, or None without coupons."""
        ...

    async def create_checkout(self, order: Order, *, customer_id: str | None,
                              promotion_code_id: str | None) -> CheckoutSession: ...

    async def retrieve_checkout(self, order: Order) -> dict[str, Any] | None:
        """The provider's current view of the order's session (Stripe format), None if it keeps none."""
        ...

    async def expire_checkout(self, order: Order) -> bool:
        """End an open checkout so it can no longer be paid; False if it was already completed."""
        ...

    async def refund(self, order: Order, refund: Refund) -> ProviderRefund:
        """Refund `refund.amount` of the order's payment (key: the refund id)."""
        ...

    async def delete_customer(self, customer_id: str) -> None: ...

    async def close(self) -> None: ...


class PermanentProviderError(Exception):
    """The provider refused the request itself (not an outage): retrying the same call cannot help."""


def checkout_idempotency_key(order_id: uuid.UUID) -> str:
    return f"checkout-{order_id}"


def refund_idempotency_key(refund_id: uuid.UUID) -> str:
    return f"refund-{refund_id}"


def customer_idempotency_key(user_id: uuid.UUID) -> str:
    return f"customer-{user_id}"


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
    if signature is not None and not signature.isascii():
        # The SDK compares with hmac.compare_digest, which raises on non-ASCII text; a Stripe
        # header is ASCII, so anything else is simply not a valid signature.
        raise InvalidInput("webhook signature verification failed", code="invalid_signature")
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
