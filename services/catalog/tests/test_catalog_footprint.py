"""Certificates for access granted after the lessons were done (free enrollment, admin grant), the
name backfill from auth, and catalog's parts of the evidence trail and the data export."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import sqlalchemy as sa
from pypdf import PdfReader

from catalog import certificates
from catalog.models import Certificate, EnrollmentHistory, UserName

from .conftest import Platform, create_course, set_status
from .test_catalog_certificates import COMPLETED, certificates_of, completed, published_course


async def _complete_all(p: Platform, user_id: str, course_id: str, videos: list[str]) -> None:
    for lesson_id in videos:
        await p.deliver(COMPLETED, completed(user_id, course_id, lesson_id))


async def test_free_enrollment_and_admin_grant_certify_lessons_already_completed(platform: Platform) -> None:
    free = await create_course(platform, "Free Then Certified", price_amount=0)
    assert (await set_status(platform, free["id"], "published")).status_code == 200
    free_videos = [lesson["id"] for section in free["sections"] for lesson in section["lessons"]
                   if lesson["kind"] == "video"]
    student = platform.user_id("student")
    await _complete_all(platform, student, free["id"], free_videos)  # e.g. previews, or before a revocation
    assert [c for c in await certificates_of(platform, student) if str(c.course_id) == free["id"]] == []
    enrolled = await platform.client.post(f"/api/catalog/courses/{free['id']}/enroll", headers=platform.auth("student"))
    assert enrolled.status_code == 201, enrolled.text
    assert [str(c.course_id) for c in await certificates_of(platform, student)].count(free["id"]) == 1

    paid_course, videos = await published_course(platform, "Granted Then Certified")
    learner = str(uuid.uuid4())
    await platform.deliver("auth.user.registered", {"user_id": learner, "email": f"{learner}@example.com",
                                                    "full_name": "Gina Granted", "roles": ["student"]})
    await _complete_all(platform, learner, paid_course, videos)
    assert await certificates_of(platform, learner) == []
    grant = await platform.client.post("/api/catalog/admin/enrollments/grant", headers=platform.auth("admin"),
                                       json={"user_id": learner, "course_id": paid_course, "reason": "support"})
    assert grant.status_code == 200 and grant.json()["changed"] is True, grant.text
    [certificate] = await certificates_of(platform, learner)
    assert certificate.learner_name == "Gina Granted"
    again = await platform.client.post("/api/catalog/admin/enrollments/grant", headers=platform.auth("admin"),
                                       json={"user_id": learner, "course_id": paid_course, "reason": "support"})
    assert again.json()["changed"] is False and len(await certificates_of(platform, learner)) == 1


async def test_names_are_backfilled_from_auth_but_never_for_an_erased_learner(platform: Platform) -> None:
    course_id, videos = await published_course(platform, "Certified Before Names")
    db = platform.catalog_app.state.runtime.db
    instructor = platform.user_id("other_instructor")  # a real auth account catalog never heard of
    erased = str(uuid.uuid4())
    for user_id in (instructor, erased):
        async with db.transaction() as session:
            await session.execute(sa.delete(UserName).where(UserName.user_id == uuid.UUID(user_id)))
        await platform.client.post("/api/catalog/admin/enrollments/grant", headers=platform.auth("admin"),
                                   json={"user_id": user_id, "course_id": course_id, "reason": "test"})
        await _complete_all(platform, user_id, course_id, videos)
    [unnamed] = await certificates_of(platform, instructor)
    assert unnamed.learner_name is None
    await platform.deliver("auth.user.deleted", {"user_id": erased, "deleted_at": "2026-11-23T10:00:00Z"})

    refused = await platform.client.post("/api/catalog/admin/certificates/backfill-names",
                                         headers=platform.auth("student"))
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    done = await platform.client.post("/api/catalog/admin/certificates/backfill-names", headers=platform.auth("admin"))
    assert done.status_code == 200, done.text
    assert done.json()["users_read"] >= 4 and done.json()["names_stored"] >= 1
    [named] = await certificates_of(platform, instructor)
    assert named.learner_name == "Otto Other"
    async with db.session() as session:
        erased_certificates = list(await session.scalars(sa.select(Certificate).where(
            Certificate.course_id == uuid.UUID(course_id), Certificate.user_id.is_(None))))
        assert [c.learner_name for c in erased_certificates] == [None]
        assert await session.get(UserName, uuid.UUID(erased)) is None
        # Erasure keeps the access history's steps, not the person.
        steps = list(await session.scalars(sa.select(EnrollmentHistory).where(
            EnrollmentHistory.course_id == uuid.UUID(course_id))))
        assert sorted(step.action for step in steps) == ["granted", "granted", "revoked"]  # two grants, one erasure
        assert str(erased) not in {str(step.user_id) for step in steps}
    again = await platform.client.post("/api/catalog/admin/certificates/backfill-names", headers=platform.auth("admin"))
    assert again.json()["names_stored"] == 0  # idempotent


async def test_export_and_trail_parts_are_the_users_own_and_for_their_caller_only(platform: Platform) -> None:
    course_id, videos = await published_course(platform, "Exported Course")
    learner, other = str(uuid.uuid4()), str(uuid.uuid4())
    for user_id in (learner, other):
        await platform.client.post("/api/catalog/admin/enrollments/grant", headers=platform.auth("admin"),
                                   json={"user_id": user_id, "course_id": course_id, "reason": "test"})
    await _complete_all(platform, learner, course_id, videos)

    export_url = f"/api/catalog/internal/users/{learner}/export"
    assert (await platform.client.get(export_url, headers=platform.auth("billing"))).status_code == 403
    assert (await platform.client.get(export_url, headers=platform.auth("student"))).status_code == 403
    export = await platform.client.get(export_url, headers=platform.auth("auth"))
    assert export.status_code == 200, export.text
    body = export.json()
    assert [e["course_id"] for e in body["enrollments"]] == [course_id]
    assert [c["course_id"] for c in body["certificates"]] == [course_id]
    assert sorted(c["lesson_id"] for c in body["completed_lessons"]) == sorted(videos)
    assert [h["action"] for h in body["enrollment_history"]] == ["granted"]
    assert other not in export.text

    trail_url = f"/api/catalog/internal/users/{learner}/evidence"
    assert (await platform.client.get(trail_url, headers=platform.auth("auth"))).status_code == 403
    trail = await platform.client.get(trail_url, params={"course_id": course_id}, headers=platform.auth("billing"))
    assert trail.status_code == 200, trail.text
    kinds = [entry["kind"] for entry in trail.json()["entries"]]
    assert {"enrollment.granted", "enrollment.admin_grant", "certificate.issued"} <= set(kinds)
    assert other not in trail.text
    too_many = await platform.client.get(trail_url, params={"limit": 5000}, headers=platform.auth("billing"))
    assert too_many.status_code == 422


def test_certificate_pdfs_print_names_in_other_scripts() -> None:
    certificate = Certificate(code="A" * 22, course_title="Ψηφιακό βίντεο", learner_name="Ελένη Иванова Łukasz",
                              instructor_name="Zoë", issued_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(certificates.render_pdf(certificate))).pages)
    assert "Ελένη Иванова Łukasz" in text and "Ψηφιακό βίντεο" in text and "taught by Zoë" in text
