"""Stripe Checkout through the official SDK's async API (httpx underneath, nothing blocks the loop)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import stripe

from billing.models import Coupon, Order, Refund, RefundStatus
from billing.providers.base import (
    STRIPE_REFUND_STATUS,
    CheckoutSession,
    PermanentProviderError,
    ProviderRefund,
    checkout_idempotency_key,
    customer_idempotency_key,
    refund_idempotency_key,
)
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

    async def ensure_customer(self, user_id: uuid.UUID) -> str | None:
        """One customer per user (the key makes a retried create return the same one); no personal data
        is sent: Checkout collects the email itself."""
        try:
            customer = await self.client.v1.customers.create_async(
                {"metadata": {"user_id": str(user_id)}},
                options={"idempotency_key": customer_idempotency_key(user_id)})
        except stripe.StripeError as exc:
            raise _unavailable("create_customer", str(user_id), exc) from exc
        return str(customer.id)

    async def ensure_coupon(self, coupon: Coupon) -> tuple[str, str] | None:
        """Our coupon as a Stripe coupon (same discount, once per payment) plus a promotion code with
        the same code; both keyed by our coupon id. Redemptions are counted by us (at checkout)."""
        params: stripe.params.CouponCreateParams = {"duration": "once", "name": coupon.code[:40],
                                  "metadata": {"coupon_id": str(coupon.id)}}
        if coupon.kind == "percent":
            params["percent_off"] = coupon.percent_off or 0
        else:
            params["amount_off"] = coupon.amount_off or 0
            params["currency"] = (coupon.currency or "").lower()
        if coupon.valid_until is not None:
            params["redeem_by"] = int(coupon.valid_until.timestamp())
        try:
            stripe_coupon = await self.client.v1.coupons.create_async(
                params, options={"idempotency_key": f"coupon-{coupon.id}"})
            promotion = await self.client.v1.promotion_codes.create_async(
                {"promotion": {"type": "coupon", "coupon": stripe_coupon.id}, "code": coupon.code,
                 "metadata": {"coupon_id": str(coupon.id)}},
                options={"idempotency_key": f"promotion-code-{coupon.id}"})
        except stripe.StripeError as exc:
            raise _unavailable("create_coupon", str(coupon.id), exc) from exc
        return str(stripe_coupon.id), str(promotion.id)

    async def create_checkout(self, order: Order, *, customer_id: str | None,
                              promotion_code_id: str | None) -> CheckoutSession:
        order_id = str(order.id)
        params: stripe.params.checkout.SessionCreateParams = {
            "mode": "payment",
            "line_items": [{
                "quantity": 1,
                "price_data": {
                    "currency": order.currency.lower(),
                    "unit_amount": order.subtotal_amount,
                    "product_data": {"name": order.course_title},
                    "tax_behavior": "inclusive" if order.tax_inclusive else "exclusive",
                },
            }],
            "client_reference_id": order_id,
            "metadata": {"order_id": order_id, "course_id": str(order.course_id)},
            "payment_intent_data": {"metadata": {"order_id": order_id}},
            "success_url": self.settings.success_url(order.id),
            "cancel_url": self.settings.cancel_url(order.id),
            "expires_at": int(time.time()) + self.settings.checkout_session_ttl_seconds,
            # Stripe Tax computes the tax from the billing address (and a business's tax id, for the
            # reverse charge); what it charged reaches the order with the completed session.
            "automatic_tax": {"enabled": True},
            "billing_address_collection": "required",
            "tax_id_collection": {"enabled": True},
        }
        if customer_id:
            params["customer"] = customer_id
            params["customer_update"] = {"address": "auto", "name": "auto"}
        if promotion_code_id:
            params["discounts"] = [{"promotion_code": promotion_code_id}]
        try:
            session = await self.client.v1.checkout.sessions.create_async(
                params, options={"idempotency_key": checkout_idempotency_key(order.id)})
        except stripe.StripeError as exc:
            raise _unavailable("create_checkout", order_id, exc) from exc
        if not session.url:
            raise UpstreamUnavailable("the payment provider returned no checkout page",
                                      code="payment_provider_error")
        return CheckoutSession(session.id, session.url)

    async def retrieve_checkout(self, order: Order) -> dict[str, Any] | None:
        if not order.provider_session_id:
            return None
        try:
            session = await self.client.v1.checkout.sessions.retrieve_async(order.provider_session_id)
        except stripe.StripeError as exc:
            raise _unavailable("retrieve_checkout", str(order.id), exc) from exc
        result: dict[str, Any] = session.to_dict()
        return result

    async def expire_checkout(self, order: Order) -> bool:
        if not order.provider_session_id:
            return True
        try:
            await self.client.v1.checkout.sessions.expire_async(order.provider_session_id)
        except stripe.InvalidRequestError as exc:
            # Only an open session can be expired: this one was completed, or expired already (its
            # expires_at passed and the webhook saying so is still on its way): ask which.
            current = await self.retrieve_checkout(order)
            if current is not None and current.get("status") == "expired":
                return True
            log.info("stripe refused to expire a session", extra={
                "order_id": str(order.id), "stripe_code": exc.code, "stripe_request_id": exc.request_id})
            return False
        except stripe.StripeError as exc:
            raise _unavailable("expire_checkout", str(order.id), exc) from exc
        return True

    async def refund(self, order: Order, refund: Refund) -> ProviderRefund:
        if not order.provider_payment_id:
            raise Conflict("the order has no provider payment to refund", code="no_payment")
        try:
            created = await self.client.v1.refunds.create_async(
                {
                    "payment_intent": order.provider_payment_id,
                    "amount": refund.amount,
                    "reason": "duplicate" if refund.kind == "duplicate" else "requested_by_customer",
                    "metadata": {"order_id": str(order.id), "refund_id": str(refund.id),
                                 "reason": refund.reason[:500]},
                },
                options={"idempotency_key": refund_idempotency_key(refund.id)},
            )
        except stripe.InvalidRequestError as exc:
            # Amount above what is left, charge disputed...: Stripe will say the same every time.
            log.warning("stripe refused a refund", extra={
                "order_id": str(order.id), "refund_id": str(refund.id), "stripe_code": exc.code,
                "stripe_request_id": exc.request_id})
            raise PermanentProviderError(exc.code or "refund_refused") from exc
        except stripe.StripeError as exc:
            raise _unavailable("refund", str(order.id), exc) from exc
        return ProviderRefund(created.id, STRIPE_REFUND_STATUS.get(str(created.status), RefundStatus.PENDING))

    async def delete_customer(self, customer_id: str) -> None:
        try:
            await self.client.v1.customers.delete_async(customer_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 404:  # already gone is what we want
                raise _unavailable("delete_customer", customer_id, exc) from exc
        except stripe.StripeError as exc:
            raise _unavailable("delete_customer", customer_id, exc) from exc

    async def close(self) -> None:
        await self._http.close_async()


def _unavailable(operation: str, subject: str, exc: stripe.StripeError) -> UpstreamUnavailable:
    """Log what Stripe said (its message and request id, never keys or card data) and answer 503."""
    log.warning("stripe call failed", extra={
        "operation": operation, "subject": subject, "error_type": type(exc).__name__,
        "stripe_code": exc.code, "stripe_request_id": exc.request_id, "http_status": exc.http_status})
    return UpstreamUnavailable("the payment provider is unavailable", code="payment_provider_error")
