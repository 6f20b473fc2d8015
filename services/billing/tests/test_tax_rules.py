"""The local tax rules as pure functions: rates from the shipped table, reverse charge, rounding,
tax-inclusive and tax-exclusive prices, what Stripe Tax reports, and the revenue CSV (no platform needed)."""

from __future__ import annotations

import uuid

import pytest

from billing import tax
from billing.models import Order
from billing.revenue import RevenueLine, to_csv
from common.errors import InvalidInput

INCLUSIVE = tax.TaxPolicy(seller_country="DE", prices_include_tax=True, provider="local")
EXCLUSIVE = tax.TaxPolicy(seller_country="DE", prices_include_tax=False, provider="local")


def buyer(country: str | None, vat: str | None = None) -> tax.Buyer:
    return tax.buyer_from_input(country, vat, default_country="DE")


def test_every_eu_member_state_has_a_standard_rate_and_a_country_code() -> None:
    assert len(tax.EU_STANDARD_VAT_BP) == 27
    assert set(tax.EU_STANDARD_VAT_BP) <= tax.COUNTRIES
    assert all(1500 <= rate <= 2700 for rate in tax.EU_STANDARD_VAT_BP.values())


@pytest.mark.parametrize(("country", "vat", "rate", "tax_amount", "reverse"), [
    ("DE", None, 1900, 782, False),  # 4900 / 1.19 = 4117.6 -> net 4118, tax 782
    ("FR", None, 2000, 817, False),
    ("HU", None, 2700, 1042, False),
    ("FR", "FR40303265045", 0, 0, True),  # a business in another member state: reverse charge
    ("DE", "DE136695976", 1900, 782, False),  # a business at home pays German VAT
    ("US", None, 0, 0, False),  # outside the EU: no EU VAT
])
def test_inclusive_prices_keep_the_amount_and_split_out_the_tax(
        country: str, vat: str | None, rate: int, tax_amount: int, reverse: bool) -> None:
    quote = tax.quote(INCLUSIVE, buyer(country, vat), price=4900, discount=0)
    assert (quote.amount, quote.tax, quote.rate_bp, quote.reverse_charge) == (4900, tax_amount, rate, reverse)
    assert quote.subtotal - quote.discount == quote.amount


def test_exclusive_prices_add_the_tax_on_top_after_the_discount() -> None:
    quote = tax.quote(EXCLUSIVE, buyer("FR"), price=4900, discount=490)
    assert (quote.amount, quote.tax) == (4410 + 882, 882)  # 20 % of the discounted net
    assert quote.subtotal == 5880 and quote.subtotal - quote.discount == quote.amount
    reverse = tax.quote(EXCLUSIVE, buyer("FR", "FR40303265045"), price=4900, discount=0)
    assert (reverse.amount, reverse.tax, reverse.reverse_charge) == (4900, 0, True)


def test_no_country_means_the_sellers_and_bad_input_is_refused_with_a_reason() -> None:
    assert buyer(None) == tax.Buyer("DE")
    assert buyer("gr", "EL094259216") == tax.Buyer("GR", "EL094259216")  # Greece's VAT prefix is EL
    assert buyer("de", "de 136 695 976") == tax.Buyer("DE", "DE136695976")
    for country, vat, code in [("ZZ", None, "invalid_country"), (None, "DE136695976", "country_required"),
                               ("DE", "DE123456789", "invalid_vat_number"),  # check digit wrong
                               ("FR", "DE136695976", "vat_country_mismatch"),
                               ("US", "DE136695976", "vat_number_not_applicable")]:
        with pytest.raises(InvalidInput) as caught:
            buyer(country, vat)
        assert caught.value.code == code, (country, vat)


def test_stripe_tax_result_becomes_the_orders_amount_and_tax() -> None:
    order = Order(amount=4410, subtotal_amount=4900, discount_amount=490, tax_amount=0, currency="EUR",
                  tax_source="stripe", tax_inclusive=False, reverse_charge=False)
    tax.record_charged(order, {"amount_total": 5292, "currency": "eur", "total_details": {"amount_tax": 882}})
    assert (order.amount, order.tax_amount, order.net_amount, order.tax_rate_bp) == (5292, 882, 4410, 2000)
    assert order.subtotal_amount - order.discount_amount == order.amount
    untouched = Order(amount=4900, subtotal_amount=4900, discount_amount=0, tax_amount=0, currency="EUR",
                      tax_source="stripe")
    for nonsense in ({"amount_total": "4900"}, {"amount_total": 4900, "total_details": {"amount_tax": 9999}},
                     {"amount_total": 4900, "currency": "usd", "total_details": {"amount_tax": 1}}):
        tax.record_charged(untouched, nonsense)
        assert (untouched.amount, untouched.tax_amount) == (4900, 0)


def test_revenue_csv_keeps_negative_amounts_as_numbers_and_titles_as_text() -> None:
    line = RevenueLine(uuid.UUID(int=1), "=HYPERLINK(\"x\")", "2026-03", "EUR", 0, 0, 0, 4900, -782, -4118)
    row = to_csv([line]).split("\r\n")[1]
    assert row == f'{uuid.UUID(int=1)},"\'=HYPERLINK(""x"")",2026-03,EUR,0,0,0,4900,-782,-4118'
