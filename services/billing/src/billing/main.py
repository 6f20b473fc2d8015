"""create_app(settings) -> the billing service."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import APIRouter, FastAPI

from billing import events
from billing.api import evidence as evidence_routes
from billing.api import invoices as invoice_routes
from billing.api import local_checkout
from billing.api import revenue as revenue_routes
from billing.api.examples import EXAMPLES
from billing.api.routes import router
from billing.resources import open_resources
from billing.settings import BillingSettings
from common.app import build_app, service_lifespan
from common.events import EventBus

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def create_app(settings: BillingSettings | None = None, *, bus: EventBus | None = None,
               http_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or BillingSettings()

    lifespan = service_lifespan(settings, migrations_dir=MIGRATIONS_DIR, handlers=events.handlers, bus=bus,
                                http_transport=http_transport, open_resources=open_resources(settings))
    routers: list[APIRouter] = [router, invoice_routes.router, revenue_routes.router, evidence_routes.router,
                               evidence_routes.internal_router]
    if settings.payment_provider == "local":
        routers.append(local_checkout.router)
    return build_app(settings, title="Triple Academy billing",
                     description="Orders, payments (Stripe or the local provider), refunds, coupons, receipts.",
                     lifespan=lifespan, routers=routers, examples=EXAMPLES)
