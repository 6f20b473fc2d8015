"""Catalog's HTTP API (served under /api/catalog at the gateway).

`router` is the public API; `internal_router` answers other services holding a service token.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status

from catalog import service
from catalog.api.deps import (
    ActorDep,
    AuthorDep,
    BillingOrPlayback,
    OptionalActorDep,
    PageDep,
    PageSizeDep,
    PlaybackOnly,
    RuntimeDep,
)
from catalog.schemas import (
    CourseCreate,
    CoursePage,
    CourseRead,
    EnrollmentCheck,
    EnrollmentRead,
    InternalCourse,
    InternalLesson,
    MyEnrollments,
)

router = APIRouter(tags=["catalog"])
internal_router = APIRouter(prefix="/internal", tags=["internal"])


@router.post("/courses", status_code=status.HTTP_201_CREATED, response_model=CourseRead)
async def create_course(body: CourseCreate, actor: AuthorDep, runtime: RuntimeDep) -> Any:
    async with runtime.db.transaction() as session:
        return await service.create_course(db_session=session, actor=actor, data=body)


@router.post("/courses/{course_id}/publish", response_model=CourseRead)
async def publish_course(course_id: uuid.UUID, actor: ActorDep, runtime: RuntimeDep) -> Any:
    async with runtime.db.transaction() as session:
        return await service.publish_course(db_session=session, actor=actor, course_id=course_id)


@router.get("/courses", response_model=CoursePage)
async def list_courses(runtime: RuntimeDep, page: PageDep = 1, page_size: PageSizeDep = 20) -> CoursePage:
    async with runtime.db.session() as session:
        return await service.list_published(db_session=session, page=page, page_size=page_size)


@router.get("/courses/{course_id}", response_model=CourseRead)
async def get_course(course_id: uuid.UUID, actor: OptionalActorDep, runtime: RuntimeDep) -> Any:
    async with runtime.db.session() as session:
        return await service.get_course(db_session=session, course_id=course_id, actor=actor)


@router.post("/courses/{course_id}/enroll", response_model=EnrollmentRead,
             responses={201: {"model": EnrollmentRead, "description": "enrolled by this call"}})
async def enroll(
    course_id: uuid.UUID, actor: ActorDep, runtime: RuntimeDep, response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200, description=(
        "accepted for uniformity with other access-granting POSTs; enrolling is idempotent per "
        "(user, course) anyway"))] = None,
) -> Any:
    """Free courses only: 201 when this call enrolled the caller, 200 when already enrolled."""
    async with runtime.db.transaction() as session:
        enrollment, granted = await service.enroll_free(db_session=session, actor=actor,
                                                        course_id=course_id)
    response.status_code = status.HTTP_201_CREATED if granted else status.HTTP_200_OK
    return enrollment


@router.get("/me/enrollments", response_model=MyEnrollments)
async def my_enrollments(actor: ActorDep, runtime: RuntimeDep) -> MyEnrollments:
    async with runtime.db.session() as session:
        return await service.my_enrollments(db_session=session, user_id=actor.user_id)


@internal_router.get("/courses/{course_id}", response_model=InternalCourse)
async def internal_course(course_id: uuid.UUID, _caller: BillingOrPlayback,
                          runtime: RuntimeDep) -> InternalCourse:
    async with runtime.db.session() as session:
        return await service.internal_course(db_session=session, course_id=course_id)


@internal_router.get("/lessons/{lesson_id}", response_model=InternalLesson)
async def internal_lesson(lesson_id: uuid.UUID, _caller: PlaybackOnly, runtime: RuntimeDep) -> InternalLesson:
    async with runtime.db.session() as session:
        return await service.internal_lesson(db_session=session, lesson_id=lesson_id)


@internal_router.get("/enrollments/check", response_model=EnrollmentCheck)
async def check_enrollment(user_id: uuid.UUID, course_id: uuid.UUID, _caller: BillingOrPlayback,
                           runtime: RuntimeDep) -> EnrollmentCheck:
    async with runtime.db.session() as session:
        return await service.check_enrollment(db_session=session, user_id=user_id, course_id=course_id)
