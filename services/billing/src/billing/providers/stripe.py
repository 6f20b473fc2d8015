"""Stripe Checkout through the official SDK's async API (httpx underneath, nothing blocks the loop)."""

from __future__ import annotations

import logging

import stripe

from billing.models import Order
from billing.providers.base import CheckoutSession, checkout_idempotency_key, refund_idempotency_key
from billing.settings import BillingSettings
from common.errors import Conflict, UpstreamUnavailable

log = logging.getLogger(__name__)


class StripeProvider:
    name = "stripe"

    def __init__(self, settings: BillingSettings) -> None:
        self.settings = settings
        self._http = stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds)
        self.client = stripe.StripeClient(
            settings.stripe_api_key.get_secret_value(),
            base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else None,
            http_client=self._http,
            max_network_retries=settings.stripe_max_network_retries,
        )

    async def create_checkout(self, order: Order) -> CheckoutSession:
        order_id = str(order.id)
        try:
            session = await self.client.v1.checkout.sessions.create_async(
                {
                    "mode": "payment",
                    "line_items": [{
                        "quantity": 1,
                        "price_data": {
                            "currency": order.currency.lower(),
                            "unit_amount": order.amount,
                            "product_data": {"name": order.course_title},
                        },
                    }],
                    "client_reference_id": order_id,
                    "metadata": {"order_id": order_id, "course_id": str(order.course_id)},
                    "payment_intent_data": {"metadata": {"order_id": order_id}},
                    "success_url": self.settings.success_url(order.id),
                    "cancel_url": self.settings.cancel_url(order.id),
                },
                options={"idempotency_key": checkout_idempotency_key(order.id)},
            )
        except stripe.StripeError as exc:
            raise _unavailable("create_checkout", order, exc) from exc
        if not session.url:
            raise UpstreamUnavailable("the payment provider returned no checkout page",
                                      code="payment_provider_error")
        return CheckoutSession(session.id, session.url)

    async def refund(self, order: Order, amount: int, reason: str) -> str:
        if not order.provider_payment_id:
            raise Conflict("the order has no provider payment to refund", code="no_payment")
        try:
            refund = await self.client.v1.refunds.create_async(
                {
                    "payment_intent": order.provider_payment_id,
                    "amount": amount,
                    "reason": "requested_by_customer",
                    "metadata": {"order_id": str(order.id), "reason": reason[:500]},
                },
                options={"idempotency_key": refund_idempotency_key(order.id)},
            )
        except stripe.StripeError as exc:
            raise _unavailable("refund", order, exc) from exc
        return refund.id

    async def close(self) -> None:
        await self._http.close_async()


def _unavailable(operation: str, order: Order, exc: stripe.StripeError) -> UpstreamUnavailable:
    """Log what Stripe said (its message and request id, never keys or card data) and answer 503."""
    log.warning("stripe call failed", extra={
        "operation": operation, "order_id": str(order.id), "error_type": type(exc).__name__,
        "stripe_code": exc.code, "stripe_request_id": exc.request_id, "http_status": exc.http_status})
    return UpstreamUnavailable("the payment provider is unavailable", code="payment_provider_error")
