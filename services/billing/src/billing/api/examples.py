"""Examples of the core path's bodies, shown in the public OpenAPI document (common.openapi)."""

EXAMPLES = {
    "CheckoutRequest": {"course_id": "10000000-0000-4000-8000-000000000001", "coupon_code": None, "country": "DE"},
    "CheckoutRead": {"order_id": "5b0c3d8e-1f2a-4c3b-9d4e-5f6a7b8c9d0e", "status": "pending",
                     "checkout_url": "https://checkout.stripe.com/c/pay/cs_test_a1b2c3", "amount": 4900,
                     "currency": "EUR", "discount_amount": 0, "net_amount": 4118, "tax_amount": 782,
                     "tax_rate_bp": 1900, "tax_inclusive": True, "tax_source": "local",
                     "reverse_charge": False, "buyer_country": "DE", "buyer_vat_number": None},
    "RefundRequest": {"reason": "requested by the customer", "amount": 1000},
}
