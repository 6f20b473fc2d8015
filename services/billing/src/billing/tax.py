"""Tax at checkout: the buyer's country (and VAT number, for businesses) decides the VAT.

Selling online courses into the EU is an electronically supplied service: VAT is due at the rate of
the buyer's member state, except to a business with a VAT number of another member state than the
seller's, which accounts for it itself (reverse charge, 0 % on our invoice). Outside the EU no EU
VAT is charged. The local provider applies the standard rates shipped below; with Stripe, Stripe
Tax (`automatic_tax`) computes the tax and the order records what Stripe charged at payment.

Prices are tax-inclusive (the catalog price is what the buyer pays) or tax-exclusive (the tax is
added on top), per `BILLING_TAX_INCLUSIVE_PRICES`. Either way `Order.amount` is what is charged and
`Order.tax_amount` the tax inside it; money is integer minor units, rounded half up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stdnum.eu import vat as eu_vat

from billing.models import Order
from billing.settings import BillingSettings
from common.errors import InvalidInput

# EU standard VAT rates in basis points (1900 = 19 %), as in force from 1 August 2025.
EU_STANDARD_VAT_BP: dict[str, int] = {
    "AT": 2000, "BE": 2100, "BG": 2000, "CY": 1900, "CZ": 2100, "DE": 1900, "DK": 2500, "EE": 2400,
    "ES": 2100, "FI": 2550, "FR": 2000, "GR": 2400, "HR": 2500, "HU": 2700, "IE": 2300, "IT": 2200,
    "LT": 2100, "LU": 1700, "LV": 2100, "MT": 1800, "NL": 2100, "PL": 2300, "PT": 2300, "RO": 2100,
    "SE": 2500, "SI": 2200, "SK": 2300,
}
# A VAT number starts with its member state's prefix, which is the ISO code except for Greece.
VAT_PREFIX_COUNTRY = {"EL": "GR"}

# ISO 3166-1 alpha-2 (officially assigned codes).
_COUNTRY_CODES = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT
BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH
ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT
HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS
LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI
NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG
SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG
UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"""
COUNTRIES = frozenset(_COUNTRY_CODES.split())


@dataclass(frozen=True)
class Buyer:
    """What the buyer told us at checkout: the country, and the VAT number of a business."""

    country: str
    vat_number: str | None = None


@dataclass(frozen=True)
class TaxPolicy:
    seller_country: str
    prices_include_tax: bool
    provider: str  # local: our rate table; stripe: Stripe Tax decides at payment


@dataclass(frozen=True)
class Quote:
    """An order's money: `amount` is charged, `tax` is inside it; subtotal - discount = amount."""

    subtotal: int
    discount: int
    amount: int
    tax: int
    rate_bp: int | None
    source: str  # local, stripe
    reverse_charge: bool
    buyer: Buyer
    inclusive: bool


def policy_for(settings: BillingSettings) -> TaxPolicy:
    return TaxPolicy(seller_country=settings.seller_country, prices_include_tax=settings.tax_inclusive_prices,
                     provider=settings.payment_provider)


def buyer_from_input(country: str | None, vat_number: str | None, *, default_country: str) -> Buyer:
    """Checkout input -> a checked buyer; a bad country or VAT number is a 422 that says which."""
    if country is None:
        if vat_number is not None:
            raise InvalidInput("a VAT number needs the buyer's country", code="country_required")
        return Buyer(default_country)
    code = country.upper()
    if code not in COUNTRIES:
        raise InvalidInput(f"unknown country code {country!r} (ISO 3166-1 alpha-2)", code="invalid_country")
    if vat_number is None:
        return Buyer(code)
    if code not in EU_STANDARD_VAT_BP:
        raise InvalidInput("a VAT number is only taken from buyers in the EU", code="vat_number_not_applicable")
    compact = eu_vat.compact(vat_number)
    prefix = compact[:2]
    if not eu_vat.is_valid(compact):
        raise InvalidInput("this is not a valid EU VAT number", code="invalid_vat_number")
    if VAT_PREFIX_COUNTRY.get(prefix, prefix) != code:
        raise InvalidInput("the VAT number belongs to another country than the buyer's", code="vat_country_mismatch")
    return Buyer(code, compact)


def _share(amount: int, numerator: int, denominator: int) -> int:
    """amount * numerator / denominator rounded half up, in integers."""
    return (2 * amount * numerator + denominator) // (2 * denominator)


def local_rate(policy: TaxPolicy, buyer: Buyer) -> tuple[int, bool]:
    """(rate in basis points, reverse charge) from the shipped table."""
    if buyer.country not in EU_STANDARD_VAT_BP:
        return 0, False  # outside the EU: no EU VAT on the sale
    if buyer.vat_number is not None and buyer.country != policy.seller_country:
        return 0, True
    return EU_STANDARD_VAT_BP[buyer.country], False


def quote(policy: TaxPolicy, buyer: Buyer, *, price: int, discount: int) -> Quote:
    """The order's amounts for a catalog price and a coupon discount (both in the price's terms)."""
    if policy.provider == "stripe":
        # Stripe Tax computes the tax on its page; the order records it at payment (`record_charged`).
        return Quote(subtotal=price, discount=discount, amount=price - discount, tax=0, rate_bp=None,
                     source="stripe", reverse_charge=False, buyer=buyer, inclusive=policy.prices_include_tax)
    rate, reverse = local_rate(policy, buyer)
    if policy.prices_include_tax:
        amount = price - discount
        tax = amount - _share(amount, 10_000, 10_000 + rate)
        return Quote(subtotal=price, discount=discount, amount=amount, tax=tax, rate_bp=rate, source="local",
                     reverse_charge=reverse, buyer=buyer, inclusive=True)
    net = price - discount
    tax = _share(net, rate, 10_000)
    gross_price = price + _share(price, rate, 10_000)
    return Quote(subtotal=gross_price, discount=gross_price - (net + tax), amount=net + tax, tax=tax, rate_bp=rate,
                 source="local", reverse_charge=reverse, buyer=buyer, inclusive=False)


def apply_quote(order: Order, q: Quote) -> None:
    order.subtotal_amount, order.discount_amount, order.amount = q.subtotal, q.discount, q.amount
    order.tax_amount, order.tax_rate_bp, order.tax_source = q.tax, q.rate_bp, q.source
    order.tax_inclusive, order.reverse_charge = q.inclusive, q.reverse_charge
    order.buyer_country, order.buyer_vat_number = q.buyer.country, q.buyer.vat_number


def same_buyer(order: Order, buyer: Buyer) -> bool:
    return order.buyer_country == buyer.country and order.buyer_vat_number == buyer.vat_number


def record_charged(order: Order, session_object: dict[str, Any] | None) -> None:
    """Stripe Tax: what Stripe charged (`amount_total`, `total_details.amount_tax`) becomes the order's
    amount and tax, before the order is invoiced and announced; a reverse charge shows as 0 tax with
    Stripe's `reverse` taxability reason. Called by fulfil, under the order's lock, once."""
    if order.tax_source != "stripe" or not session_object:
        return
    total = session_object.get("amount_total")
    details = session_object.get("total_details")
    tax = details.get("amount_tax") if isinstance(details, dict) else None
    if not isinstance(total, int) or not isinstance(tax, int) or not _is_amount(total) or not _is_amount(tax) \
            or tax > total or total <= 0:
        return  # nothing usable: keep the order's own amount, tax unknown (0)
    if str(session_object.get("currency", order.currency)).upper() != order.currency:
        return
    order.amount = total
    order.subtotal_amount = total + order.discount_amount
    order.tax_amount = tax
    net = total - tax
    order.tax_rate_bp = _share(tax, 10_000, net) if net > 0 else None
    breakdown = details.get("breakdown") if isinstance(details, dict) else None
    taxes = breakdown.get("taxes") if isinstance(breakdown, dict) else None
    order.reverse_charge = tax == 0 and any(
        isinstance(t, dict) and t.get("taxability_reason") == "reverse_charge" for t in taxes or [])


def _is_amount(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
