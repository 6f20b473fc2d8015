"""Fixtures of billing's tests; the platform and the fakes live in billing_testkit.py."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# --import-mode=importlib does not put test folders on sys.path; the kit has a unique name.
sys.path.insert(0, str(Path(__file__).parent))

from billing_testkit import FakeStripe, Platform, open_platform, serve_on_free_port


@pytest.fixture(scope="module")
async def platform() -> AsyncIterator[Platform]:
    async with open_platform() as value:
        yield value


@pytest.fixture(scope="module")
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    fake = FakeStripe()
    async with serve_on_free_port(fake.app()) as base_url:
        fake.base_url = base_url
        yield fake


@pytest.fixture(scope="module")
async def stripe_platform(fake_stripe: FakeStripe) -> AsyncIterator[Platform]:
    async with open_platform(payment_provider="stripe", stripe_api_base=fake_stripe.base_url,
                             stripe_api_key="sk_test_fake-key-for-the-fake-api",
                             stripe_max_network_retries=0) as value:
        yield value
