"""Reading the catalog: published courses, a caller's access, taught courses and enrollments."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from catalog.models import (
    Course,
    CourseInstructor,
    Enrollment,
)
from catalog.schemas import (
    CourseEnrollment,
    CourseEnrollmentPage,
    CoursePage,
    CourseRead,
    CourseSummary,
    LessonRead,
    MyEnrollment,
    MyEnrollments,
    SectionRead,
)
from catalog.search import CourseQuery, course_statements
from common.db import Database
from common.errors import Forbidden, NotFound

from .loading import DETAIL_OPTIONS, READ_OPTIONS, Actor


async def _is_enrolled(db_session: AsyncSession, user_id: uuid.UUID, course_id: uuid.UUID) -> bool:
    found = await db_session.scalar(sa.select(Enrollment.id).where(
        Enrollment.user_id == user_id, Enrollment.course_id == course_id, Enrollment.status == "active"))
    return found is not None


def _caller_access_statement() -> sa.Select[Any]:
    user_id, course_id = (sa.bindparam(name, type_=sa.Uuid) for name in ("user_id", "course_id"))
    enrolled = sa.exists().where(Enrollment.user_id == user_id, Enrollment.course_id == course_id,
                                 Enrollment.status == "active")
    teaches = sa.exists().where(CourseInstructor.course_id == course_id, CourseInstructor.user_id == user_id)
    course_status = sa.select(Course.status).where(Course.id == course_id).scalar_subquery()
    return sa.select(enrolled, teaches, course_status)


# Built once with bound parameters: each request reuses the compiled statement.
_CALLER_ACCESS = _caller_access_statement()


async def caller_access(*, db: Database, user_id: uuid.UUID, course_id: uuid.UUID) -> tuple[bool, bool, str | None]:
    """(enrolled, teaches, course status or None) of a signed-in caller: one statement of three
    primary-key/index probes on a bare connection (no ORM session). A signed-in course page costs
    this on top of the cached answer (see api.routes._signed_in_detail)."""
    async with db.statements() as connection:
        row = (await connection.execute(_CALLER_ACCESS, {"user_id": user_id, "course_id": course_id})).one()
    return bool(row[0]), bool(row[1]), row[2]


async def full_published_course(*, db_session: AsyncSession, course_id: uuid.UUID) -> CourseRead:
    """The full view (asset ids, text bodies) of a published course, for callers already found
    entitled to it."""
    course = await db_session.scalar(sa.select(Course).where(Course.id == course_id, Course.status == "published")
                                     .options(*DETAIL_OPTIONS))
    if course is None:
        raise NotFound("course not found")
    return course_view(course, full=True)


def course_view(course: Course, *, full: bool) -> CourseRead:
    """The detail body. Without `full` (the public view) asset ids and text bodies are shown for
    preview lessons only."""
    sections = [SectionRead(id=section.id, title=section.title, position=section.position, lessons=[
        LessonRead(id=lesson.id, title=lesson.title, kind=lesson.kind,
                   position=lesson.position, is_preview=lesson.is_preview,
                   duration_seconds=lesson.duration_seconds,
                   asset_id=lesson.asset_id if full or lesson.is_preview else None,
                   body=lesson.body if full or lesson.is_preview else None)
        for lesson in section.lessons]) for section in course.sections]
    return CourseRead.model_validate({
        **{name: getattr(course, name) for name in (
            "id", "slug", "title", "subtitle", "description", "instructor_id", "instructor_ids",
            "price_amount", "currency", "is_free", "status", "level", "language", "category", "tags",
            "cover_image_url", "lesson_count", "duration_seconds", "created_at", "updated_at",
            "published_at")},
        "sections": sections})


async def get_course(*, db_session: AsyncSession, actor: Actor | None, course_id: uuid.UUID | None = None,
                     slug: str | None = None) -> CourseRead:
    """Published courses are public; others exist only for their instructors and admins (and an
    archived one for its enrolled learners). Instructors, admins and enrolled learners get the
    full curriculum, everyone else the public view."""
    condition = Course.id == course_id if course_id is not None else Course.slug == slug
    course = await db_session.scalar(sa.select(Course).where(condition).options(*DETAIL_OPTIONS))
    if course is None:
        raise NotFound("course not found")
    manager = actor is not None and actor.may_manage(course)
    enrolled = (actor is not None and not manager and course.status in ("published", "archived")
                and await _is_enrolled(db_session, actor.user_id, course.id))
    if course.status != "published" and not manager and not (course.status == "archived" and enrolled):
        raise NotFound("course not found")
    return course_view(course, full=manager or enrolled)


def _summary(course: Course) -> CourseSummary:
    return CourseSummary(
        id=course.id, slug=course.slug, title=course.title, subtitle=course.subtitle,
        price_amount=course.price_amount, currency=course.currency, instructor_id=course.instructor_id,
        lesson_count=course.lesson_count, published_at=course.published_at,
        instructor_ids=course.instructor_ids, level=course.level,
        language=course.language, category=course.category.slug if course.category else None,
        tags=course.tags, cover_image_url=course.cover_image_url, duration_seconds=course.duration_seconds,
        is_free=course.is_free)


async def _page(db_session: AsyncSession, query: CourseQuery, base: sa.ColumnElement[bool]) -> CoursePage:
    """Three queries whatever the page size: count, page (with category), instructors."""
    dialect = db_session.get_bind().dialect.name
    count_statement, page_statement = course_statements(query, dialect, base)
    total = await db_session.scalar(count_statement) or 0
    courses = (await db_session.scalars(page_statement.options(*READ_OPTIONS))).unique().all()
    return CoursePage(items=[_summary(course) for course in courses], total=total, page=query.page,
                      page_size=query.page_size)


async def list_published(*, db_session: AsyncSession, query: CourseQuery) -> CoursePage:
    return await _page(db_session, query, Course.status == "published")


async def list_taught(*, db_session: AsyncSession, actor: Actor, query: CourseQuery,
                      status: str | None = None) -> CoursePage:
    """An instructor's own courses in every status (admins: every course)."""
    base: sa.ColumnElement[bool] = sa.true() if actor.is_admin else Course.id.in_(
        sa.select(CourseInstructor.course_id).where(CourseInstructor.user_id == actor.user_id))
    if status is not None:
        base = sa.and_(base, Course.status == status)
    return await _page(db_session, query, base)


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


async def course_enrollments(*, db_session: AsyncSession, actor: Actor, course_id: uuid.UUID, page: int,
                             page_size: int, status: str | None = None) -> CourseEnrollmentPage:
    course = await db_session.scalar(sa.select(Course).where(Course.id == course_id)
                                     .options(selectinload(Course.instructors)))
    if course is None:
        raise NotFound("course not found")
    if not actor.may_manage(course):
        raise Forbidden("only the course's instructors or an admin may list its learners")
    where = [Enrollment.course_id == course_id]
    if status is not None:
        where.append(Enrollment.status == status)
    total = await db_session.scalar(sa.select(sa.func.count(Enrollment.id)).where(*where)) or 0
    rows = await db_session.scalars(sa.select(Enrollment).where(*where)
                                    .order_by(Enrollment.created_at.desc(), Enrollment.id)
                                    .offset((page - 1) * page_size).limit(page_size))
    return CourseEnrollmentPage(items=[CourseEnrollment.model_validate(row) for row in rows], total=total,
                                page=page, page_size=page_size)
