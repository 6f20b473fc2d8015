"""Catalog's answers to peer services (served under /internal, never through the public edge).

Each route requires a service token of the peers that call it; the answers are the models in
`contracts.peers`, built by `catalog.service.internal`.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from catalog import service
from catalog.api.deps import BillingOrPlayback, PlaybackOnly, RuntimeDep
from catalog.schemas import (
    EnrollmentCheck,
    InternalCourse,
    InternalCourseLessons,
    InternalInstructorCourses,
    InternalLesson,
)

internal_router = APIRouter(prefix="/internal", tags=["internal"])


@internal_router.get("/courses/{course_id}", response_model=InternalCourse)
async def internal_course(course_id: uuid.UUID, _caller: BillingOrPlayback,
                          runtime: RuntimeDep) -> InternalCourse:
    async with runtime.db.session() as session:
        return await service.internal_course(db_session=session, course_id=course_id)


@internal_router.get("/courses/{course_id}/lessons", response_model=InternalCourseLessons)
async def internal_course_lessons(course_id: uuid.UUID, _caller: BillingOrPlayback,
                                  runtime: RuntimeDep) -> InternalCourseLessons:
    async with runtime.db.session() as session:
        return await service.internal_course_lessons(db_session=session, course_id=course_id)


@internal_router.get("/instructors/{user_id}/courses", response_model=InternalInstructorCourses)
async def internal_instructor_courses(user_id: uuid.UUID, _caller: BillingOrPlayback,
                                      runtime: RuntimeDep) -> InternalInstructorCourses:
    async with runtime.db.session() as session:
        return await service.internal_instructor_courses(db_session=session, user_id=user_id)


@internal_router.get("/lessons/{lesson_id}", response_model=InternalLesson)
async def internal_lesson(lesson_id: uuid.UUID, _caller: PlaybackOnly, runtime: RuntimeDep) -> InternalLesson:
    async with runtime.db.session() as session:
        return await service.internal_lesson(db_session=session, lesson_id=lesson_id)


@internal_router.get("/enrollments/check", response_model=EnrollmentCheck)
async def check_enrollment(user_id: uuid.UUID, course_id: uuid.UUID, _caller: BillingOrPlayback,
                           runtime: RuntimeDep) -> EnrollmentCheck:
    async with runtime.db.session() as session:
        return await service.check_enrollment(db_session=session, user_id=user_id, course_id=course_id)
