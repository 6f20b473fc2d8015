"""Hand-made enrollment changes (admins, audited), learners of a course, and erasure."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from catalog.models import Enrollment, EnrollmentAudit, ErasedUser, OrderFact

from .conftest import Platform, create_course, set_status

PAID_COURSE = "10000000-0000-4000-8000-000000000001"
FREE_COURSE = "10000000-0000-4000-8000-000000000002"
GRANTED = "catalog.enrollment.granted.v1"
REVOKED = "catalog.enrollment.revoked.v1"


async def admin_change(p: Platform, action: str, user_id: str, course_id: str = PAID_COURSE,
                       who: str = "admin", reason: str = "support ticket 42") -> Any:
    return await p.client.post(f"/api/catalog/admin/enrollments/{action}", headers=p.auth(who),
                               json={"user_id": user_id, "course_id": course_id, "reason": reason})


async def is_enrolled(p: Platform, user_id: str, course_id: str = PAID_COURSE) -> bool:
    response = await p.client.get("/api/catalog/internal/enrollments/check",
                                  params={"user_id": user_id, "course_id": course_id}, headers=p.auth("billing"))
    return bool(response.json()["enrolled"])


def paid(order_id: str, user_id: str, course_id: str = PAID_COURSE) -> dict[str, Any]:
    return {"order_id": order_id, "user_id": user_id, "course_id": course_id, "amount": 4900,
            "currency": "EUR", "paid_at": "2026-11-20T10:00:00Z"}


async def test_admin_grants_and_revokes_by_hand_with_an_audit_trail(platform: Platform) -> None:
    learner = str(uuid.uuid4())
    granted = await admin_change(platform, "grant", learner)
    assert granted.status_code == 200, granted.text
    assert granted.json()["changed"] is True and granted.json()["enrollment"]["source"] == "admin"
    assert await is_enrolled(platform, learner)
    again = await admin_change(platform, "grant", learner)
    assert again.json()["changed"] is False
    revoked = await admin_change(platform, "revoke", learner, reason="chargeback")
    assert revoked.json()["changed"] is True and revoked.json()["enrollment"]["status"] == "revoked"
    assert not await is_enrolled(platform, learner)
    assert (await admin_change(platform, "revoke", learner)).json()["changed"] is False
    regranted = await admin_change(platform, "grant", learner)
    assert regranted.json()["enrollment"]["version"] == 3

    granted_events = await platform.outbox_events(GRANTED, user_id=learner)
    assert [(e["source"], e["version"]) for e in granted_events] == [("admin", 1), ("admin", 3)]
    [revoked_event] = await platform.outbox_events(REVOKED, user_id=learner)
    assert (revoked_event["reason"], revoked_event["version"]) == ("admin", 2)

    audit = await platform.client.get("/api/catalog/admin/enrollments/audit", params={"user_id": learner},
                                      headers=platform.auth("admin"))
    entries = audit.json()["items"]
    assert audit.json()["total"] == 5
    assert [(e["action"], e["changed"]) for e in reversed(entries)] == [
        ("grant", True), ("grant", False), ("revoke", True), ("revoke", False), ("grant", True)]
    assert {e["actor_id"] for e in entries} == {platform.user_id("admin")}
    assert entries[2]["reason"] == "chargeback"

    # Refused: not an admin, no reason, unknown course, nothing to revoke; none of them audited.
    assert (await admin_change(platform, "grant", learner, who="instructor")).status_code == 403
    assert (await admin_change(platform, "grant", learner, reason=" ")).status_code == 422
    assert (await admin_change(platform, "grant", learner, course_id=str(uuid.uuid4()))).status_code == 404
    assert (await admin_change(platform, "revoke", str(uuid.uuid4()))).status_code == 404
    assert (await platform.client.get("/api/catalog/admin/enrollments/audit",
                                      headers=platform.auth("instructor"))).status_code == 403
    audit_after = await platform.client.get("/api/catalog/admin/enrollments/audit", params={"user_id": learner},
                                            headers=platform.auth("admin"))
    assert audit_after.json()["total"] == 5


async def test_the_audit_trail_is_append_only(platform: Platform) -> None:
    learner = str(uuid.uuid4())
    await admin_change(platform, "grant", learner)
    db = platform.catalog_app.state.runtime.db
    for statement in (sa.update(EnrollmentAudit).values(reason="rewritten"),
                      sa.update(EnrollmentAudit).values(user_id=uuid.uuid4()),
                      sa.delete(EnrollmentAudit)):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.transaction() as session:
                await session.execute(statement.where(EnrollmentAudit.user_id == uuid.UUID(learner)))


async def test_instructors_see_their_course_learners(platform: Platform) -> None:
    course = await create_course(platform, "Learners Course", price_amount=0)
    assert (await set_status(platform, course["id"], "published")).status_code == 200
    learners = [str(uuid.uuid4()) for _ in range(5)]
    for learner in learners:
        assert (await admin_change(platform, "grant", learner, course_id=course["id"])).status_code == 200
    await admin_change(platform, "revoke", learners[0], course_id=course["id"])
    url = f"/api/catalog/courses/{course['id']}/enrollments"

    first = await platform.client.get(url, params={"page_size": 2}, headers=platform.auth("instructor"))
    assert first.status_code == 200 and first.json()["total"] == 5 and len(first.json()["items"]) == 2
    pages = [first.json()] + [(await platform.client.get(url, params={"page_size": 2, "page": page},
                                                         headers=platform.auth("instructor"))).json()
                              for page in (2, 3)]
    assert sorted(item["user_id"] for page in pages for item in page["items"]) == sorted(learners)
    active = await platform.client.get(url, params={"status": "active"}, headers=platform.auth("admin"))
    assert active.json()["total"] == 4
    assert (await platform.client.get(url, headers=platform.auth("other_instructor"))).status_code == 403
    assert (await platform.client.get(url, headers=platform.auth("student"))).status_code == 403
    assert (await platform.client.get(url)).status_code == 401
    assert (await platform.client.get(url, params={"page_size": 500},
                                      headers=platform.auth("instructor"))).status_code == 422
    missing = await platform.client.get(f"/api/catalog/courses/{uuid.uuid4()}/enrollments",
                                        headers=platform.auth("admin"))
    assert missing.status_code == 404


async def test_enrolled_learners_see_the_full_curriculum(platform: Platform) -> None:
    learner_token = platform.auth("student")
    url = f"/api/catalog/courses/{PAID_COURSE}"
    public = (await platform.client.get(url, headers=learner_token)).json()
    paid_lesson = public["sections"][1]["lessons"][0]
    assert paid_lesson["asset_id"] is None and public["sections"][0]["lessons"][1]["body"] is None
    await admin_change(platform, "grant", platform.user_id("student"))
    full = (await platform.client.get(url, headers=learner_token)).json()
    assert full["sections"][1]["lessons"][0]["asset_id"] == "20000000-0000-4000-8000-000000000001"
    assert full["sections"][0]["lessons"][1]["body"]
    anonymous = (await platform.client.get(url)).json()
    assert anonymous["sections"][1]["lessons"][0]["asset_id"] is None
    await admin_change(platform, "revoke", platform.user_id("student"))


async def test_user_deletion_erases_their_enrollments_for_good(platform: Platform) -> None:
    user_id, order_id = str(uuid.uuid4()), str(uuid.uuid4())
    await platform.deliver("billing.order.paid", paid(order_id, user_id))
    await admin_change(platform, "grant", user_id, course_id=FREE_COURSE)
    assert await is_enrolled(platform, user_id) and await is_enrolled(platform, user_id, FREE_COURSE)

    deleted = {"user_id": user_id, "deleted_at": "2026-11-22T10:00:00Z"}
    await platform.deliver("auth.user.deleted", deleted)
    await platform.deliver("auth.user.deleted", deleted)  # re-emitted: nothing more happens
    assert not await is_enrolled(platform, user_id) and not await is_enrolled(platform, user_id, FREE_COURSE)
    revoked = await platform.outbox_events(REVOKED, user_id=user_id)
    assert sorted(e["course_id"] for e in revoked) == sorted([PAID_COURSE, FREE_COURSE])
    assert {e["reason"] for e in revoked} == {"user_deleted"}
    uid = uuid.UUID(user_id)
    async with platform.catalog_app.state.runtime.db.session() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Enrollment)
                                    .where(Enrollment.user_id == uid)) == 0
        assert await session.scalar(sa.select(sa.func.count()).select_from(OrderFact)
                                    .where(OrderFact.user_id == uid)) == 0
        assert await session.scalar(sa.select(sa.func.count()).select_from(EnrollmentAudit)
                                    .where(EnrollmentAudit.user_id == uid)) == 0
        assert await session.get(ErasedUser, uid) is not None

    # A late (or redelivered) payment does not bring the erased learner back; by hand neither.
    await platform.deliver("billing.order.paid", paid(str(uuid.uuid4()), user_id))
    assert not await is_enrolled(platform, user_id)
    refused = await admin_change(platform, "grant", user_id)
    assert refused.status_code == 409 and refused.json()["code"] == "user_erased"


async def test_a_manual_revoke_is_not_undone_by_late_payment_events(platform: Platform) -> None:
    learner, first_order, late_order, new_order, newer_order = (str(uuid.uuid4()) for _ in range(5))
    await platform.deliver("billing.order.paid", paid(first_order, learner))
    assert (await admin_change(platform, "revoke", learner, reason="fraud")).json()["changed"] is True

    # The same payment re-emitted (new event id, so the inbox cannot tell), and another order paid
    # before the revocation but delivered only now: the admin's decision stands.
    await platform.deliver("billing.order.paid", paid(first_order, learner))
    await platform.deliver("billing.order.paid", {**paid(late_order, learner), "paid_at": "2026-11-21T10:00:00Z"})
    await platform.deliver("billing.order.refunded", {**paid(first_order, learner), "amount_refunded": 4900,
                                                      "refunded_at": "2026-11-22T10:00:00Z"})
    assert not await is_enrolled(platform, learner)

    # A purchase made after the revocation is a new decision by the learner: it grants access.
    after = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)).isoformat()
    await platform.deliver("billing.order.paid", {**paid(new_order, learner), "paid_at": after})
    assert await is_enrolled(platform, learner)
    # Refunding it ends access: the late order paid before the revocation does not keep it alive.
    await platform.deliver("billing.order.refunded", {**paid(new_order, learner), "amount_refunded": 4900,
                                                      "refunded_at": after})
    assert not await is_enrolled(platform, learner)

    # Billing's clock ahead of ours: a payment stamped later than a revocation made after it was
    # handled. Its re-emission is still recognised as the payment already handled.
    await platform.deliver("billing.order.paid", {**paid(newer_order, learner), "paid_at": after})
    assert (await admin_change(platform, "revoke", learner)).json()["changed"] is True
    await platform.deliver("billing.order.paid", {**paid(newer_order, learner), "paid_at": after})
    assert not await is_enrolled(platform, learner)

    granted = [(e["version"], e["order_id"]) for e in await platform.outbox_events(GRANTED, user_id=learner)]
    revoked = [(e["version"], e["reason"]) for e in await platform.outbox_events(REVOKED, user_id=learner)]
    assert granted == [(1, first_order), (3, new_order), (5, newer_order)]
    assert revoked == [(2, "admin"), (4, "refunded"), (6, "admin")]


async def test_a_learner_cannot_undo_a_manual_revoke_of_a_free_course(platform: Platform) -> None:
    course = await create_course(platform, "Free To Revoke", price_amount=0)
    assert (await set_status(platform, course["id"], "published")).status_code == 200
    url = f"/api/catalog/courses/{course['id']}/enroll"
    student = platform.user_id("student")
    assert (await platform.client.post(url, headers=platform.auth("student"))).status_code == 201
    assert (await admin_change(platform, "revoke", student, course_id=course["id"])).json()["changed"] is True
    refused = await platform.client.post(url, headers=platform.auth("student"))
    assert refused.status_code == 403 and refused.json()["code"] == "revoked_by_admin"
    assert not await is_enrolled(platform, student, course["id"])
    # An admin's grant lifts it; enrolling again is then the usual idempotent no-op.
    assert (await admin_change(platform, "grant", student, course_id=course["id"])).json()["changed"] is True
    assert (await platform.client.post(url, headers=platform.auth("student"))).status_code == 200
    assert len(await platform.outbox_events(GRANTED, user_id=student, course_id=course["id"])) == 2
