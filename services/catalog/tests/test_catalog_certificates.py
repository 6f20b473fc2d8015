"""Certificates of completion: issued once when the last video lesson is completed while enrolled,
verifiable by code without exposing anything else, blanked by erasure."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from catalog.models import Certificate

from .conftest import Platform, create_course, set_status

COMPLETED = "playback.lesson.completed"


async def published_course(p: Platform, title: str) -> tuple[str, list[str]]:
    """A published paid course and its video lesson ids (two videos, one text lesson)."""
    course = await create_course(p, title)
    assert (await set_status(p, course["id"], "published")).status_code == 200
    videos = [lesson["id"] for section in course["sections"] for lesson in section["lessons"]
              if lesson["kind"] == "video"]
    assert len(videos) == 2
    return course["id"], videos


async def learner(p: Platform, course_id: str, name: str) -> tuple[str, str]:
    """A registered learner who paid for the course: (user id, order id)."""
    user_id, order_id = str(uuid.uuid4()), str(uuid.uuid4())
    await p.deliver("auth.user.registered", {"user_id": user_id, "email": f"{user_id}@example.com",
                                             "full_name": name, "roles": ["student"]})
    await p.deliver("billing.order.paid", {
        "order_id": order_id, "user_id": user_id, "course_id": course_id, "amount": 1900,
        "currency": "EUR", "paid_at": "2026-11-20T10:00:00Z"})
    return user_id, order_id


def completed(user_id: str, course_id: str, lesson_id: str) -> dict[str, Any]:
    return {"user_id": user_id, "course_id": course_id, "lesson_id": lesson_id,
            "completed_at": "2026-11-22T10:00:00Z"}


async def certificates_of(p: Platform, user_id: str) -> list[Certificate]:
    async with p.catalog_app.state.runtime.db.session() as session:
        return list(await session.scalars(sa.select(Certificate).where(Certificate.user_id == uuid.UUID(user_id))))


async def test_last_video_lesson_issues_one_certificate_verifiable_by_code(platform: Platform) -> None:
    course_id, videos = await published_course(platform, "Certified Course")
    await platform.deliver("auth.user.registered", {
        "user_id": platform.user_id("instructor"), "email": "instructor@triple.academy",
        "full_name": "Ines Instructor", "roles": ["instructor"]})
    user_id, _ = await learner(platform, course_id, "Zoë Learner")

    first = await platform.deliver(COMPLETED, completed(user_id, course_id, videos[0]))
    assert await certificates_of(platform, user_id) == []  # one video lesson still to go
    await platform.deliver(COMPLETED, completed(user_id, course_id, videos[1]))
    await platform.deliver(COMPLETED, completed(user_id, course_id, videos[1]))  # a second crossing event
    await platform.deliver(COMPLETED, first.payload, event_id=first.event_id)  # a redelivery
    [certificate] = await certificates_of(platform, user_id)
    assert len(certificate.code) == 22 and certificate.instructor_name == "Ines Instructor"

    response = await platform.client.get(f"/api/catalog/certificates/{certificate.code}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"valid", "learner_name", "learner_erased", "course_title", "issued_on"}
    assert (body["learner_name"], body["course_title"], body["learner_erased"]) == (
        "Zoë Learner", "Certified Course", False)
    assert user_id not in response.text and course_id not in response.text

    pdf = await platform.client.get(f"/api/catalog/certificates/{certificate.code}/pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")

    # Erasure: the certificate still verifies, as issued to an erased learner.
    await platform.deliver("auth.user.deleted", {"user_id": user_id, "deleted_at": "2026-11-23T10:00:00Z"})
    erased = (await platform.client.get(f"/api/catalog/certificates/{certificate.code}")).json()
    assert (erased["learner_name"], erased["learner_erased"], erased["course_title"]) == (
        None, True, "Certified Course")
    assert (await platform.client.get(f"/api/catalog/certificates/{certificate.code}/pdf")).status_code == 200


async def test_refund_before_completion_issues_none_until_bought_again(platform: Platform) -> None:
    course_id, videos = await published_course(platform, "Refunded Course")
    user_id, order_id = await learner(platform, course_id, "Rita Refund")
    await platform.deliver(COMPLETED, completed(user_id, course_id, videos[0]))
    await platform.deliver("billing.order.refunded", {
        "order_id": order_id, "user_id": user_id, "course_id": course_id, "amount_refunded": 1900,
        "currency": "EUR", "refunded_at": "2026-11-21T10:00:00Z"})
    await platform.deliver(COMPLETED, completed(user_id, course_id, videos[1]))
    assert await certificates_of(platform, user_id) == []

    # Buying again: every lesson was completed already, so the new enrollment is certified at once.
    await platform.deliver("billing.order.paid", {
        "order_id": str(uuid.uuid4()), "user_id": user_id, "course_id": course_id, "amount": 1900,
        "currency": "EUR", "paid_at": "2026-11-24T10:00:00Z"})
    [certificate] = await certificates_of(platform, user_id)
    assert certificate.learner_name == "Rita Refund"


async def test_learner_lists_own_certificates_and_bad_codes_are_refused(platform: Platform) -> None:
    course_id, videos = await published_course(platform, "Student Course")
    student = platform.user_id("student")
    await platform.deliver("billing.order.paid", {
        "order_id": str(uuid.uuid4()), "user_id": student, "course_id": course_id, "amount": 1900,
        "currency": "EUR", "paid_at": "2026-11-20T10:00:00Z"})
    for lesson_id in videos:
        await platform.deliver(COMPLETED, completed(student, course_id, lesson_id))
    mine = await platform.client.get("/api/catalog/me/certificates", headers=platform.auth("student"))
    assert mine.status_code == 200
    [item] = [item for item in mine.json()["items"] if item["course_id"] == course_id]
    assert item["course_title"] == "Student Course"
    others = await platform.client.get("/api/catalog/me/certificates", headers=platform.auth("instructor"))
    assert all(other["course_id"] != course_id for other in others.json()["items"])
    assert (await platform.client.get("/api/catalog/me/certificates")).status_code == 401

    for bad in ("short", "x" * 23, "a" * 21 + "%00", "a" * 21 + "."):
        response = await platform.client.get(f"/api/catalog/certificates/{bad}")
        assert response.status_code in (404, 422), (bad, response.status_code)
        assert response.headers["content-type"].startswith("application/problem+json")
    unknown = await platform.client.get(f"/api/catalog/certificates/{'A' * 22}")
    assert unknown.status_code == 404 and unknown.json()["code"] == "certificate_not_found"
