"""Billing's order events drive enrollments: idempotent, order-independent, outbox-backed."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

import pydantic
import pytest
import sqlalchemy as sa

from catalog import service
from catalog.models import Enrollment, OrderFact
from common.events import Envelope
from common.events.tables import inbox

from .conftest import Platform

PAID_COURSE = "10000000-0000-4000-8000-000000000001"
FREE_COURSE = "10000000-0000-4000-8000-000000000002"
GRANTED = "catalog.enrollment.granted.v1"
REVOKED = "catalog.enrollment.revoked.v1"


def paid(order_id: str, user_id: str, course_id: str = PAID_COURSE) -> dict[str, Any]:
    return {"order_id": order_id, "user_id": user_id, "course_id": course_id, "amount": 4900,
            "currency": "EUR", "paid_at": "2026-11-20T10:00:00Z"}


def refunded(order_id: str, user_id: str, course_id: str = PAID_COURSE) -> dict[str, Any]:
    return {"order_id": order_id, "user_id": user_id, "course_id": course_id, "amount_refunded": 4900,
            "currency": "EUR", "refunded_at": "2026-11-21T10:00:00Z"}


def ids() -> tuple[str, str]:
    return str(uuid.uuid4()), str(uuid.uuid4())


async def enrollments(p: Platform, user_id: str, course_id: str = PAID_COURSE) -> list[Enrollment]:
    async with p.catalog_app.state.runtime.db.session() as session:
        rows = await session.scalars(sa.select(Enrollment).where(
            Enrollment.user_id == uuid.UUID(user_id), Enrollment.course_id == uuid.UUID(course_id)))
        return list(rows)


async def is_enrolled(p: Platform, user_id: str, course_id: str = PAID_COURSE) -> bool:
    response = await p.client.get("/api/catalog/internal/enrollments/check",
                                  params={"user_id": user_id, "course_id": course_id},
                                  headers=p.auth("playback"))
    assert response.status_code == 200
    return bool(response.json()["enrolled"])


async def test_paid_order_grants_one_enrollment_and_one_event(platform: Platform) -> None:
    order_id, user_id = ids()
    await platform.deliver("billing.order.paid", paid(order_id, user_id))
    [enrollment] = await enrollments(platform, user_id)
    assert (enrollment.status, enrollment.source, enrollment.version) == ("active", "order", 1)
    assert str(enrollment.order_id) == order_id
    assert await is_enrolled(platform, user_id)
    [event] = await platform.outbox_events(GRANTED, user_id=user_id)
    assert event == {"enrollment_id": str(enrollment.id), "user_id": user_id, "course_id": PAID_COURSE,
                     "source": "order", "order_id": order_id, "version": 1,
                     "occurred_at": event["occurred_at"]}


async def test_duplicate_payment_events_grant_once(platform: Platform) -> None:
    order_id, user_id = ids()
    event_id = uuid.uuid4()
    await platform.deliver("billing.order.paid", paid(order_id, user_id), event_id=event_id)
    await platform.deliver("billing.order.paid", paid(order_id, user_id), event_id=event_id)  # redelivery
    await platform.deliver("billing.order.paid", paid(order_id, user_id))  # re-emitted with a new id
    assert len(await enrollments(platform, user_id)) == 1
    assert len(await platform.outbox_events(GRANTED, user_id=user_id)) == 1


async def test_refund_before_payment_leaves_the_learner_out(platform: Platform) -> None:
    order_id, user_id = ids()
    await platform.deliver("billing.order.refunded", refunded(order_id, user_id))
    await platform.deliver("billing.order.paid", paid(order_id, user_id))
    assert await enrollments(platform, user_id) == []
    assert not await is_enrolled(platform, user_id)
    assert await platform.outbox_events(GRANTED, user_id=user_id) == []
    async with platform.catalog_app.state.runtime.db.session() as session:
        fact = await session.get(OrderFact, uuid.UUID(order_id))
    assert fact is not None and fact.paid_at is not None and fact.refunded_at is not None


async def test_refund_after_payment_revokes_with_a_higher_version(platform: Platform) -> None:
    order_id, user_id = ids()
    await platform.deliver("billing.order.paid", paid(order_id, user_id))
    await platform.deliver("billing.order.refunded", refunded(order_id, user_id))
    await platform.deliver("billing.order.refunded", refunded(order_id, user_id))  # re-emitted
    [enrollment] = await enrollments(platform, user_id)
    assert (enrollment.status, enrollment.version) == ("revoked", 2)
    assert not await is_enrolled(platform, user_id)
    [granted] = await platform.outbox_events(GRANTED, user_id=user_id)
    [revoked] = await platform.outbox_events(REVOKED, user_id=user_id)
    assert revoked["version"] > granted["version"]
    assert revoked == {"enrollment_id": str(enrollment.id), "user_id": user_id, "course_id": PAID_COURSE,
                       "reason": "refunded", "version": 2, "occurred_at": revoked["occurred_at"]}

    # Buying again reactivates the same enrollment, one version further.
    second_order = str(uuid.uuid4())
    await platform.deliver("billing.order.paid", paid(second_order, user_id))
    [enrollment] = await enrollments(platform, user_id)
    assert (enrollment.status, enrollment.version, str(enrollment.order_id)) == ("active", 3, second_order)
    regranted = await platform.outbox_events(GRANTED, user_id=user_id)
    assert [e["version"] for e in regranted] == [1, 3]


async def test_refund_of_another_order_keeps_access(platform: Platform) -> None:
    user_id = str(uuid.uuid4())
    first_order, second_order = str(uuid.uuid4()), str(uuid.uuid4())
    await platform.deliver("billing.order.paid", paid(first_order, user_id))
    await platform.deliver("billing.order.paid", paid(second_order, user_id))  # bought twice by mistake
    await platform.deliver("billing.order.refunded", refunded(second_order, user_id))
    assert await is_enrolled(platform, user_id)
    assert await platform.outbox_events(REVOKED, user_id=user_id) == []
    # A refund never takes away access that was not bought with that order (free enrollment).
    async with platform.catalog_app.state.runtime.db.transaction() as session:
        await service.grant_enrollment(db_session=session, user_id=uuid.UUID(user_id),
                                       course_id=uuid.UUID(FREE_COURSE), source="free")
    await platform.deliver("billing.order.refunded", refunded(str(uuid.uuid4()), user_id, FREE_COURSE))
    assert await is_enrolled(platform, user_id, FREE_COURSE)


async def test_malformed_payload_is_rejected_without_side_effects(platform: Platform) -> None:
    user_id = str(uuid.uuid4())
    broken = paid("not-a-uuid", user_id)
    with pytest.raises(pydantic.ValidationError):
        await platform.deliver("billing.order.paid", broken)
    naive = {**paid(str(uuid.uuid4()), user_id), "paid_at": "2026-11-20T10:00:00"}
    event_id = uuid.uuid4()
    with pytest.raises(pydantic.ValidationError):
        await platform.deliver("billing.order.paid", naive, event_id=event_id)
    async with platform.catalog_app.state.runtime.db.session() as session:
        seen = await session.scalar(sa.select(inbox.c.event_id).where(inbox.c.event_id == event_id))
    assert seen is None  # not marked processed: the transport retries or dead-letters it
    assert await enrollments(platform, user_id) == []


async def test_bus_delivery_reaches_my_enrollments(platform: Platform) -> None:
    """Through the shared in-process bus, as billing's outbox relay would publish it."""
    student = platform.user_id("student")
    order_id = str(uuid.uuid4())
    await platform.bus.publish(Envelope.new("billing.order.paid", paid(order_id, student)))
    mine = (await platform.client.get("/api/catalog/me/enrollments", headers=platform.auth("student"))).json()
    item = next(item for item in mine["items"] if item["course_id"] == PAID_COURSE)
    assert item["title"] == "Protected Video Streaming 101" and item["source"] == "order"
    check = await platform.client.get("/api/catalog/internal/enrollments/check",
                                      params={"user_id": student, "course_id": PAID_COURSE},
                                      headers=platform.auth("billing"))
    assert check.json() == {"enrolled": True}

    await platform.bus.publish(Envelope.new("billing.order.refunded", refunded(order_id, student)))
    mine = (await platform.client.get("/api/catalog/me/enrollments", headers=platform.auth("student"))).json()
    assert PAID_COURSE not in [item["course_id"] for item in mine["items"]]


async def test_concurrent_deliveries_of_one_payment_grant_once(platform: Platform) -> None:
    """Re-emitted copies (distinct event ids, so the inbox cannot help) racing on PostgreSQL."""
    order_id, user_id = ids()
    await asyncio.gather(*(platform.deliver("billing.order.paid", paid(order_id, user_id)) for _ in range(5)))
    assert len(await enrollments(platform, user_id)) == 1
    assert len(await platform.outbox_events(GRANTED, user_id=user_id)) == 1


async def access_history(p: Platform, user_id: str) -> list[tuple[int, str]]:
    """(version, granted|revoked) of every access event for this user, in version order."""
    granted = [(e["version"], "granted") for e in await p.outbox_events(GRANTED, user_id=user_id)]
    revoked = [(e["version"], "revoked") for e in await p.outbox_events(REVOKED, user_id=user_id)]
    return sorted(granted + revoked)


def consistent(history: list[tuple[int, str]], enrolled: bool) -> bool:
    """Grants and revocations alternate with growing versions and end in the current state."""
    kinds = [kind for _, kind in history]
    alternating = all(kind == ("granted" if index % 2 == 0 else "revoked") for index, kind in enumerate(kinds))
    versions = [version for version, _ in history]
    return alternating and versions == sorted(set(versions)) and (kinds[-1:] == ["granted"]) == enrolled


@pytest.mark.parametrize(("script", "enrolled"), [
    # (event, order) in every arrival order; each event is also delivered twice with distinct ids.
    ((("paid", 1), ("refunded", 1)), False),
    ((("paid", 1), ("paid", 2), ("refunded", 2)), True),  # bought twice, the second one refunded
    ((("paid", 1), ("paid", 2), ("refunded", 1)), True),  # ... or the first one refunded
    ((("paid", 1), ("paid", 2), ("refunded", 1), ("refunded", 2)), False),
])
async def test_every_arrival_order_with_duplicates_ends_the_same(
        platform: Platform, script: tuple[tuple[str, int], ...], enrolled: bool) -> None:
    for permutation in itertools.permutations(script):
        user_id = str(uuid.uuid4())
        orders = {number: str(uuid.uuid4()) for _, number in script}
        for kind, number in permutation:
            payload = (paid if kind == "paid" else refunded)(orders[number], user_id)
            first = await platform.deliver(f"billing.order.{kind}", payload)
            await platform.deliver(f"billing.order.{kind}", payload, event_id=first.event_id)  # redelivered
            await platform.deliver(f"billing.order.{kind}", payload)  # re-emitted
        assert await is_enrolled(platform, user_id) is enrolled, permutation
        history = await access_history(platform, user_id)
        assert consistent(history, enrolled), (permutation, history)


async def test_late_events_after_erasure_change_nothing(platform: Platform) -> None:
    order_id, user_id = ids()
    await platform.deliver("billing.order.paid", paid(order_id, user_id))
    await platform.deliver("auth.user.deleted", {"user_id": user_id, "deleted_at": "2026-11-22T10:00:00Z"})
    late_paid = await platform.deliver("billing.order.paid", paid(order_id, user_id))  # re-emitted, late
    await platform.deliver("billing.order.paid", paid(order_id, user_id), event_id=late_paid.event_id)
    await platform.deliver("billing.order.refunded", refunded(order_id, user_id))
    await platform.deliver("billing.order.paid", paid(str(uuid.uuid4()), user_id))  # another, older order
    assert not await is_enrolled(platform, user_id)
    assert await enrollments(platform, user_id) == []
    async with platform.catalog_app.state.runtime.db.session() as session:
        facts = await session.scalar(sa.select(sa.func.count()).select_from(OrderFact)
                                     .where(OrderFact.user_id == uuid.UUID(user_id)))
    assert facts == 0  # nothing about the erased user is written back
    assert await access_history(platform, user_id) == [(1, "granted"), (2, "revoked")]

    # Erasure first, then the payment (reordered): never enrolled at all.
    order_id, user_id = ids()
    await platform.deliver("auth.user.deleted", {"user_id": user_id, "deleted_at": "2026-11-22T10:00:00Z"})
    await platform.deliver("billing.order.paid", paid(order_id, user_id))
    assert await enrollments(platform, user_id) == [] and await access_history(platform, user_id) == []
