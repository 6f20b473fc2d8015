"""Property test of the Stripe-Signature parser: any header, any body, a 400 or a genuine event."""

from __future__ import annotations

import json
import time

import pytest
import stripe
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.providers.base import verify_webhook
from common.errors import InvalidInput

SECRET = "whsec_property_test_secret"
TOLERANCE = 300
PROPERTY = settings(derandomize=True, max_examples=200, deadline=None, database=None)
EVENT = json.dumps({"id": "evt_1", "object": "event", "type": "checkout.session.completed",
                    "data": {"object": {"id": "cs_1", "object": "checkout.session"}}})


def header_for(payload: str, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(payload, SECRET, timestamp)


# Headers as Starlette hands them over: latin-1 decoded bytes, so any code point below 256, plus
# the shapes of real headers with junk in their values.
HEADERS = st.one_of(
    st.text(st.characters(max_codepoint=255)),
    st.builds(lambda t, sig: f"t={t},v1={sig}", st.text(st.characters(max_codepoint=255), max_size=12),
              st.text(st.characters(max_codepoint=255), max_size=70)),
)


@PROPERTY
@given(header=HEADERS, payload=st.one_of(st.binary(max_size=200), st.just(EVENT.encode())))
def test_any_header_and_body_is_refused_with_400(header: str, payload: bytes) -> None:
    with pytest.raises(InvalidInput):
        verify_webhook(payload, header, SECRET, TOLERANCE)


@PROPERTY
@given(position=st.integers(min_value=0), replacement=st.characters(max_codepoint=255))
def test_a_genuine_header_changed_anywhere_is_refused(position: int, replacement: str) -> None:
    header = header_for(EVENT)
    index = position % len(header)
    changed = header[:index] + replacement + header[index + 1:]
    if changed == header:
        return
    try:
        verify_webhook(EVENT.encode(), changed, SECRET, TOLERANCE)
    except InvalidInput:
        return
    # Only a change the scheme ignores may pass (e.g. in an unused element): the signature still holds.
    assert f"v1={header.split('v1=')[1]}" in changed


def test_genuine_events_are_read_and_non_ascii_signatures_refused() -> None:
    assert verify_webhook(EVENT.encode(), header_for(EVENT), SECRET, TOLERANCE).id == "evt_1"
    with pytest.raises(InvalidInput, match="signature"):
        verify_webhook(EVENT.encode(), f"t={int(time.time())},v1=é", SECRET, TOLERANCE)
    with pytest.raises(InvalidInput, match="signature"):
        verify_webhook(EVENT.encode(), header_for(EVENT, int(time.time()) - 10 * TOLERANCE), SECRET, TOLERANCE)
