"""create_app(settings) -> the billing service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import APIRouter, FastAPI

from billing import events
from billing.api import invoices as invoice_routes
from billing.api import local_checkout
from billing.api import revenue as revenue_routes
from billing.api.deps import PROVIDER_RESOURCE, WORKER_RESOURCE
from billing.api.examples import EXAMPLES
from billing.api.routes import router
from billing.providers import open_provider
from billing.settings import BillingSettings
from billing.worker import BillingWorker
from common.app import build_app
from common.events import EventBus
from common.runtime import open_runtime

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def create_app(settings: BillingSettings | None = None, *, bus: EventBus | None = None,
               http_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or BillingSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings, migrations_dir=MIGRATIONS_DIR, handlers=events.HANDLERS,
                                bus=bus, http_transport=http_transport) as runtime:
            provider = open_provider(settings, runtime.http)
            runtime.resources[PROVIDER_RESOURCE] = provider
            worker = BillingWorker(runtime, provider, settings)
            runtime.resources[WORKER_RESOURCE] = worker
            app.state.runtime = runtime
            worker.start()
            try:
                yield
            finally:
                await worker.stop()
                await provider.close()

    routers: list[APIRouter] = [router, invoice_routes.router, revenue_routes.router]
    if settings.payment_provider == "local":
        routers.append(local_checkout.router)
    return build_app(settings, title="Triple Academy billing",
                     description="Orders, payments (Stripe or the local provider), refunds, coupons, receipts.",
                     lifespan=lifespan, routers=routers, examples=EXAMPLES)
