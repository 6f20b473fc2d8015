"""What billing opens besides the shared runtime, typed: read by routes through `ResourcesDep`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from billing.providers import PaymentProvider, open_provider
from billing.settings import BillingSettings
from billing.worker import BillingWorker
from common.app import OpenResources
from common.runtime import Runtime


@dataclass(frozen=True)
class BillingResources:
    provider: PaymentProvider
    worker: BillingWorker


def open_resources(settings: BillingSettings) -> OpenResources:
    """The payment provider and the background worker (receipts, refunds, expiries); the worker
    stops before the provider closes."""

    @asynccontextmanager
    async def open_billing(runtime: Runtime) -> AsyncIterator[BillingResources]:
        provider = open_provider(settings, runtime.http)
        worker = BillingWorker(runtime, provider, settings)
        worker.start()
        try:
            yield BillingResources(provider=provider, worker=worker)
        finally:
            await worker.stop()
            await provider.close()

    return open_billing
