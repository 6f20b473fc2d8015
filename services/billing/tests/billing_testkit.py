"""Billing's test kit (imported by conftest and the tests): in-process platform and fakes.

The platform is the real auth, catalog and billing on real PostgreSQL (catalog's demo data, and
its consumer of billing's events, so the money -> enrollment chain is exercised too). Stripe is
played by a fake of its HTTP API served by uvicorn on a free local port, so the real SDK is used
end to end.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import sqlalchemy as sa
import stripe
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from auth.main import create_app as create_auth_app
from auth.settings import AuthSettings
from billing.main import create_app as create_billing_app
from billing.settings import BillingSettings
from catalog.main import create_app as create_catalog_app
from catalog.settings import CatalogSettings
from common.app import compose_services
from common.db import Database
from common.events.bus import InProcessBus
from common.events.tables import outbox
from common.http import LazyASGITransport
from common.testing import in_process_settings, postgres_database, serve_in_process

DEMO_COURSE_ID = uuid.UUID("10000000-0000-4000-8000-000000000001")
FREE_COURSE_ID = uuid.UUID("10000000-0000-4000-8000-000000000002")
ADMIN = ("admin@triple.academy", "Admin-Demo-2026!")
STUDENT = ("student@triple.academy", "Student-Demo-2026!")
WEBHOOK_SECRET = "whsec_test-webhook-secret-for-billing"
BILLING_CLIENT_SECRET = "billing-test-secret-123456"


# --- catalog outage switch ------------------------------------------------------------------------


@dataclass
class Outage:
    down: bool = False


class OutageMiddleware:
    """Added to catalog's app: while the switch is down, its internal API answers 503."""

    def __init__(self, app: ASGIApp, outage: Outage) -> None:
        self.app = app
        self.outage = outage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.outage.down and scope["type"] == "http" and "/internal/" in scope["path"]:
            await JSONResponse({"detail": "down for the test"}, status_code=503)(scope, receive, send)
            return
        await self.app(scope, receive, send)


# --- Stripe fake ---------------------------------------------------------------------------------


@dataclass
class FakeStripe:
    """Answers the two calls billing makes and records what the SDK sent."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_with: int | None = None
    base_url: str = ""

    def app(self) -> FastAPI:
        app = FastAPI()

        async def record(request: Request) -> dict[str, str]:
            form = dict(parse_qsl((await request.body()).decode()))
            self.requests.append({"path": request.url.path, "headers": dict(request.headers), "form": form})
            if self.fail_with is not None:
                raise HTTPException(self.fail_with, detail="fake outage")
            return form

        @app.post("/v1/checkout/sessions")
        async def create_session(request: Request) -> dict[str, Any]:
            form = await record(request)
            key = request.headers.get("idempotency-key", "")
            session_id = f"cs_test_{uuid.uuid5(uuid.NAMESPACE_URL, key).hex}"
            return {"id": session_id, "object": "checkout.session", "mode": "payment",
                    "client_reference_id": form.get("client_reference_id"),
                    "url": f"https://checkout.stripe.test/c/pay/{session_id}", "payment_status": "unpaid"}

        @app.post("/v1/refunds")
        async def create_refund(request: Request) -> dict[str, Any]:
            form = await record(request)
            key = request.headers.get("idempotency-key", "")
            return {"id": f"re_test_{uuid.uuid5(uuid.NAMESPACE_URL, key).hex[:16]}", "object": "refund",
                    "amount": int(form.get("amount", "0")), "status": "succeeded",
                    "payment_intent": form.get("payment_intent")}

        return app

    def calls(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]


@asynccontextmanager
async def serve_on_free_port(app: FastAPI) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):  # uvicorn exposes only a flag; give it up to 5 s
            if server.started:
                break
            await asyncio.sleep(0.01)
        else:
            raise RuntimeError("fake Stripe server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


# --- platform ------------------------------------------------------------------------------------


@dataclass
class Platform:
    client: httpx.AsyncClient
    billing_db: Database
    catalog_outage: Outage
    settings: BillingSettings
    tokens: dict[str, str] = field(default_factory=dict)

    async def login(self, email: str, password: str) -> str:
        if email not in self.tokens:
            response = await self.client.post("/api/auth/login", json={"email": email, "password": password})
            assert response.status_code == 200, response.text
            self.tokens[email] = response.json()["access_token"]
        return self.tokens[email]

    async def auth(self, who: tuple[str, str]) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.login(*who)}"}

    async def new_user(self) -> tuple[str, str]:
        email, password = f"buyer-{uuid.uuid4().hex[:10]}@example.com", "correct horse battery"
        response = await self.client.post("/api/auth/register", json={
            "email": email, "password": password, "full_name": "Another Buyer"})
        assert response.status_code == 201, response.text
        return email, password

    async def user_id(self, who: tuple[str, str]) -> str:
        response = await self.client.get("/api/auth/me", headers=await self.auth(who))
        return str(response.json()["id"])

    async def draft_course(self) -> uuid.UUID:
        response = await self.client.post("/api/catalog/courses", headers=await self.auth(ADMIN), json={
            "title": f"Draft {uuid.uuid4().hex[:6]}", "price_amount": 1900, "currency": "EUR"})
        assert response.status_code == 201, response.text
        return uuid.UUID(response.json()["id"])

    async def enrolled_courses(self, who: tuple[str, str], *, expect: int) -> list[str]:
        """Catalog's view, once its consumer of billing's events has caught up (or 5 s passed)."""
        courses: list[str] = []
        for _ in range(100):
            response = await self.client.get("/api/catalog/me/enrollments", headers=await self.auth(who))
            courses = [item["course_id"] for item in response.json()["items"]]
            if len(courses) == expect:
                break
            await asyncio.sleep(0.05)
        return courses

    async def checkout(self, who: tuple[str, str], course_id: uuid.UUID = DEMO_COURSE_ID,
                       key: str | None = None) -> httpx.Response:
        headers = await self.auth(who)
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.client.post("/api/billing/checkout", json={"course_id": str(course_id)},
                                      headers=headers)

    async def order(self, order_id: str, who: tuple[str, str] = ADMIN) -> dict[str, Any]:
        response = await self.client.get(f"/api/billing/orders/{order_id}", headers=await self.auth(who))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def session_id(self, order_id: str) -> str:
        async with self.billing_db.session() as session:
            value = await session.scalar(sa.text("SELECT provider_session_id FROM orders WHERE id = :id"),
                                         {"id": uuid.UUID(order_id)})
        assert value
        return str(value)

    def stripe_event(self, event_type: str, order_id: str, session_id: str, *,
                     payment_status: str = "paid", event_id: str | None = None,
                     amount: int = 4900) -> str:
        return json.dumps({
            "id": event_id or f"evt_test_{uuid.uuid4().hex}", "object": "event", "type": event_type,
            "api_version": stripe.api_version, "created": int(time.time()), "livemode": False,
            "data": {"object": {
                "id": session_id, "object": "checkout.session", "client_reference_id": order_id,
                "metadata": {"order_id": order_id}, "payment_status": payment_status,
                "payment_intent": f"pi_test_{order_id[:8]}", "amount_total": amount, "currency": "eur"}},
        })

    def sign(self, payload: str, timestamp: int | None = None) -> str:
        return stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET, timestamp)

    async def deliver(self, payload: str, signature: str | None = None) -> httpx.Response:
        headers = {"Content-Type": "application/json",
                   "Stripe-Signature": signature if signature is not None else self.sign(payload)}
        return await self.client.post("/api/billing/webhooks/stripe", content=payload.encode(),
                                      headers=headers)

    async def events(self, routing_key: str, order_id: str) -> list[dict[str, Any]]:
        """Outbox rows billing wrote for this order (published or not)."""
        async with self.billing_db.session() as session:
            rows = (await session.execute(sa.select(outbox.c.envelope)
                                          .where(outbox.c.routing_key == routing_key))).scalars()
            return [row["payload"] for row in rows if row["payload"]["order_id"] == order_id]

    async def count(self, table: str, order_id: str) -> int:
        async with self.billing_db.session() as session:
            value = await session.scalar(sa.text(f"SELECT count(*) FROM {table} WHERE order_id = :id"),  # noqa: S608
                                         {"id": uuid.UUID(order_id)})
        return int(value or 0)


@asynccontextmanager
async def open_platform(**billing_overrides: Any) -> AsyncIterator[Platform]:
    with postgres_database(["auth", "catalog", "billing"]) as urls:
        transport = LazyASGITransport()
        bus = InProcessBus()
        auth_app = create_auth_app(AuthSettings(
            **in_process_settings(urls["auth"]), seed_demo_data=True,
            service_clients=f"billing:{BILLING_CLIENT_SECRET},catalog:catalog-test-secret-1234,"
                            "playback:playback-test-secret-12345"), bus=bus, http_transport=transport)
        settings = BillingSettings(**{
            **in_process_settings(urls["billing"]), "service_client_secret": BILLING_CLIENT_SECRET,
            "stripe_webhook_secret": WEBHOOK_SECRET, **billing_overrides})
        billing_app = create_billing_app(settings, bus=bus, http_transport=transport)
        catalog_app = create_catalog_app(CatalogSettings(
            **in_process_settings(urls["catalog"]), seed_demo_data=True), bus=bus, http_transport=transport)
        outage = Outage()
        catalog_app.add_middleware(OutageMiddleware, outage=outage)
        platform_app = compose_services({"auth": auth_app, "catalog": catalog_app, "billing": billing_app},
                                        bus=bus)
        billing_db = Database(settings.database_url, settings.db_schema)
        try:
            async with serve_in_process(platform_app, transport) as client:
                yield Platform(client=client, billing_db=billing_db, catalog_outage=outage,
                               settings=settings)
        finally:
            await billing_db.dispose()
