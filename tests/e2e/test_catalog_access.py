"""Catalog through the gateway: per-language full-text search and category edits seen at once in
both run modes, and (distributed) enrollments driven by duplicated and reordered billing events
through the real broker, with two catalog replicas competing for them, an admin's revoke followed
by late payments, and erasure followed by late payments."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any

import aio_pika
import httpx

from common.events import Envelope
from common.events.rabbitmq import RabbitMQBus
from common.testing import RABBITMQ_URL
from gateway.distributed import Topology

from .test_catalog_read import soon as soon_within
from .test_core_path import login

DEMO_INSTRUCTOR = ("instructor@triple.academy", "Instructor-Demo-2026!")
DEMO_ADMIN = ("admin@triple.academy", "Admin-Demo-2026!")
PAID_COURSE = "10000000-0000-4000-8000-000000000001"
DEADLINE_SECONDS = 10.0


def soon(check: Callable[[], bool], what: str) -> None:
    """Events reach both catalog replicas within the deadline."""
    soon_within(check, what, within=DEADLINE_SECONDS)


def test_german_search_and_category_edits_through_the_edge(base_url: str) -> None:
    marker = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=base_url, timeout=15) as client:
        instructor, admin = login(client, *DEMO_INSTRUCTOR), login(client, *DEMO_ADMIN)
        created = client.post("/api/catalog/courses", headers=instructor, json={
            "title": f"Datenbanken für Einsteiger {marker}", "language": "de", "price_amount": 0,
            "currency": "EUR", "sections": [{"title": "Teil 1", "lessons": [{"title": "Lesen", "kind": "text"}]}]})
        assert created.status_code == 201, created.text
        course_id = created.json()["id"]
        assert client.post(f"/api/catalog/courses/{course_id}/publish", headers=instructor).status_code == 200

        def found(**params: str) -> bool:
            response = client.get("/api/catalog/courses", params={"page_size": 100, **params})
            assert response.status_code == 200, response.text
            return course_id in [item["id"] for item in response.json()["items"]]

        # PostgreSQL: only German stemming relates the query to "Datenbanken"; SQLite: a substring.
        soon(lambda: found(q=f"Datenbank {marker}") and found(q=f"Datenbank {marker}", language="de"),
             "German course found by its stem")
        assert not found(q=f"Datenbank {marker}", language="en")

        slug = f"e2e-{marker}"
        category = client.post("/api/catalog/categories", headers=admin, json={"slug": slug, "name": "E2E"})
        assert category.status_code == 201, category.text
        assert not found(category=slug)  # cached, everywhere, as "not there"
        edited = client.patch(f"/api/catalog/courses/{course_id}", headers=instructor, json={"category": slug})
        assert edited.status_code == 200, edited.text
        soon(lambda: found(category=slug), "course listed under its new category")
        soon(lambda: (client.get(f"/api/catalog/courses/{course_id}").json()["category"] or {}).get("slug") == slug,
             "new category in the public detail")


async def _publish(topology: Topology, events: list[Envelope]) -> None:
    bus = RabbitMQBus(RABBITMQ_URL, f"{topology.namespace}.events", service="e2e-billing")
    await bus.start()
    try:
        for envelope in events:
            await bus.publish(envelope)
    finally:
        await bus.close()


async def _drained(topology: Topology) -> bool:
    """No message waiting in catalog's queue or its retry queue."""
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        counts = []
        for suffix in ("", ".retry"):
            queue = await channel.declare_queue(f"{topology.namespace}.catalog.events{suffix}", passive=True)
            counts.append(queue.declaration_result.message_count or 0)
    return sum(counts) == 0


def settle(topology: Topology) -> None:
    """Wait for catalog to take every message, then for the last ones in flight to commit."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not asyncio.run(_drained(topology)):
        assert time.monotonic() < deadline, "catalog did not consume its queue"
        time.sleep(0.1)
    time.sleep(1.0)


def order_event(kind: str, order_id: str, user_id: str, at: str = "2026-11-20T10:00:00+00:00") -> Envelope:
    payload: dict[str, Any] = {"order_id": order_id, "user_id": user_id, "course_id": PAID_COURSE,
                               "currency": "EUR"}
    if kind == "paid":
        payload.update(amount=4900, paid_at=at)
    else:
        payload.update(amount_refunded=4900, refunded_at=at)
    return Envelope.new(f"billing.order.{kind}", payload)


def test_enrollments_under_duplicated_and_reordered_broker_events(distributed: Topology) -> None:
    never, revoked_by_admin, erased = (str(uuid.uuid4()) for _ in range(3))
    orders = {name: str(uuid.uuid4()) for name in ("never", "revoked", "late", "erased", "erased_late")}
    with httpx.Client(base_url=distributed.gateway_url, timeout=15) as client:
        admin = login(client, *DEMO_ADMIN)

        def enrollment(user_id: str) -> dict[str, Any] | None:
            page, found = 1, None
            while found is None:
                response = client.get(f"/api/catalog/courses/{PAID_COURSE}/enrollments", headers=admin,
                                      params={"page": page, "page_size": 100})
                assert response.status_code == 200, response.text
                items = response.json()["items"]
                found = next((item for item in items if item["user_id"] == user_id), None)
                if len(items) < 100:
                    return found
                page += 1
            return found

        # Refund ahead of its payment, each delivered twice, the replicas racing for them.
        refund_first = order_event("refunded", orders["never"], never, "2026-11-21T10:00:00+00:00")
        payment = order_event("paid", orders["never"], never)
        asyncio.run(_publish(distributed, [refund_first, payment, payment, refund_first,
                                           order_event("paid", orders["never"], never)]))
        # Paid, then revoked by an admin; then the same payment re-emitted and an older order's late one.
        paid = order_event("paid", orders["revoked"], revoked_by_admin)
        erased_paid = order_event("paid", orders["erased"], erased)
        asyncio.run(_publish(distributed, [paid, paid, erased_paid]))
        soon(lambda: (enrollment(revoked_by_admin) or {}).get("status") == "active", "paid learner enrolled")
        soon(lambda: (enrollment(erased) or {}).get("status") == "active", "second learner enrolled")
        revoke = client.post("/api/catalog/admin/enrollments/revoke", headers=admin, json={
            "user_id": revoked_by_admin, "course_id": PAID_COURSE, "reason": "e2e: chargeback fraud"})
        assert revoke.status_code == 200 and revoke.json()["changed"] is True
        erasure = Envelope.new("auth.user.deleted", {"user_id": erased,
                                                     "deleted_at": dt.datetime.now(dt.UTC).isoformat()})
        asyncio.run(_publish(distributed, [
            order_event("paid", orders["revoked"], revoked_by_admin),
            order_event("paid", orders["late"], revoked_by_admin, "2026-11-20T11:00:00+00:00"),
            erasure, erasure]))
        soon(lambda: enrollment(erased) is None, "erased learner gone")
        asyncio.run(_publish(distributed, [order_event("paid", orders["erased_late"], erased),
                                           order_event("paid", orders["erased"], erased)]))
        settle(distributed)

        # Whichever replica took which copy first, the learner whose order was refunded has no access.
        assert (enrollment(never) or {}).get("status") in (None, "revoked")
        state = enrollment(revoked_by_admin) or {}
        assert (state.get("status"), state.get("version"), state.get("order_id")) == (
            "revoked", 2, orders["revoked"])
        assert enrollment(erased) is None
