"""Catalog use cases: authoring and publishing courses, reading the catalog, granting access.

Access follows billing: a paid order grants the enrollment, its refund revokes it. Order facts are
kept so that events arriving out of order (refund before payment) still end in the right state.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from catalog.models import Base, Course, Enrollment, Lesson, OrderFact, Section
from catalog.schemas import (
    CourseCreate,
    CoursePage,
    CourseSummary,
    EnrollmentCheck,
    InternalCourse,
    InternalLesson,
    MyEnrollment,
    MyEnrollments,
)
from common.db import upsert_insert, utcnow
from common.errors import Conflict, Forbidden, NotFound
from common.events import add_event
from common.observability.metrics import count

log = logging.getLogger(__name__)

MAX_SLUG_LENGTH = 80


@dataclass(frozen=True)
class Actor:
    """The user acting; kept free of FastAPI so use cases do not depend on the web layer."""

    user_id: uuid.UUID
    is_admin: bool = False

    def may_manage(self, course: Course) -> bool:
        return self.is_admin or course.instructor_id == self.user_id


# ---------------------------------------------------------------- authoring


def slugify(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:MAX_SLUG_LENGTH].rstrip("-") or "course"


async def _slug_taken(db_session: AsyncSession, slug: str) -> bool:
    return await db_session.scalar(sa.select(Course.id).where(Course.slug == slug)) is not None


async def _free_slug(db_session: AsyncSession, title: str) -> str:
    """A derived slug never fails: a taken one gets a short random suffix."""
    slug = slugify(title)
    while await _slug_taken(db_session, slug):
        slug = f"{slugify(title)[:MAX_SLUG_LENGTH - 7]}-{uuid.uuid4().hex[:6]}"
    return slug


async def create_course(*, db_session: AsyncSession, actor: Actor, data: CourseCreate) -> Course:
    if data.slug is not None:
        if await _slug_taken(db_session, data.slug):
            raise Conflict("a course with this slug already exists", code="slug_taken")
        slug = data.slug
    else:
        slug = await _free_slug(db_session, data.title)
    now = utcnow()
    course = Course(id=uuid.uuid4(), slug=slug, title=data.title, subtitle=data.subtitle,
                    description=data.description, instructor_id=actor.user_id,
                    price_amount=data.price_amount, currency=data.currency, status="draft",
                    created_at=now, updated_at=now, published_at=None, sections=[])
    for section_position, section_data in enumerate(data.sections, start=1):
        section = Section(id=uuid.uuid4(), course_id=course.id, position=section_position,
                          title=section_data.title, lessons=[])
        for lesson_position, lesson_data in enumerate(section_data.lessons, start=1):
            section.lessons.append(Lesson(
                id=uuid.uuid4(), section_id=section.id, course_id=course.id, position=lesson_position,
                title=lesson_data.title, kind=lesson_data.kind, asset_id=lesson_data.asset_id,
                is_preview=lesson_data.is_preview, duration_seconds=lesson_data.duration_seconds))
        course.sections.append(section)
    db_session.add(course)
    try:
        await db_session.flush()
    except IntegrityError as exc:
        # Lost a race for the same slug; raising rolls the whole unit of work back.
        raise Conflict("a course with this slug already exists", code="slug_taken") from exc
    count("catalog", "courses_created")
    return course


async def publish_course(*, db_session: AsyncSession, actor: Actor, course_id: uuid.UUID) -> Course:
    """Idempotent: publishing a published course returns it without a second event."""
    course = await db_session.scalar(
        sa.select(Course).where(Course.id == course_id).with_for_update()
        .execution_options(populate_existing=True))
    if course is None:
        raise NotFound("course not found")
    if not actor.may_manage(course):
        raise Forbidden("only the course's instructor or an admin may publish it")
    if course.status == "archived":
        raise Conflict("an archived course cannot be published", code="course_archived")
    if course.status == "draft":
        lessons = await db_session.scalar(
            sa.select(sa.func.count(Lesson.id)).where(Lesson.course_id == course.id))
        if not lessons:
            raise Conflict("a course needs at least one lesson before it is published",
                           code="course_has_no_lessons")
        now = utcnow()
        course.status = "published"
        course.published_at = now
        course.updated_at = now
        await add_event(db_session, "catalog.course.published", {
            "course_id": str(course.id), "slug": course.slug, "title": course.title,
            "price_amount": course.price_amount, "currency": course.currency,
            "published_at": now.isoformat()})
        count("catalog", "courses_published")
    return await _load_course(db_session, course.id)


# ---------------------------------------------------------------- reading


async def _load_course(db_session: AsyncSession, course_id: uuid.UUID) -> Course:
    course = await db_session.scalar(
        sa.select(Course).where(Course.id == course_id)
        .options(selectinload(Course.sections).selectinload(Section.lessons))
        .execution_options(populate_existing=True))
    if course is None:
        raise NotFound("course not found")
    return course


async def get_course(*, db_session: AsyncSession, course_id: uuid.UUID, actor: Actor | None) -> Course:
    """Published courses are public; a draft or archived one exists only for its owner and admins."""
    course = await db_session.scalar(
        sa.select(Course).where(Course.id == course_id)
        .options(selectinload(Course.sections).selectinload(Section.lessons)))
    if course is None or (course.status != "published" and (actor is None or not actor.may_manage(course))):
        raise NotFound("course not found")
    return course


async def list_published(*, db_session: AsyncSession, page: int, page_size: int) -> CoursePage:
    published = Course.status == "published"
    total = await db_session.scalar(sa.select(sa.func.count(Course.id)).where(published)) or 0
    lesson_counts = (sa.select(Lesson.course_id, sa.func.count(Lesson.id).label("lessons"))
                     .group_by(Lesson.course_id).subquery())
    rows = (await db_session.execute(
        sa.select(Course, sa.func.coalesce(lesson_counts.c.lessons, 0))
        .outerjoin(lesson_counts, lesson_counts.c.course_id == Course.id)
        .where(published)
        .order_by(Course.published_at.desc(), Course.id.desc())
        .offset((page - 1) * page_size).limit(page_size))).all()
    items = [CourseSummary(id=course.id, slug=course.slug, title=course.title, subtitle=course.subtitle,
                           price_amount=course.price_amount, currency=course.currency,
                           instructor_id=course.instructor_id, lesson_count=lessons,
                           published_at=course.published_at)
             for course, lessons in rows]
    return CoursePage(items=items, total=total, page=page, page_size=page_size)


async def my_enrollments(*, db_session: AsyncSession, user_id: uuid.UUID) -> MyEnrollments:
    rows = (await db_session.execute(
        sa.select(Enrollment, Course.title, Course.slug)
        .join(Course, Course.id == Enrollment.course_id)
        .where(Enrollment.user_id == user_id, Enrollment.status == "active")
        .order_by(Enrollment.updated_at.desc()))).all()
    items = [MyEnrollment(course_id=enrollment.course_id, title=title, slug=slug,
                          enrolled_at=enrollment.updated_at, source=enrollment.source)
             for enrollment, title, slug in rows]
    return MyEnrollments(items=items, total=len(items))


# ---------------------------------------------------------------- internal (service-to-service)


async def internal_course(*, db_session: AsyncSession, course_id: uuid.UUID) -> InternalCourse:
    course = await db_session.get(Course, course_id)
    if course is None:
        raise NotFound("course not found")
    return InternalCourse(course_id=course.id, title=course.title, status=course.status,
                          price_amount=course.price_amount, currency=course.currency,
                          is_free=course.is_free)


async def internal_lesson(*, db_session: AsyncSession, lesson_id: uuid.UUID) -> InternalLesson:
    row = (await db_session.execute(
        sa.select(Lesson, Course.status).join(Course, Course.id == Lesson.course_id)
        .where(Lesson.id == lesson_id))).first()
    if row is None:
        raise NotFound("lesson not found")
    lesson, course_status = row
    return InternalLesson(lesson_id=lesson.id, course_id=lesson.course_id, kind=lesson.kind,
                          asset_id=lesson.asset_id, is_preview=lesson.is_preview,
                          course_status=course_status)


async def check_enrollment(*, db_session: AsyncSession, user_id: uuid.UUID,
                           course_id: uuid.UUID) -> EnrollmentCheck:
    found = await db_session.scalar(sa.select(Enrollment.id).where(
        Enrollment.user_id == user_id, Enrollment.course_id == course_id, Enrollment.status == "active"))
    return EnrollmentCheck(enrolled=found is not None)


# ---------------------------------------------------------------- enrollments


async def _insert_if_absent(db_session: AsyncSession, model: type[Base], key: list[str],
                            values: dict[str, Any]) -> bool:
    """INSERT .. ON CONFLICT DO NOTHING on both backends; True if this call inserted the row."""
    table = model.__table__
    assert isinstance(table, sa.Table)
    # RETURNING tells reliably whether a row went in (rowcount is driver-dependent here).
    result = await db_session.execute(upsert_insert(db_session, table).values(**values).on_conflict_do_nothing(
        index_elements=key).returning(*table.primary_key.columns))
    return result.first() is not None


async def _enrollment_for_update(db_session: AsyncSession, user_id: uuid.UUID,
                                 course_id: uuid.UUID) -> Enrollment | None:
    return await db_session.scalar(
        sa.select(Enrollment).where(Enrollment.user_id == user_id, Enrollment.course_id == course_id)
        .with_for_update().execution_options(populate_existing=True))


async def grant_enrollment(*, db_session: AsyncSession, user_id: uuid.UUID, course_id: uuid.UUID,
                           source: str, order_id: uuid.UUID | None = None) -> tuple[Enrollment, bool]:
    """Create or reactivate the (user, course) enrollment; returns it and whether access changed.

    An already active enrollment is left alone, so a repeated grant emits no second event.
    """
    now = utcnow()
    # Insert-if-absent on the natural key, then lock the row: concurrent grants serialise here.
    inserted = await _insert_if_absent(db_session, Enrollment, ["user_id", "course_id"], {
        "id": uuid.uuid4(), "user_id": user_id, "course_id": course_id, "status": "active",
        "source": source, "order_id": order_id, "version": 1, "created_at": now, "updated_at": now})
    enrollment = await _enrollment_for_update(db_session, user_id, course_id)
    if enrollment is None:
        raise RuntimeError("enrollment row vanished inside its own transaction")
    if not inserted:
        if enrollment.status == "active":
            return enrollment, False
        enrollment.status = "active"
        enrollment.source = source
        enrollment.order_id = order_id
        enrollment.version += 1
        enrollment.updated_at = now
    await add_event(db_session, "catalog.enrollment.granted", {
        "enrollment_id": str(enrollment.id), "user_id": str(user_id), "course_id": str(course_id),
        "source": source, "order_id": str(order_id) if order_id else None,
        "version": enrollment.version, "occurred_at": now.isoformat()})
    count("catalog", "enrollments_granted")
    return enrollment, True


async def revoke_enrollment(*, db_session: AsyncSession, enrollment: Enrollment, reason: str) -> None:
    now = utcnow()
    enrollment.status = "revoked"
    enrollment.version += 1
    enrollment.updated_at = now
    await add_event(db_session, "catalog.enrollment.revoked", {
        "enrollment_id": str(enrollment.id), "user_id": str(enrollment.user_id),
        "course_id": str(enrollment.course_id), "reason": reason, "version": enrollment.version,
        "occurred_at": now.isoformat()})
    count("catalog", "enrollments_revoked")


async def enroll_free(*, db_session: AsyncSession, actor: Actor,
                      course_id: uuid.UUID) -> tuple[Enrollment, bool]:
    """Self-enrollment, only for free published courses; paid access comes from billing."""
    course = await db_session.get(Course, course_id)
    if course is None or (course.status != "published" and not actor.may_manage(course)):
        raise NotFound("course not found")
    if course.status != "published":
        raise Conflict("the course is not published", code="course_not_published")
    if not course.is_free:
        raise Conflict("this course is paid: buy it through billing", code="payment_required")
    return await grant_enrollment(db_session=db_session, user_id=actor.user_id, course_id=course.id,
                                  source="free")


async def _order_fact_for_update(db_session: AsyncSession, order_id: uuid.UUID, user_id: uuid.UUID,
                                 course_id: uuid.UUID) -> OrderFact:
    await _insert_if_absent(db_session, OrderFact, ["order_id"], {
        "order_id": order_id, "user_id": user_id, "course_id": course_id})
    fact = await db_session.scalar(
        sa.select(OrderFact).where(OrderFact.order_id == order_id).with_for_update()
        .execution_options(populate_existing=True))
    if fact is None:
        raise RuntimeError("order fact vanished inside its own transaction")
    return fact


async def record_order_paid(*, db_session: AsyncSession, order_id: uuid.UUID, user_id: uuid.UUID,
                            course_id: uuid.UUID, paid_at: dt.datetime) -> None:
    fact = await _order_fact_for_update(db_session, order_id, user_id, course_id)
    if fact.paid_at is None:
        fact.paid_at = paid_at
    if fact.refunded_at is not None:
        log.info("payment of an already refunded order: no access granted",
                 extra={"order_id": str(order_id)})
        count("catalog", "paid_after_refund_ignored")
        return
    if await db_session.get(Course, fact.course_id) is None:
        # Billing only sells courses it read from us: failing loudly sends the event to the DLQ.
        raise LookupError(f"order {order_id} is for unknown course {fact.course_id}")
    await grant_enrollment(db_session=db_session, user_id=fact.user_id, course_id=fact.course_id,
                           source="order", order_id=order_id)


async def record_order_refunded(*, db_session: AsyncSession, order_id: uuid.UUID, user_id: uuid.UUID,
                                course_id: uuid.UUID, refunded_at: dt.datetime) -> None:
    fact = await _order_fact_for_update(db_session, order_id, user_id, course_id)
    if fact.refunded_at is None:
        fact.refunded_at = refunded_at
    enrollment = await _enrollment_for_update(db_session, fact.user_id, fact.course_id)
    if enrollment is None or enrollment.status != "active" or enrollment.order_id != order_id:
        return  # never granted, already revoked, or access came from another order / for free
    await revoke_enrollment(db_session=db_session, enrollment=enrollment, reason="refunded")
