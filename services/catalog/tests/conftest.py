"""An in-process platform (auth + catalog behind one ASGI app, one in-process bus) on a fresh
PostgreSQL database, with catalog's response cache in the real Redis (a unique key prefix per
module), built the way the embedded gateway builds it."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from redis.asyncio import Redis

from auth import service as auth_service
from auth.main import create_app as create_auth_app
from auth.settings import AuthSettings
from catalog.events import HANDLERS
from catalog.main import create_app
from catalog.settings import CatalogSettings
from common.app import compose_services

# --import-mode=importlib does not put test folders on sys.path; the fixture module has a unique name.
sys.path.insert(0, str(Path(__file__).parent))
from common.events import Envelope
from common.events.bus import InProcessBus
from common.events.tables import outbox
from common.http import LazyASGITransport
from common.testing import (
    REDIS_URL,
    ServicePlatform,
    in_process_settings,
    postgres_database,
    serve_in_process,
    unique_name,
)

BILLING_SECRET = "billing-test-secret-123456"
PLAYBACK_SECRET = "playback-test-secret-12345"
CATALOG_SECRET = "catalog-test-secret-123456"
AUTH_SECRET = "auth-test-secret-1234567890"
DEMO_PASSWORDS = {
    "admin": ("admin@triple.academy", "Admin-Demo-2026!"),
    "instructor": ("instructor@triple.academy", "Instructor-Demo-2026!"),
    "student": ("student@triple.academy", "Student-Demo-2026!"),
}
OTHER_INSTRUCTOR = ("other.instructor@example.com", "Other-Instructor-2026!")


@dataclass
class Platform(ServicePlatform):
    auth_app: FastAPI
    bus: InProcessBus
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def catalog_app(self) -> FastAPI:
        return self.app

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def user_id(self, who: str) -> str:
        return str(jwt.decode(self.tokens[who], options={"verify_signature": False})["sub"])

    async def deliver(self, event_type: str, payload: dict[str, Any],
                      event_id: uuid.UUID | None = None) -> Envelope:
        """Hand an event to catalog's inbox consumer, as the transport would."""
        envelope = Envelope.new(event_type, payload)
        if event_id is not None:
            envelope = envelope.model_copy(update={"event_id": event_id})
        return await self.consume(envelope, HANDLERS)

    async def outbox_events(self, routing_key: str, **payload_match: str) -> list[dict[str, Any]]:
        async with self.catalog_app.state.runtime.db.session() as session:
            rows = (await session.execute(
                sa.select(outbox.c.envelope).where(outbox.c.routing_key == routing_key)
                .order_by(outbox.c.created_at))).scalars().all()
        payloads = [row["payload"] for row in rows]
        return [p for p in payloads if all(p.get(k) == v for k, v in payload_match.items())]


ASSET = "20000000-0000-4000-8000-000000000001"  # the demo asset, ready in demo data


def course_body(title: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": title, "subtitle": "A test course", "description": "Long text", "price_amount": 1900,
        "currency": "EUR", "sections": [
            {"title": "Intro", "lessons": [
                {"title": "Hello", "kind": "video", "asset_id": ASSET, "is_preview": True,
                 "duration_seconds": 6},
                {"title": "Notes", "kind": "text", "body": "Read this first."},
            ]},
            {"title": "Core", "lessons": [{"title": "Main", "kind": "video", "asset_id": ASSET}]},
        ]}
    body.update(overrides)
    return body


async def create_course(p: Platform, title: str, who: str = "instructor", **overrides: Any) -> dict[str, Any]:
    response = await p.client.post("/api/catalog/courses", json=course_body(title, **overrides),
                                   headers=p.auth(who))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def set_status(p: Platform, course_id: str, status: str, who: str = "instructor") -> httpx.Response:
    return await p.client.post(f"/api/catalog/courses/{course_id}/status", json={"status": status},
                               headers=p.auth(who))


async def _service_token(client: httpx.AsyncClient, client_id: str, secret: str) -> str:
    response = await client.post("/api/auth/oauth/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "audience": "catalog"})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture(scope="module")
async def platform() -> AsyncIterator[Platform]:
    with postgres_database(["auth", "catalog"]) as urls:
        transport = LazyASGITransport()
        bus = InProcessBus()
        auth_app = create_auth_app(AuthSettings(
            **in_process_settings(urls["auth"]), seed_demo_data=True,
            service_clients=f"billing:{BILLING_SECRET},playback:{PLAYBACK_SECRET},catalog:{CATALOG_SECRET},"
                            f"auth:{AUTH_SECRET}",
        ), bus=bus, http_transport=transport)
        key_prefix = f"{unique_name('catalog')}:"
        catalog_app = create_app(CatalogSettings(
            **in_process_settings(urls["catalog"]), seed_demo_data=True, redis_url=REDIS_URL,
            redis_key_prefix=key_prefix, service_client_secret=CATALOG_SECRET,
        ), bus=bus, http_transport=transport)
        app = compose_services({"auth": auth_app, "catalog": catalog_app}, bus=bus)
        async with serve_in_process(app, transport) as client:
            async with auth_app.state.runtime.db.transaction() as session:
                await auth_service.register(db_session=session, email=OTHER_INSTRUCTOR[0],
                                            password=OTHER_INSTRUCTOR[1], full_name="Otto Other",
                                            roles=["instructor"])
            platform = Platform(client=client, app=catalog_app, auth_app=auth_app, bus=bus)
            for who, (email, password) in DEMO_PASSWORDS.items():
                platform.tokens[who] = await platform.access_token(email, password)
            platform.tokens["other_instructor"] = await platform.access_token(*OTHER_INSTRUCTOR)
            platform.tokens["billing"] = await _service_token(client, "billing", BILLING_SECRET)
            platform.tokens["playback"] = await _service_token(client, "playback", PLAYBACK_SECRET)
            platform.tokens["auth"] = await _service_token(client, "auth", AUTH_SECRET)
            try:
                yield platform
            finally:
                redis = Redis.from_url(REDIS_URL)
                keys = [key async for key in redis.scan_iter(match=f"{key_prefix}*")]
                if keys:
                    await redis.delete(*keys)
                await redis.aclose()
