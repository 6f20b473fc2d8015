"""Catalog's HTTP API (served under /api/catalog at the gateway).

`router` is the public API; `catalog.api.internal` answers other services holding a service token.
Public reads carry an ETag (If-None-Match -> 304) and Cache-Control: anonymous answers are
`public, max-age=<public_max_age_seconds>` and come from the response cache; answers to a signed-in
caller are `private, no-cache`. Both say `Vary: Authorization`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import service
from catalog.api.deps import (
    ActorDep,
    AdminDep,
    AuthorDep,
    OptionalActorDep,
    PageDep,
    PageSizeDep,
    PublicCacheDep,
    RuntimeDep,
    SettingsDep,
)
from catalog.models import Course
from catalog.public_cache import Cached, PublicCache, Slot, etag_for
from catalog.schemas import (
    AdminEnrollmentChange,
    AdminEnrollmentResult,
    AuditPage,
    CategoryCreate,
    CategoryRead,
    CourseCreate,
    CourseEnrollmentPage,
    CourseLevel,
    CoursePage,
    CourseRead,
    CourseSort,
    CourseStatus,
    CourseUpdate,
    CurriculumOrder,
    EnrollmentRead,
    LessonCreate,
    LessonUpdate,
    MyEnrollments,
    SectionUpdate,
    StatusChange,
)
from catalog.search import CourseQuery
from common.errors import NotFound
from common.runtime import Runtime

router = APIRouter(tags=["catalog"])

SearchParam = Annotated[str | None, Query(max_length=200, description="full-text search")]
CategoryParam = Annotated[str | None, Query(max_length=80, pattern=r"^[a-z0-9-]+$", description="category slug")]
LanguageParam = Annotated[str | None, Query(max_length=5, pattern=r"^[a-z]{2}(-[A-Z]{2})?$")]


# ---------------------------------------------------------------- helpers


@asynccontextmanager
async def _write(runtime: Runtime) -> AsyncIterator[AsyncSession]:
    """One unit of work; answers only once the public cache forgot what it changed."""
    async with runtime.db.transaction() as session:
        yield session
    await PublicCache.settled(session)


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    return etag in (candidate.strip().removeprefix("W/") for candidate in header.split(","))


def _answer(request: Request, entry: Cached, *, public: bool, max_age: int) -> Response:
    headers = {"ETag": entry.etag, "Vary": "Authorization",
               "Cache-Control": f"public, max-age={max_age}" if public else "private, no-cache"}
    if _etag_matches(request.headers.get("if-none-match"), entry.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(content=entry.body, media_type="application/json", headers=headers)


async def _cached(cache: PublicCache, name: str, slot: Slot, produce: Any, *, anonymous: bool = False) -> Cached:
    """The body cached in `slot`, or `await produce()` serialised (and cached when the cache is on).
    `anonymous`: the answer may come from, and goes to, this replica's copy (`PublicCache.near`)."""
    ticket, entry = cache.near(name, slot) if anonymous else (None, None)
    if entry is not None:
        return entry
    key, entry = await cache.lookup(name, slot)
    if entry is None:
        body: bytes = (await produce()).model_dump_json().encode()
        entry = await cache.put(key, body) if key else Cached(etag_for(body), body)
    if ticket is not None:
        cache.keep_near(slot, entry, ticket)
    return entry


def _full(course: Course) -> CourseRead:
    return service.course_view(course, full=True)


# ---------------------------------------------------------------- public reads


@router.get("/courses", response_model=CoursePage)
async def list_courses(
    request: Request, runtime: RuntimeDep, cache: PublicCacheDep, settings: SettingsDep,
    actor: OptionalActorDep, q: SearchParam = None, category: CategoryParam = None,
    level: CourseLevel | None = None, language: LanguageParam = None,
    price: Literal["free", "paid"] | None = None, instructor: uuid.UUID | None = None,
    sort: Annotated[CourseSort | None, Query(description="default: relevance with q, else newest")] = None,
    page: PageDep = 1, page_size: PageSizeDep = 20,
) -> Response:
    """Published courses: filters, sort and full-text search; the same answer for everyone."""
    query = CourseQuery(q=q.strip() if q and q.strip() else None, category=category, level=level,
                        language=language, price=price, instructor=instructor, sort=sort, page=page,
                        page_size=page_size)

    async def produce() -> CoursePage:
        async with runtime.db.session() as session:
            return await service.list_published(db_session=session, query=query)

    entry = await _cached(cache, "list", PublicCache.list_slot(query.cache_key()), produce, anonymous=actor is None)
    return _answer(request, entry, public=actor is None, max_age=settings.public_max_age_seconds)


async def _detail(request: Request, runtime: Runtime, cache: PublicCache, max_age: int, actor: service.Actor | None,
                  *, course_id: uuid.UUID | None = None, slug: str | None = None) -> Response:
    async def produce() -> CourseRead:
        async with runtime.db.session() as session:
            return await service.get_course(db_session=session, actor=actor, course_id=course_id, slug=slug)

    if actor is not None and course_id is not None:
        signed_in = await _signed_in_detail(request, runtime, cache, max_age, actor, course_id)
        if signed_in is not None:
            return signed_in
    if actor is not None:  # a course that is not public: the view depends on who asks, never cached
        body = (await produce()).model_dump_json().encode()
        return _answer(request, Cached(etag_for(body), body), public=False, max_age=max_age)
    slot = PublicCache.course_slot(course_id) if course_id is not None else PublicCache.slug_slot(str(slug))
    return _answer(request, await _cached(cache, "detail", slot, produce, anonymous=True), public=True,
                   max_age=max_age)


async def _signed_in_detail(request: Request, runtime: Runtime, cache: PublicCache, max_age: int,
                            actor: service.Actor, course_id: uuid.UUID) -> Response | None:
    """A published course for a signed-in caller: one indexed lookup (enrolled? teaches? status?)
    plus a cached answer: the public one, or for its instructors, admins and enrolled learners the
    full view, cached beside it under the same generation (a write that invalidates one invalidates
    both). None: not a published course or the cache is off; the caller-specific path decides."""
    enrolled, teaches, course_status = await service.caller_access(
        db=runtime.db, user_id=actor.user_id, course_id=course_id)
    if course_status is None:
        raise NotFound("course not found")
    if course_status != "published" or not cache.enabled:
        return None

    async def public_view() -> CourseRead:
        async with runtime.db.session() as session:
            return await service.get_course(db_session=session, actor=None, course_id=course_id)

    async def full_view() -> CourseRead:
        async with runtime.db.session() as session:
            return await service.full_published_course(db_session=session, course_id=course_id)

    try:
        if actor.is_admin or teaches or enrolled:
            entry = await _cached(cache, "detail-full", PublicCache.course_slot(course_id, full=True), full_view)
        else:
            entry = await _cached(cache, "detail", PublicCache.course_slot(course_id), public_view)
    except NotFound:  # unpublished since the lookup
        return None
    return _answer(request, entry, public=False, max_age=max_age)


@router.get("/courses/by-slug/{slug}", response_model=CourseRead)
async def get_course_by_slug(slug: Annotated[str, Path(max_length=120, pattern=r"^[a-z0-9-]+$")],
                             request: Request, actor: OptionalActorDep, runtime: RuntimeDep,
                             cache: PublicCacheDep, settings: SettingsDep) -> Response:
    return await _detail(request, runtime, cache, settings.public_max_age_seconds, actor, slug=slug)


@router.get("/courses/{course_id}", response_model=CourseRead)
async def get_course(course_id: uuid.UUID, request: Request, actor: OptionalActorDep, runtime: RuntimeDep,
                     cache: PublicCacheDep, settings: SettingsDep) -> Response:
    """The course with its curriculum. Asset ids (and text bodies) of non-preview lessons are shown
    only to its instructors, admins and enrolled learners."""
    return await _detail(request, runtime, cache, settings.public_max_age_seconds, actor, course_id=course_id)


@router.get("/categories", response_model=list[CategoryRead])
async def list_categories(runtime: RuntimeDep) -> Any:
    async with runtime.db.session() as session:
        return await service.list_categories(db_session=session)


@router.post("/categories", status_code=status.HTTP_201_CREATED, response_model=CategoryRead)
async def create_category(body: CategoryCreate, _admin: AdminDep, runtime: RuntimeDep) -> Any:
    async with runtime.db.transaction() as session:
        return await service.create_category(db_session=session, data=body)


# ---------------------------------------------------------------- authoring


@router.post("/courses", status_code=status.HTTP_201_CREATED, response_model=CourseRead)
async def create_course(body: CourseCreate, actor: AuthorDep, runtime: RuntimeDep) -> Any:
    async with _write(runtime) as session:
        return _full(await service.create_course(db_session=session, actor=actor, data=body))


@router.get("/me/courses", response_model=CoursePage)
async def my_courses(actor: AuthorDep, runtime: RuntimeDep, status_filter: Annotated[
        CourseStatus | None, Query(alias="status")] = None, page: PageDep = 1,
        page_size: PageSizeDep = 20) -> CoursePage:
    """The courses the caller teaches, in every status (an admin sees every course)."""
    async with runtime.db.session() as session:
        return await service.list_taught(db_session=session, actor=actor, status=status_filter,
                                         query=CourseQuery(page=page, page_size=page_size, sort="newest"))


@router.patch("/courses/{course_id}", response_model=CourseRead)
async def update_course(course_id: uuid.UUID, body: CourseUpdate, actor: ActorDep, runtime: RuntimeDep) -> Any:
    async with _write(runtime) as session:
        return _full(await service.update_course(db_session=session, actor=actor, course_id=course_id,
                                                 data=body))


@router.post("/courses/{course_id}/publish", response_model=CourseRead)
async def publish_course(course_id: uuid.UUID, actor: ActorDep, runtime: RuntimeDep,
                         settings: SettingsDep) -> Any:
    async with _write(runtime) as session:
        return _full(await service.publish_course(db_session=session, actor=actor, course_id=course_id,
                                                  require_review=settings.require_review))


@router.post("/courses/{course_id}/status", response_model=CourseRead)
async def change_status(course_id: uuid.UUID, body: StatusChange, actor: ActorDep, runtime: RuntimeDep,
                        settings: SettingsDep) -> Any:
    """draft -> in_review -> published -> archived, and back to draft (see service.TRANSITIONS)."""
    async with _write(runtime) as session:
        return _full(await service.change_status(db_session=session, actor=actor, course_id=course_id,
                                                 target=body.status, require_review=settings.require_review))


@router.post("/courses/{course_id}/sections", status_code=status.HTTP_201_CREATED, response_model=CourseRead)
async def add_section(course_id: uuid.UUID, body: SectionUpdate, actor: ActorDep, runtime: RuntimeDep) -> Any:
    async with _write(runtime) as session:
        return _full(await service.add_section(db_session=session, actor=actor, course_id=course_id,
                                               title=body.title))


@router.patch("/courses/{course_id}/sections/{section_id}", response_model=CourseRead)
async def rename_section(course_id: uuid.UUID, section_id: uuid.UUID, body: SectionUpdate, actor: ActorDep,
                         runtime: RuntimeDep) -> Any:
    async with _write(runtime) as session:
        return _full(await service.rename_section(db_session=session, actor=actor, course_id=course_id,
                                                  section_id=section_id, title=body.title))


@router.delete("/courses/{course_id}/sections/{section_id}", response_model=CourseRead)
async def delete_section(course_id: uuid.UUID, section_id: uuid.UUID, actor: ActorDep,
                         runtime: RuntimeDep) -> Any:
    async with _write(runtime) as session:
        return _full(await service.delete_section(db_session=session, actor=actor, course_id=course_id,
                                                  section_id=section_id))


@router.post("/courses/{course_id}/sections/{section_id}/lessons", status_code=status.HTTP_201_CREATED,
             response_model=CourseRead)
async def add_lesson(course_id: uuid.UUID, section_id: uuid.UUID, body: LessonCreate, actor: ActorDep,
                     runtime: RuntimeDep) -> Any:
    async with _write(runtime) as session:
        return _full(await service.add_lesson(db_session=session, actor=actor, course_id=course_id,
                                              section_id=section_id, data=body))


@router.patch("/courses/{course_id}/lessons/{lesson_id}", response_model=CourseRead)
async def update_lesson(course_id: uuid.UUID, lesson_id: uuid.UUID, body: LessonUpdate, actor: ActorDep,
                        runtime: RuntimeDep) -> Any:
    async with _write(runtime) as session:
        return _full(await service.update_lesson(db_session=session, actor=actor, course_id=course_id,
                                                 lesson_id=lesson_id, data=body))


@router.delete("/courses/{course_id}/lessons/{lesson_id}", response_model=CourseRead)
async def delete_lesson(course_id: uuid.UUID, lesson_id: uuid.UUID, actor: ActorDep,
                        runtime: RuntimeDep) -> Any:
    async with _write(runtime) as session:
        return _full(await service.delete_lesson(db_session=session, actor=actor, course_id=course_id,
                                                 lesson_id=lesson_id))


@router.put("/courses/{course_id}/curriculum/order", response_model=CourseRead)
async def reorder_curriculum(course_id: uuid.UUID, body: CurriculumOrder, actor: ActorDep,
                             runtime: RuntimeDep) -> Any:
    """Reorder sections and lessons (lessons may change section) in one call."""
    async with _write(runtime) as session:
        return _full(await service.reorder_curriculum(db_session=session, actor=actor, course_id=course_id,
                                                      order=body))


# ---------------------------------------------------------------- enrollments


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


@router.get("/courses/{course_id}/enrollments", response_model=CourseEnrollmentPage)
async def course_enrollments(course_id: uuid.UUID, actor: ActorDep, runtime: RuntimeDep,
                             status_filter: Annotated[Literal["active", "revoked"] | None,
                                                      Query(alias="status")] = None,
                             page: PageDep = 1, page_size: PageSizeDep = 20) -> CourseEnrollmentPage:
    """The course's learners, for its instructors and admins."""
    async with runtime.db.session() as session:
        return await service.course_enrollments(db_session=session, actor=actor, course_id=course_id,
                                                page=page, page_size=page_size, status=status_filter)


@router.post("/admin/enrollments/{action}", response_model=AdminEnrollmentResult)
async def admin_enrollment_change(action: Literal["grant", "revoke"], body: AdminEnrollmentChange, admin: AdminDep,
                                  runtime: RuntimeDep) -> Any:
    """Give (grant) or take away (revoke) a user's access by hand, whatever granted it; audited.
    `changed` is false when the enrollment already was in the asked state."""
    change = service.admin_grant if action == "grant" else service.admin_revoke
    async with runtime.db.transaction() as session:
        enrollment, changed = await change(db_session=session, actor=admin, user_id=body.user_id,
                                           course_id=body.course_id, reason=body.reason)
        return AdminEnrollmentResult(enrollment=EnrollmentRead.model_validate(enrollment), changed=changed)


@router.get("/admin/enrollments/audit", response_model=AuditPage)
async def enrollment_audit(_admin: AdminDep, runtime: RuntimeDep, course_id: uuid.UUID | None = None,
                           user_id: uuid.UUID | None = None, page: PageDep = 1,
                           page_size: PageSizeDep = 20) -> AuditPage:
    async with runtime.db.session() as session:
        return await service.enrollment_audit(db_session=session, course_id=course_id, user_id=user_id,
                                              page=page, page_size=page_size)
