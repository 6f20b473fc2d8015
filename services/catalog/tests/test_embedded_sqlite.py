"""The embedded mode: catalog on its own SQLite file, migrated and seeded on start-up, with the
same event handling as on PostgreSQL (insert-if-absent and row locks have SQLite variants)."""

from __future__ import annotations

import uuid
from pathlib import Path

import sqlalchemy as sa

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
