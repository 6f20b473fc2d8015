"""Catalog's part of the evidence trail and of a learner's data export.

The enrollment row holds only the current state; `enrollment_history` keeps every grant and
revocation with the request (or event correlation id) that caused it. Billing assembles the trail
and auth the export through the internal routes in `catalog.api.evidence`; neither reads these
tables.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import Certificate, Course, Enrollment, EnrollmentAudit, EnrollmentHistory, LessonCompletion


async def record_step(db_session: AsyncSession, enrollment: Enrollment, action: str, source: str) -> None:
    """One grant or revocation, in the transaction that made it (request id from the context)."""
    db_session.add(EnrollmentHistory(
        id=uuid.uuid4(), enrollment_id=enrollment.id, user_id=enrollment.user_id, course_id=enrollment.course_id,
        action=action, source=source[:32], order_id=enrollment.order_id, version=enrollment.version,
        at=enrollment.updated_at))


async def erase_user(*, db_session: AsyncSession, user_id: uuid.UUID) -> None:
    """Erasure keeps the steps (they are the course's access history) but not the person."""
    await db_session.execute(sa.update(EnrollmentHistory).where(EnrollmentHistory.user_id == user_id)
                             .values(user_id=None))


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


async def trail(*, db_session: AsyncSession, user_id: uuid.UUID, course_id: uuid.UUID | None,
                limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The user's enrollment steps and admin actions (for one course or all), oldest first, at most
    `limit` of each kind (the newest); the flag says whether some were left out."""
    steps_query = sa.select(EnrollmentHistory).where(EnrollmentHistory.user_id == user_id)
    audit_query = sa.select(EnrollmentAudit).where(EnrollmentAudit.user_id == user_id)
    certificates_query = sa.select(Certificate).where(Certificate.user_id == user_id)
    if course_id is not None:
        steps_query = steps_query.where(EnrollmentHistory.course_id == course_id)
        audit_query = audit_query.where(EnrollmentAudit.course_id == course_id)
        certificates_query = certificates_query.where(Certificate.course_id == course_id)
    steps = list(await db_session.scalars(steps_query.order_by(EnrollmentHistory.at.desc()).limit(limit + 1)))
    audits = list(await db_session.scalars(audit_query.order_by(EnrollmentAudit.at.desc()).limit(limit + 1)))
    issued = list(await db_session.scalars(certificates_query.order_by(Certificate.issued_at.desc())
                                           .limit(limit + 1)))
    truncated = max(len(steps), len(audits), len(issued)) > limit
    entries = [{
        "at": _iso(step.at), "kind": f"enrollment.{step.action}", "request_id": step.request_id,
        "detail": {"enrollment_id": str(step.enrollment_id), "course_id": str(step.course_id),
                   "source" if step.action == "granted" else "reason": step.source,
                   "order_id": str(step.order_id) if step.order_id else None, "version": step.version},
    } for step in steps[:limit]]
    entries += [{
        "at": _iso(row.at), "kind": f"enrollment.admin_{row.action}", "request_id": row.request_id,
        "detail": {"course_id": str(row.course_id), "actor_id": str(row.actor_id) if row.actor_id else None,
                   "reason": row.reason, "changed": row.changed},
    } for row in audits[:limit]]
    entries += [{
        "at": _iso(row.issued_at), "kind": "certificate.issued", "request_id": None,
        "detail": {"course_id": str(row.course_id), "code": row.code},
    } for row in issued[:limit]]
    return entries, truncated


async def export(*, db_session: AsyncSession, user_id: uuid.UUID) -> dict[str, Any]:
    """Everything catalog holds about the user: enrollments (with their history), certificates,
    completed lessons, and the courses they teach."""
    enrollments = await db_session.execute(
        sa.select(Enrollment, Course.title).join(Course, Course.id == Enrollment.course_id)
        .where(Enrollment.user_id == user_id).order_by(Enrollment.created_at))
    steps = await db_session.scalars(sa.select(EnrollmentHistory).where(EnrollmentHistory.user_id == user_id)
                                     .order_by(EnrollmentHistory.at))
    certificates = await db_session.scalars(sa.select(Certificate).where(Certificate.user_id == user_id)
                                            .order_by(Certificate.issued_at))
    completions = await db_session.scalars(sa.select(LessonCompletion).where(LessonCompletion.user_id == user_id)
                                           .order_by(LessonCompletion.completed_at))
    taught = await db_session.scalars(sa.select(Course).where(Course.instructor_id == user_id)
                                      .order_by(Course.created_at))
    return {
        "enrollments": [{
            "id": str(row.id), "course_id": str(row.course_id), "course_title": title, "status": row.status,
            "source": row.source, "order_id": str(row.order_id) if row.order_id else None,
            "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at),
        } for row, title in enrollments.all()],
        "enrollment_history": [{
            "enrollment_id": str(row.enrollment_id), "course_id": str(row.course_id), "action": row.action,
            "source": row.source, "at": _iso(row.at),
        } for row in steps],
        "certificates": [{
            "code": row.code, "course_id": str(row.course_id), "course_title": row.course_title,
            "learner_name": row.learner_name, "instructor_name": row.instructor_name,
            "issued_at": _iso(row.issued_at),
        } for row in certificates],
        "completed_lessons": [{
            "lesson_id": str(row.lesson_id), "course_id": str(row.course_id),
            "completed_at": _iso(row.completed_at),
        } for row in completions],
        "courses_taught": [{
            "id": str(row.id), "slug": row.slug, "title": row.title, "status": row.status,
            "created_at": _iso(row.created_at),
        } for row in taught],
    }
