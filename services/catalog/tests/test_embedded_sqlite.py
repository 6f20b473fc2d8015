"""The embedded mode: catalog on its own SQLite file, migrated and seeded on start-up, with the
same event handling as on PostgreSQL (insert-if-absent and row locks have SQLite variants)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path

import sqlalchemy as sa
from catalog_search_fixture import create_fixture, names

from catalog import service
from catalog.events import HANDLERS
from catalog.main import create_app
from catalog.models import Enrollment
from catalog.settings import CatalogSettings
from common.app import compose_services
from common.events import Envelope
from common.events.bus import InProcessBus
from common.events.consumer import InboxConsumer
from common.events.tables import outbox
from common.http import LazyASGITransport
from common.testing import serve_in_process

PAID_COURSE = "10000000-0000-4000-8000-000000000001"


async def test_sqlite_start_seed_and_order_events(tmp_path: Path) -> None:
    settings = CatalogSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/catalog.db",
                               seed_demo_data=True, log_json=False)
    assert settings.should_migrate_on_start and settings.db_schema is None
    transport = LazyASGITransport()
    bus = InProcessBus()
    catalog_app = create_app(settings, bus=bus, http_transport=transport)
    app = compose_services({"catalog": catalog_app}, bus=bus)
    async with serve_in_process(app, transport) as client:
        listing = (await client.get("/api/catalog/courses")).json()
        assert listing["total"] == 2 and {item["slug"] for item in listing["items"]} == {
            "protected-video-streaming-101", "hls-basics-free"}

        user_id, order_id = str(uuid.uuid4()), str(uuid.uuid4())
        payment = Envelope.new("billing.order.paid", {
            "order_id": order_id, "user_id": user_id, "course_id": PAID_COURSE, "amount": 4900,
            "currency": "EUR", "paid_at": "2026-11-20T10:00:00+00:00"})
        await bus.publish(payment)
        await bus.publish(payment)  # redelivery
        consumer = InboxConsumer(catalog_app.state.runtime.db, "catalog", HANDLERS)
        await consumer(Envelope.new("billing.order.paid", payment.payload))  # re-emitted
        await consumer(Envelope.new("billing.order.refunded", {
            "order_id": order_id, "user_id": user_id, "course_id": PAID_COURSE, "amount_refunded": 4900,
            "currency": "EUR", "refunded_at": "2026-11-21T10:00:00+00:00"}))

        async with catalog_app.state.runtime.db.session() as session:
            [enrollment] = (await session.scalars(sa.select(Enrollment).where(
                Enrollment.user_id == uuid.UUID(user_id)))).all()
            keys = (await session.scalars(sa.select(outbox.c.routing_key).order_by(outbox.c.created_at))).all()
        assert (enrollment.status, enrollment.version) == ("revoked", 2)
        assert keys == ["catalog.enrollment.granted.v1", "catalog.enrollment.revoked.v1"]

        # Playback re-measures the demo video; a user is erased (UPDATE/DELETE .. RETURNING on SQLite).
        await consumer(Envelope.new("playback.asset.ready", {
            "asset_id": "20000000-0000-4000-8000-000000000001", "owner_id": None, "duration_seconds": 7,
            "ready_at": "2026-11-21T10:00:00+00:00"}))
        await asyncio.sleep(0.05)  # the after-commit invalidation runs as a task
        detail = (await client.get(f"/api/catalog/courses/{PAID_COURSE}")).json()
        assert detail["duration_seconds"] == 14 and detail["sections"][0]["lessons"][0]["duration_seconds"] == 7
        free_user = uuid.uuid4()
        async with catalog_app.state.runtime.db.transaction() as session:
            await service.grant_enrollment(db_session=session, user_id=free_user,
                                           course_id=uuid.UUID("10000000-0000-4000-8000-000000000002"),
                                           source="free")
        await consumer(Envelope.new("auth.user.deleted", {"user_id": str(free_user)}))
        async with catalog_app.state.runtime.db.session() as session:
            left = await session.scalar(sa.select(sa.func.count()).select_from(Enrollment)
                                        .where(Enrollment.user_id == free_user))
        assert left == 0

        # An admin's revoke beats a late payment (timestamps compared on SQLite too); a later one grants.
        learner = uuid.uuid4()
        admin = service.Actor(user_id=uuid.uuid4(), is_admin=True)
        async with catalog_app.state.runtime.db.transaction() as session:
            await service.admin_grant(db_session=session, actor=admin, user_id=learner,
                                      course_id=uuid.UUID(PAID_COURSE), reason="trial")
        async with catalog_app.state.runtime.db.transaction() as session:
            await service.admin_revoke(db_session=session, actor=admin, user_id=learner,
                                       course_id=uuid.UUID(PAID_COURSE), reason="abuse")

        async def pay(paid_at: str) -> bool:
            await consumer(Envelope.new("billing.order.paid", {
                "order_id": str(uuid.uuid4()), "user_id": str(learner), "course_id": PAID_COURSE, "amount": 4900,
                "currency": "EUR", "paid_at": paid_at}))
            async with catalog_app.state.runtime.db.session() as session:
                check = await service.check_enrollment(db_session=session, user_id=learner,
                                                       course_id=uuid.UUID(PAID_COURSE))
            return check.enrolled

        assert not await pay("2026-11-20T10:00:00+00:00")
        assert await pay((dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)).isoformat())


async def test_sqlite_search_fallback_ranks_like_the_weights(tmp_path: Path) -> None:
    """No tsvector on SQLite: every word must appear somewhere, title > subtitle/tags > description."""
    settings = CatalogSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/catalog.db",
                               seed_demo_data=True, log_json=False)
    transport = LazyASGITransport()
    bus = InProcessBus()
    catalog_app = create_app(settings, bus=bus, http_transport=transport)
    app = compose_services({"catalog": catalog_app}, bus=bus)
    async with serve_in_process(app, transport) as client:
        ids = await create_fixture(catalog_app.state.runtime.db, uuid.uuid4())

        async def search(**params: str) -> list[str]:
            response = await client.get("/api/catalog/courses", params=params)
            assert response.status_code == 200 and response.headers["cache-control"] == "public, max-age=1"
            return names(ids, response.json())

        found = await search(q="Quokka")
        assert found[0] == "in_title" and set(found[1:3]) == {"in_subtitle", "in_tags"}
        assert found[3:] == ["in_description"]
        assert await search(q="quokka encoding") == ["in_title", "in_subtitle"]
        assert await search(q="100%") == []  # LIKE wildcards are literal
        assert await search(q="quokka", price="paid", sort="price") == ["in_description", "in_tags", "in_title"]
        assert await search(language="de") == ["in_tags"]
        # The memory cache serves the embedded mode and is invalidated the same way.
        detail = await client.get(f"/api/catalog/courses/{ids['in_title']}")
        assert detail.status_code == 200 and detail.headers["etag"]
        async with catalog_app.state.runtime.db.transaction() as session:
            await service.change_status(db_session=session, actor=service.Actor(user_id=uuid.uuid4(), is_admin=True),
                                        course_id=uuid.UUID(ids["in_title"]), target="archived")
        await asyncio.sleep(0.05)  # the after-commit invalidation runs as a task
        assert (await client.get(f"/api/catalog/courses/{ids['in_title']}")).status_code == 404
        assert "in_title" not in await search(q="quokka")
