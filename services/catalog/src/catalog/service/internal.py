"""Answers to peer services (/internal routes) and playback's asset events: catalog's read side for other services."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import (
    Course,
    CourseInstructor,
    KnownAsset,
    Lesson,
    Section,
)
from catalog.public_cache import mark_dirty
from catalog.schemas import (
    EnrollmentCheck,
    InternalCourse,
    InternalCourseLesson,
    InternalCourseLessons,
    InternalInstructorCourses,
    InternalLesson,
    InternalTaughtCourse,
)
from common.errors import NotFound

from .authoring import _refresh_totals
from .enrollments import _insert_if_absent
from .reading import _is_enrolled

log = logging.getLogger(__name__)


async def internal_course(*, db_session: AsyncSession, course_id: uuid.UUID) -> InternalCourse:
    course = await db_session.get(Course, course_id)
    if course is None:
        raise NotFound("course not found")
    return InternalCourse(course_id=course.id, title=course.title, status=course.status,
                          price_amount=course.price_amount, currency=course.currency,
                          is_free=course.is_free)


async def internal_instructor_courses(*, db_session: AsyncSession, user_id: uuid.UUID) -> InternalInstructorCourses:
    rows = await db_session.execute(
        sa.select(Course.id, Course.title).join(CourseInstructor, CourseInstructor.course_id == Course.id)
        .where(CourseInstructor.user_id == user_id).order_by(Course.title, Course.id))
    return InternalInstructorCourses(user_id=user_id, courses=[
        InternalTaughtCourse(course_id=course_id, title=title) for course_id, title in rows.all()])


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


async def internal_course_lessons(*, db_session: AsyncSession, course_id: uuid.UUID) -> InternalCourseLessons:
    """Every lesson of a course in curriculum order (playback computes course completion)."""
    if await db_session.scalar(sa.select(Course.id).where(Course.id == course_id)) is None:
        raise NotFound("course not found")
    rows = await db_session.scalars(
        sa.select(Lesson).join(Section, Section.id == Lesson.section_id)
        .where(Lesson.course_id == course_id).order_by(Section.position, Lesson.position))
    return InternalCourseLessons(course_id=course_id, lessons=[
        InternalCourseLesson(lesson_id=lesson.id, kind=lesson.kind,
                             asset_id=lesson.asset_id, is_preview=lesson.is_preview,
                             duration_seconds=lesson.duration_seconds)
        for lesson in rows])


async def check_enrollment(*, db_session: AsyncSession, user_id: uuid.UUID,
                           course_id: uuid.UUID) -> EnrollmentCheck:
    return EnrollmentCheck(enrolled=await _is_enrolled(db_session, user_id, course_id))




async def record_asset_ready(*, db_session: AsyncSession, asset_id: uuid.UUID, owner_id: uuid.UUID | None,
                             duration_seconds: int | None, ready_at: dt.datetime) -> None:
    """Remember the asset as ready (lessons created later find it) and set the duration of every
    video lesson using it. A deleted asset stays deleted whatever order the events come in."""
    await _insert_if_absent(db_session, KnownAsset, ["asset_id"], {
        "asset_id": asset_id, "state": "ready", "owner_id": owner_id, "duration_seconds": duration_seconds,
        "updated_at": ready_at})
    asset = await db_session.scalar(sa.select(KnownAsset).where(KnownAsset.asset_id == asset_id)
                                    .with_for_update().execution_options(populate_existing=True))
    if asset is None:
        raise RuntimeError("known asset vanished inside its own transaction")
    if asset.state == "deleted":
        log.info("ready event for a deleted asset ignored", extra={"asset_id": str(asset_id)})
        return
    asset.owner_id, asset.duration_seconds, asset.updated_at = owner_id, duration_seconds, ready_at
    if duration_seconds is None:
        return
    courses = set(await db_session.scalars(
        sa.update(Lesson).where(Lesson.asset_id == asset_id, Lesson.kind == "video")
        .values(duration_seconds=duration_seconds).returning(Lesson.course_id)
        .execution_options(synchronize_session=False)))
    await _refresh_totals(db_session, courses)
    mark_dirty(db_session, *courses)


async def record_asset_deleted(*, db_session: AsyncSession, asset_id: uuid.UUID,
                               deleted_at: dt.datetime) -> None:
    await _insert_if_absent(db_session, KnownAsset, ["asset_id"], {
        "asset_id": asset_id, "state": "deleted", "updated_at": deleted_at})
    await db_session.execute(sa.update(KnownAsset).where(KnownAsset.asset_id == asset_id)
                             .values(state="deleted", updated_at=deleted_at))
