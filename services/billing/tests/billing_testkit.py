"""Billing's test kit (imported by conftest and the tests): in-process platform and fakes.

The platform is the real auth, catalog, playback and billing on real PostgreSQL (catalog's demo
data, and its consumer of billing's events, so the money -> enrollment chain is exercised too).
Billing's peers answer for real: auth's `/internal/users/{id}` (receipt addresses, 404 once
erased) and playback's `/internal/progress` (the self-refund policy, computed from playback's own
watch-progress rows and catalog's lesson durations). Only Stripe is played by a fake of its HTTP
API served by uvicorn on a free local port, so the real SDK is used end to end.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aio_pika
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
from common.events.envelope import Envelope
from common.events.tables import outbox
from common.http import LazyASGITransport
from common.testing import (
    RABBITMQ_URL,
    MailCatcher,
    ServicePlatform,
    eventually_async,
    in_process_settings,
    postgres_database,
    serve_in_process,
    smtp_server,
    unique_name,
)
from playback import signing
from playback.main import create_app as create_playback_app
from playback.models import WatchProgress
from playback.settings import PlaybackSettings

DEMO_COURSE_ID = uuid.UUID("10000000-0000-4000-8000-000000000001")
FREE_COURSE_ID = uuid.UUID("10000000-0000-4000-8000-000000000002")
ADMIN = ("admin@triple.academy", "Admin-Demo-2026!")
STUDENT = ("student@triple.academy", "Student-Demo-2026!")
WEBHOOK_SECRET = "whsec_test-webhook-secret-for-billing"
BILLING_CLIENT_SECRET = "billing-test-secret-123456"
PLAYBACK_CLIENT_SECRET = "playback-test-secret-12345"
DEMO_ASSET_ID = uuid.UUID("20000000-0000-4000-8000-000000000001")


async def eventually(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Billing's work after a commit (worker, consumers) lands within seconds."""
    return await eventually_async(check, within=5, what=what)


# --- peer outage switch ------------------------------------------------------------------------


@dataclass
class Outage:
    down: bool = False


class OutageMiddleware:
    """Added to a peer's real app (catalog, playback): while the switch is down, its internal API
    answers 503, as a peer that is down or overloaded would."""

    def __init__(self, app: ASGIApp, outage: Outage) -> None:
        self.app = app
        self.outage = outage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.outage.down and scope["type"] == "http" and "/internal/" in scope["path"]:
            await JSONResponse({"detail": "down for the test"}, status_code=503)(scope, receive, send)
            return
        await self.app(scope, receive, send)


# --- Stripe fake ---------------------------------------------------------------------------------


def _stripe_error(status: int, code: str, message: str) -> JSONResponse:
    """Stripe's error body, so the SDK raises the same exception class it would in production."""
    return JSONResponse({"error": {"type": "invalid_request_error", "code": code, "message": message}},
                        status_code=status)


@dataclass
class FakeStripe:
    """Answers the calls billing makes, as Stripe's API would, and records what the SDK sent.

    Tests steer it: `fail_with` (an outage status), `paid_sessions` (what a session retrieve says),
    `refund_status` / `refuse_refunds` (the answer to a refund create).
    """

    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_with: int | None = None
    base_url: str = ""
    paid_sessions: dict[str, str] = field(default_factory=dict)  # session id -> payment intent
    expired_sessions: set[str] = field(default_factory=set)
    refund_status: str = "succeeded"
    refuse_refunds: bool = False
    # session id -> what Stripe Tax charged ({amount_total, currency, total_details}) on a retrieve
    session_totals: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> FastAPI:
        app = FastAPI()

        async def record(request: Request) -> dict[str, str]:
            form = dict(parse_qsl((await request.body()).decode()))
            self.requests.append({"path": request.url.path, "method": request.method,
                                  "headers": dict(request.headers), "form": form})
            if self.fail_with is not None:
                raise HTTPException(self.fail_with, detail="fake outage")
            return form

        def keyed(request: Request, prefix: str) -> str:
            key = request.headers.get("idempotency-key", "") or uuid.uuid4().hex
            return f"{prefix}_{uuid.uuid5(uuid.NAMESPACE_URL, key).hex[:24]}"

        @app.post("/v1/checkout/sessions")
        async def create_session(request: Request) -> dict[str, Any]:
            form = await record(request)
            key = request.headers.get("idempotency-key", "")
            session_id = f"cs_test_{uuid.uuid5(uuid.NAMESPACE_URL, key).hex}"
            return {"id": session_id, "object": "checkout.session", "mode": "payment",
                    "client_reference_id": form.get("client_reference_id"), "status": "open",
                    "url": f"https://checkout.stripe.test/c/pay/{session_id}", "payment_status": "unpaid"}

        @app.get("/v1/checkout/sessions/{session_id}")
        async def retrieve_session(session_id: str, request: Request) -> dict[str, Any]:
            await record(request)
            intent = self.paid_sessions.get(session_id)
            status = "complete" if intent else "expired" if session_id in self.expired_sessions else "open"
            return {"id": session_id, "object": "checkout.session", "mode": "payment",
                    "status": status, "payment_intent": intent,
                    "payment_status": "paid" if intent else "unpaid", **self.session_totals.get(session_id, {})}

        @app.post("/v1/checkout/sessions/{session_id}/expire", response_model=None)
        async def expire_session(session_id: str, request: Request) -> dict[str, Any] | JSONResponse:
            await record(request)
            if session_id in self.paid_sessions or session_id in self.expired_sessions:
                return _stripe_error(400, "checkout_session_not_open", "Only open sessions can be expired.")
            self.expired_sessions.add(session_id)
            return {"id": session_id, "object": "checkout.session", "status": "expired"}

        @app.post("/v1/customers")
        async def create_customer(request: Request) -> dict[str, Any]:
            form = await record(request)
            return {"id": keyed(request, "cus_test"), "object": "customer",
                    "metadata": {"user_id": form.get("metadata[user_id]")}}

        @app.delete("/v1/customers/{customer_id}")
        async def delete_customer(customer_id: str, request: Request) -> dict[str, Any]:
            await record(request)
            return {"id": customer_id, "object": "customer", "deleted": True}

        @app.post("/v1/coupons")
        async def create_coupon(request: Request) -> dict[str, Any]:
            form = await record(request)
            return {"id": keyed(request, "co_test"), "object": "coupon", "duration": form.get("duration")}

        @app.post("/v1/promotion_codes")
        async def create_promotion_code(request: Request) -> dict[str, Any]:
            form = await record(request)
            return {"id": keyed(request, "promo_test"), "object": "promotion_code", "code": form.get("code")}

        @app.post("/v1/refunds", response_model=None)
        async def create_refund(request: Request) -> dict[str, Any] | JSONResponse:
            form = await record(request)
            if self.refuse_refunds:
                return _stripe_error(400, "charge_already_refunded", "Charge has already been refunded.")
            return {"id": keyed(request, "re_test"), "object": "refund",
                    "amount": int(form.get("amount", "0")), "status": self.refund_status,
                    "payment_intent": form.get("payment_intent"),
                    "metadata": {"order_id": form.get("metadata[order_id]"),
                                 "refund_id": form.get("metadata[refund_id]")}}

        return app

    @contextmanager
    def answering(self, **switches: Any) -> Iterator[None]:
        """Steer the fake for a block (`with fake.answering(refund_status="pending"): ...`)."""
        before = {name: getattr(self, name) for name in switches}
        for name, value in switches.items():
            setattr(self, name, value)
        try:
            yield
        finally:
            for name, value in before.items():
                setattr(self, name, value)

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
class Platform(ServicePlatform):
    billing_db: Database
    catalog_outage: Outage
    playback_outage: Outage
    settings: BillingSettings
    mailbox: MailCatcher
    playback_db: Database
    bus: InProcessBus | None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def billing_app(self) -> FastAPI:
        return self.app

    async def publish(self, event_type: str, payload: dict[str, Any]) -> None:
        """An event from another service (in-process bus platforms only)."""
        assert self.bus is not None
        await self.bus.publish(Envelope.new(event_type, payload))

    async def login(self, email: str, password: str) -> str:
        if email not in self.tokens:
            self.tokens[email] = await self.access_token(email, password)
        return self.tokens[email]

    async def auth(self, who: tuple[str, str]) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.login(*who)}"}

    async def new_user(self, full_name: str = "Another Buyer") -> tuple[str, str]:
        _, email, password = await self.register(full_name=full_name, prefix="buyer")
        return email, password

    async def user_id(self, who: tuple[str, str]) -> str:
        response = await self.client.get("/api/auth/me", headers=await self.auth(who))
        return str(response.json()["id"])

    async def watch(self, who: tuple[str, str], share: float, course_id: uuid.UUID = DEMO_COURSE_ID) -> None:
        """The learner watched `share` of every video lesson: rows in playback's own table, as its
        heartbeats leave them (the lesson lengths come from playback's view of catalog's lessons)."""
        response = await self.client.get("/api/playback/progress", params={"course_id": str(course_id)},
                                         headers=await self.auth(who))
        assert response.status_code == 200, response.text
        user_id = uuid.UUID(await self.user_id(who))
        async with self.playback_db.transaction() as session:
            for lesson in response.json()["lessons"]:
                duration = float(lesson["duration_seconds"])
                await session.merge(WatchProgress(
                    user_id=user_id, lesson_id=uuid.UUID(lesson["lesson_id"]), course_id=course_id,
                    asset_id=DEMO_ASSET_ID, position_seconds=duration * share, watched_seconds=duration * share,
                    duration_seconds=duration))

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
                       key: str | None = None, coupon: str | None = None, **tax_fields: str) -> httpx.Response:
        headers = await self.auth(who)
        if key is not None:
            headers["Idempotency-Key"] = key
        body: dict[str, Any] = {"course_id": str(course_id), **tax_fields}
        if coupon is not None:
            body["coupon_code"] = coupon
        return await self.client.post("/api/billing/checkout", json=body, headers=headers)

    async def order(self, order_id: str, who: tuple[str, str] = ADMIN) -> dict[str, Any]:
        response = await self.client.get(f"/api/billing/orders/{order_id}", headers=await self.auth(who))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def pay(self, order_id: str, *, event_id: str | None = None, amount: int = 4900) -> str:
        """The provider's checkout.session.completed for the order, signed and delivered; the outcome."""
        event = self.stripe_event("checkout.session.completed", order_id, await self.session_id(order_id),
                                  event_id=event_id, amount=amount)
        outcome: str = (await self.deliver(event)).json()["outcome"]
        return outcome

    async def paid_order(self, who: tuple[str, str] | None = None, **checkout: Any) -> tuple[tuple[str, str], str]:
        """A new (or the given) buyer's order of the demo course, paid through the webhook."""
        buyer = who or await self.new_user()
        response = await self.checkout(buyer, key=f"t-{uuid.uuid4()}", **checkout)
        assert response.status_code == 201, response.text
        order_id: str = response.json()["order_id"]
        assert await self.pay(order_id, amount=response.json()["amount"]) == "fulfilled"
        return buyer, order_id

    async def session_id(self, order_id: str) -> str:
        async with self.billing_db.session() as session:
            value = await session.scalar(sa.text("SELECT provider_session_id FROM orders WHERE id = :id"),
                                         {"id": uuid.UUID(order_id)})
        assert value
        return str(value)

    def stripe_event(self, event_type: str, order_id: str, session_id: str, *,
                     payment_status: str = "paid", event_id: str | None = None,
                     amount: int = 4900, total_details: dict[str, Any] | None = None) -> str:
        session: dict[str, Any] = {
            "id": session_id, "object": "checkout.session", "client_reference_id": order_id,
            "metadata": {"order_id": order_id}, "payment_status": payment_status,
            "payment_intent": payment_intent_of(order_id), "amount_total": amount, "currency": "eur"}
        if total_details is not None:  # Stripe Tax's result (amount_tax, breakdown)
            session["total_details"] = total_details
        return self.event_json(event_type, session, event_id=event_id)

    def charge_refunded_event(self, order_id: str, amount_refunded: int, *, amount: int = 4900,
                              refunds: list[dict[str, Any]] | None = None) -> str:
        """Stripe's charge.refunded: the charge knows its payment intent, not our order (no metadata)."""
        charge: dict[str, Any] = {
            "id": f"ch_test_{order_id[:8]}", "object": "charge", "amount": amount, "currency": "eur",
            "amount_refunded": amount_refunded, "refunded": amount_refunded >= amount,
            "payment_intent": payment_intent_of(order_id), "metadata": {}}
        if refunds is not None:
            charge["refunds"] = {"object": "list", "data": refunds}
        return self.event_json("charge.refunded", charge)

    def refund_event(self, event_type: str, order_id: str, refund_id: str, amount: int, status: str, *,
                     our_refund_id: str | None = None) -> str:
        return self.event_json(event_type, {
            "id": refund_id, "object": "refund", "amount": amount, "currency": "eur", "status": status,
            "payment_intent": payment_intent_of(order_id),
            "metadata": {"order_id": order_id, "refund_id": our_refund_id} if our_refund_id else {}})

    def event_json(self, event_type: str, obj: dict[str, Any], *, event_id: str | None = None) -> str:
        return json.dumps({
            "id": event_id or f"evt_test_{uuid.uuid4().hex}", "object": "event", "type": event_type,
            "api_version": stripe.api_version, "created": int(time.time()), "livemode": False,
            "data": {"object": obj}})

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

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.billing_db.session() as session:
            return await session.scalar(sa.text(sql), params)

    async def count(self, table: str, order_id: str) -> int:
        async with self.billing_db.session() as session:
            value = await session.scalar(sa.text(f"SELECT count(*) FROM {table} WHERE order_id = :id"),  # noqa: S608
                                         {"id": uuid.UUID(order_id)})
        return int(value or 0)


def payment_intent_of(order_id: str) -> str:
    return f"pi_test_{order_id.replace('-', '')[:16]}"


@asynccontextmanager
async def open_platform(*, broker: str | None = None, **billing_overrides: Any) -> AsyncIterator[Platform]:
    """Auth, catalog and billing in one process on real PostgreSQL; events go through the in-process
    bus, or through RabbitMQ when `broker` names an exchange (queues prefixed with it, deleted after)."""
    with postgres_database(["auth", "catalog", "playback", "billing"]) as urls, smtp_server() as mailbox:
        transport = LazyASGITransport()
        bus = InProcessBus() if broker is None else None
        messaging: dict[str, Any] = {} if broker is None else {
            "broker_url": RABBITMQ_URL, "broker_exchange": broker, "broker_queue_prefix": f"{broker}."}
        auth_app = create_auth_app(AuthSettings(
            **in_process_settings(urls["auth"]), **messaging, seed_demo_data=True,
            service_clients=f"billing:{BILLING_CLIENT_SECRET},catalog:catalog-test-secret-1234,"
                            f"playback:{PLAYBACK_CLIENT_SECRET}"), bus=bus, http_transport=transport)
        settings = BillingSettings(**{
            **in_process_settings(urls["billing"]), **messaging, **mailbox.settings(),
            "service_client_secret": BILLING_CLIENT_SECRET, "stripe_webhook_secret": WEBHOOK_SECRET,
            **billing_overrides})
        billing_app = create_billing_app(settings, bus=bus, http_transport=transport)
        catalog_app = create_catalog_app(CatalogSettings(
            **in_process_settings(urls["catalog"]), **messaging, seed_demo_data=True), bus=bus,
            http_transport=transport)
        outage = Outage()
        catalog_app.add_middleware(OutageMiddleware, outage=outage)
        playback_settings = PlaybackSettings(
            **in_process_settings(urls["playback"]), **messaging, service_client_secret=PLAYBACK_CLIENT_SECRET,
            token_private_key=signing.generate_pem().decode())
        playback_app = create_playback_app(playback_settings, bus=bus, http_transport=transport)
        playback_outage = Outage()
        playback_app.add_middleware(OutageMiddleware, outage=playback_outage)
        platform_app = compose_services({"auth": auth_app, "catalog": catalog_app, "playback": playback_app,
                                         "billing": billing_app}, bus=bus)
        billing_db = Database(settings.database_url.get_secret_value(), settings.db_schema)
        playback_db = Database(playback_settings.database_url.get_secret_value(), playback_settings.db_schema)
        try:
            async with serve_in_process(platform_app, transport) as client:
                yield Platform(client=client, app=billing_app, billing_db=billing_db, catalog_outage=outage,
                               playback_outage=playback_outage, settings=settings, mailbox=mailbox,
                               playback_db=playback_db, bus=bus)
        finally:
            await billing_db.dispose()
            await playback_db.dispose()
            if broker is not None:
                await delete_broker_objects(broker, ["auth", "catalog", "playback", "billing"])


async def delete_broker_objects(exchange: str, consumers: list[str]) -> None:
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        for consumer in consumers:
            for suffix in ("", ".retry", ".dlq"):
                await channel.queue_delete(f"{exchange}.{consumer}.events{suffix}")
        await channel.exchange_delete(exchange)


def new_exchange() -> str:
    return unique_name("billing_test")
