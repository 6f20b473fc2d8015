"""Catalog use cases: authoring, curriculum and publication of courses, reading the catalog,
granting access.

Access follows billing: a paid order grants the enrollment, its refund revokes it. Order facts are
kept so that events arriving out of order (refund before payment) still end in the right state.
Every write that changes what the public sees marks the course dirty (`public_cache.mark_dirty`)
so cached answers are invalidated once the transaction commits.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from catalog.models import (
    Base,
    Category,
    Course,
    CourseInstructor,
    Enrollment,
    EnrollmentAudit,
    ErasedUser,
    KnownAsset,
    Lesson,
    OrderFact,
    Section,
)
from catalog.public_cache import mark_dirty
from catalog.schemas import (
    AuditEntry,
    AuditPage,
    CategoryCreate,
    CourseCreate,
    CourseEnrollment,
    CourseEnrollmentPage,
    CoursePage,
    CourseRead,
    CourseSummary,
    CourseUpdate,
    CurriculumOrder,
    EnrollmentCheck,
    InternalCourse,
    InternalCourseLesson,
    InternalCourseLessons,
    InternalInstructorCourses,
    InternalLesson,
    InternalTaughtCourse,
    LessonCreate,
    LessonRead,
    LessonUpdate,
    MyEnrollment,
    MyEnrollments,
    SectionRead,
)
from catalog.search import CourseQuery, course_statements
from common.db import upsert_insert, utcnow
from common.errors import Conflict, Forbidden, NotFound, Unprocessable
from common.events import add_event
from common.observability.metrics import count
from contracts.events import CoursePublished, CourseUpdated, EnrollmentGranted, EnrollmentRevoked

log = logging.getLogger(__name__)

MAX_SLUG_LENGTH = 80
# Allowed status changes; the same status again is an idempotent no-op.
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"in_review", "published"}),
    "in_review": frozenset({"published", "draft"}),
    "published": frozenset({"archived", "draft"}),
    "archived": frozenset({"draft"}),
}
# Fields of catalog.course.updated.v1: a change of any of them is announced.
ANNOUNCED_FIELDS = ("slug", "title", "status", "price_amount", "currency")


@dataclass(frozen=True)
class Actor:
    """The user acting; kept free of FastAPI so use cases do not depend on the web layer."""

    user_id: uuid.UUID
    is_admin: bool = False

    def may_manage(self, course: Course) -> bool:
        """Admins manage everything, instructors the courses they teach (instructors loaded)."""
        return self.is_admin or self.user_id in course.instructor_ids


# ---------------------------------------------------------------- loading


READ_OPTIONS = (joinedload(Course.category), selectinload(Course.instructors))
DETAIL_OPTIONS = (*READ_OPTIONS, selectinload(Course.sections).selectinload(Section.lessons))


async def _load_course(db_session: AsyncSession, course_id: uuid.UUID) -> Course:
    """The course with everything its detail shows: a fixed number of queries (no N+1)."""
    course = await db_session.scalar(
        sa.select(Course).where(Course.id == course_id).options(*DETAIL_OPTIONS)
        .execution_options(populate_existing=True))
    if course is None:
        raise NotFound("course not found")
    return course


async def _course_for_write(db_session: AsyncSession, actor: Actor, course_id: uuid.UUID, *,
                            curriculum: bool = False) -> Course:
    """Lock the course row (writes to one course serialise) and check the actor may edit it."""
    options: list[Any] = [selectinload(Course.instructors)]
    if curriculum:
        options.append(selectinload(Course.sections).selectinload(Section.lessons))
    course = await db_session.scalar(
        sa.select(Course).where(Course.id == course_id).with_for_update().options(*options)
        .execution_options(populate_existing=True))
    if course is None:
        raise NotFound("course not found")
    if not actor.may_manage(course):
        raise Forbidden("only the course's instructors or an admin may change it")
    return course


def _require_status(course: Course, allowed: tuple[str, ...], what: str) -> None:
    if course.status not in allowed:
        raise Conflict(f"{what} is possible only while the course is {' or '.join(allowed)} "
                       f"(it is {course.status}); move it back to draft first",
                       code="course_not_editable")


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


async def _category_id(db_session: AsyncSession, slug: str | None) -> uuid.UUID | None:
    if slug is None:
        return None
    category_id = await db_session.scalar(sa.select(Category.id).where(Category.slug == slug))
    if category_id is None:
        raise Unprocessable(f"unknown category {slug!r}", code="unknown_category")
    return category_id


def _instructors(creator: uuid.UUID, others: list[uuid.UUID]) -> list[CourseInstructor]:
    ordered = list(dict.fromkeys([creator, *others]))
    return [CourseInstructor(user_id=user_id, position=position)
            for position, user_id in enumerate(ordered, start=1)]


async def _ready_durations(db_session: AsyncSession, asset_ids: set[uuid.UUID]) -> dict[uuid.UUID, int | None]:
    if not asset_ids:
        return {}
    rows = await db_session.execute(sa.select(KnownAsset.asset_id, KnownAsset.duration_seconds).where(
        KnownAsset.asset_id.in_(asset_ids), KnownAsset.state == "ready"))
    return {asset_id: duration for asset_id, duration in rows.all()}


async def _check_asset_owners(db_session: AsyncSession, actor: Actor, owners: list[uuid.UUID],
                              asset_ids: set[uuid.UUID]) -> None:
    """Only videos uploaded by one of `owners` may be used (no reselling someone else's video).

    Putting a video into a lesson: `owners` is the acting instructor alone, since naming a
    co-instructor needs no consent and must not open their uploads to the course's creator.
    Publishing: the course's instructors, for assets playback announced after the lesson was
    written. Admins may use any asset."""
    if actor.is_admin or not asset_ids:
        return
    foreign = await db_session.scalars(sa.select(KnownAsset.asset_id).where(
        KnownAsset.asset_id.in_(asset_ids), KnownAsset.owner_id.is_not(None),
        KnownAsset.owner_id.not_in(owners)))
    if not_owned := sorted(str(asset_id) for asset_id in foreign):
        raise Forbidden("a lesson may only use a video you uploaded yourself",
                        code="asset_not_owned", asset_ids=not_owned)


def _new_lesson(course_id: uuid.UUID, section_id: uuid.UUID, position: int, data: LessonCreate,
                ready: dict[uuid.UUID, int | None]) -> Lesson:
    duration = data.duration_seconds
    if data.asset_id is not None and ready.get(data.asset_id) is not None:
        duration = ready[data.asset_id]  # playback's measurement wins over the author's hint
    return Lesson(id=uuid.uuid4(), section_id=section_id, course_id=course_id, position=position,
                  title=data.title, kind=data.kind, asset_id=data.asset_id, is_preview=data.is_preview,
                  duration_seconds=duration, body=data.body)


async def _refresh_totals(db_session: AsyncSession, course_ids: set[uuid.UUID]) -> None:
    """Recompute the derived lesson count and duration of these courses in one statement."""
    if not course_ids:
        return
    await db_session.flush()
    await db_session.execute(
        sa.update(Course).where(Course.id.in_(course_ids)).values(
            lesson_count=sa.select(sa.func.count(Lesson.id)).where(Lesson.course_id == Course.id)
            .scalar_subquery(),
            duration_seconds=sa.select(sa.func.coalesce(sa.func.sum(Lesson.duration_seconds), 0))
            .where(Lesson.course_id == Course.id).scalar_subquery())
        .execution_options(synchronize_session=False))


async def _announce(db_session: AsyncSession, course: Course) -> None:
    await add_event(db_session, CourseUpdated(
        course_id=course.id, slug=course.slug, title=course.title, status=course.status,
        price_amount=course.price_amount, currency=course.currency, updated_at=course.updated_at))


async def create_course(*, db_session: AsyncSession, actor: Actor, data: CourseCreate) -> Course:
    if data.slug is not None:
        if await _slug_taken(db_session, data.slug):
            raise Conflict("a course with this slug already exists", code="slug_taken")
        slug = data.slug
    else:
        slug = await _free_slug(db_session, data.title)
    category_id = await _category_id(db_session, data.category)
    asset_ids = {lesson.asset_id for section in data.sections for lesson in section.lessons if lesson.asset_id}
    await _check_asset_owners(db_session, actor, [actor.user_id], asset_ids)
    ready = await _ready_durations(db_session, asset_ids)
    now = utcnow()
    course = Course(id=uuid.uuid4(), slug=slug, title=data.title, subtitle=data.subtitle,
                    description=data.description, instructor_id=actor.user_id,
                    price_amount=data.price_amount, currency=data.currency, status="draft",
                    level=data.level, language=data.language, category_id=category_id,
                    tags=list(dict.fromkeys(data.tags)), tags_text=" ".join(dict.fromkeys(data.tags)),
                    cover_image_url=data.cover_image_url, lesson_count=0, duration_seconds=0,
                    created_at=now, updated_at=now, published_at=None, sections=[],
                    instructors=_instructors(actor.user_id, data.instructor_ids))
    for section_position, section_data in enumerate(data.sections, start=1):
        section = Section(id=uuid.uuid4(), course_id=course.id, position=section_position,
                          title=section_data.title, lessons=[])
        section.lessons.extend(_new_lesson(course.id, section.id, position, lesson_data, ready)
                               for position, lesson_data in enumerate(section_data.lessons, start=1))
        course.sections.append(section)
    db_session.add(course)
    try:
        await db_session.flush()
    except IntegrityError as exc:
        # Lost a race for the same slug; raising rolls the whole unit of work back.
        raise Conflict("a course with this slug already exists", code="slug_taken") from exc
    await _refresh_totals(db_session, {course.id})
    count("catalog", "courses_created")
    return await _load_course(db_session, course.id)


async def update_course(*, db_session: AsyncSession, actor: Actor, course_id: uuid.UUID,
                        data: CourseUpdate) -> Course:
    """Metadata and price, in draft or live on a published course (announced when it matters)."""
    course = await _course_for_write(db_session, actor, course_id)
    _require_status(course, ("draft", "published"), "editing a course")
    changes = data.model_dump(exclude_unset=True)
    nullable = {"category", "cover_image_url"}
    if nulls := sorted(name for name, value in changes.items() if value is None and name not in nullable):
        raise Unprocessable(f"these fields cannot be null: {', '.join(nulls)}", code="null_field")
    before = {name: getattr(course, name) for name in ANNOUNCED_FIELDS}
    if "slug" in changes and changes["slug"] != course.slug and await _slug_taken(db_session, changes["slug"]):
        raise Conflict("a course with this slug already exists", code="slug_taken")
    if "category" in changes:
        course.category_id = await _category_id(db_session, changes.pop("category"))
    if "tags" in changes:
        tags = list(dict.fromkeys(changes.pop("tags")))
        course.tags, course.tags_text = tags, " ".join(tags)
    if "instructor_ids" in changes:
        if not (actor.is_admin or actor.user_id == course.instructor_id):
            raise Forbidden("only the course's creator or an admin may change its instructors")
        course.instructors = _instructors(course.instructor_id, changes.pop("instructor_ids"))
    for name, value in changes.items():
        setattr(course, name, value)
    course.updated_at = utcnow()
    try:
        await db_session.flush()
    except IntegrityError as exc:
        raise Conflict("a course with this slug already exists", code="slug_taken") from exc
    if any(getattr(course, name) != value for name, value in before.items()):
        await _announce(db_session, course)
    mark_dirty(db_session, course.id)
    return await _load_course(db_session, course.id)


async def _check_complete(db_session: AsyncSession, actor: Actor, course: Course) -> None:
    """Publishable: at least one lesson, and every video lesson's asset reported ready (and, unless an
    admin publishes, uploaded by one of the course's instructors)."""
    lessons = (await db_session.execute(
        sa.select(Lesson.id, Lesson.kind, Lesson.asset_id).where(Lesson.course_id == course.id))).all()
    if not lessons:
        raise Conflict("a course needs at least one lesson before it is published",
                       code="course_has_no_lessons")
    asset_ids = {asset_id for _, kind, asset_id in lessons if kind == "video" and asset_id is not None}
    await _check_asset_owners(db_session, actor, course.instructor_ids, asset_ids)
    ready = await _ready_durations(db_session, asset_ids)
    waiting = [str(lesson_id) for lesson_id, kind, asset_id in lessons if kind == "video" and asset_id not in ready]
    if waiting:
        raise Conflict("every video lesson needs a ready video asset before the course is published",
                       code="assets_not_ready", lesson_ids=waiting)


async def change_status(*, db_session: AsyncSession, actor: Actor, course_id: uuid.UUID, target: str,
                        require_review: bool = False) -> Course:
    """The publication workflow: draft -> in_review -> published -> archived, back to draft.

    Idempotent: asking for the status the course already has changes nothing and emits nothing.
    With `require_review`, only an admin publishes (instructors submit for review).
    """
    course = await _course_for_write(db_session, actor, course_id)
    if course.status == target:
        return await _load_course(db_session, course.id)
    if target not in TRANSITIONS[course.status]:
        raise Conflict(f"a course cannot go from {course.status} to {target}", code="invalid_transition",
                       allowed=sorted(TRANSITIONS[course.status]))
    if target == "published" and require_review and not actor.is_admin:
        raise Forbidden("an admin publishes courses after review: submit it for review",
                        code="review_required")
    if target in ("in_review", "published"):
        await _check_complete(db_session, actor, course)
    now = utcnow()
    course.status = target
    course.updated_at = now
    if target == "published":
        course.published_at = course.published_at or now
        await add_event(db_session, CoursePublished(
            course_id=course.id, slug=course.slug, title=course.title, price_amount=course.price_amount,
            currency=course.currency, published_at=now))
        count("catalog", "courses_published")
    else:
        await _announce(db_session, course)
    mark_dirty(db_session, course.id)
    return await _load_course(db_session, course.id)


async def publish_course(*, db_session: AsyncSession, actor: Actor, course_id: uuid.UUID,
                         require_review: bool = False) -> Course:
    return await change_status(db_session=db_session, actor=actor, course_id=course_id, target="published",
                               require_review=require_review)


# ---------------------------------------------------------------- curriculum (drafts only)


async def _renumber(db_session: AsyncSession, items: Sequence[Section | Lesson]) -> None:
    """Give `items` positions 1..n without tripping the unique (parent, position) constraints
    mid-flush: first park them on distinct negative positions, then set the final ones."""
    for index, item in enumerate(items, start=1):
        item.position = -index
    await db_session.flush()
    for index, item in enumerate(items, start=1):
        item.position = index
    await db_session.flush()


async def _curriculum_write(db_session: AsyncSession, actor: Actor, course_id: uuid.UUID) -> Course:
    course = await _course_for_write(db_session, actor, course_id, curriculum=True)
    _require_status(course, ("draft",), "changing the curriculum")
    return course


async def _curriculum_done(db_session: AsyncSession, course: Course) -> Course:
    course.updated_at = utcnow()
    await _refresh_totals(db_session, {course.id})
    mark_dirty(db_session, course.id)
    return await _load_course(db_session, course.id)


def _section(course: Course, section_id: uuid.UUID) -> Section:
    for section in course.sections:
        if section.id == section_id:
            return section
    raise NotFound("section not found")


def _lesson(course: Course, lesson_id: uuid.UUID) -> tuple[Section, Lesson]:
    for section in course.sections:
        for lesson in section.lessons:
            if lesson.id == lesson_id:
                return section, lesson
    raise NotFound("lesson not found")


async def add_section(*, db_session: AsyncSession, actor: Actor, course_id: uuid.UUID, title: str) -> Course:
    course = await _curriculum_write(db_session, actor, course_id)
    if len(course.sections) >= 100:
        raise Conflict("a course has at most 100 sections", code="too_many_sections")
    course.sections.append(Section(id=uuid.uuid4(), course_id=course.id, title=title,
                                   position=len(course.sections) + 1, lessons=[]))
    return await _curriculum_done(db_session, course)


async def rename_section(*, db_session: AsyncSession, actor: Actor, course_id: uuid.UUID,
                         section_id: uuid.UUID, title: str) -> Course:
    course = await _curriculum_write(db_session, actor, course_id)
    _section(course, section_id).title = title
    return await _curriculum_done(db_session, course)


async def delete_section(*, db_session: AsyncSession, actor: Actor, course_id: uuid.UUID,
                         section_id: uuid.UUID) -> Course:
    course = await _curriculum_write(db_session, actor, course_id)
    course.sections.remove(_section(course, section_id))  # delete-orphan takes its lessons too
    await db_session.flush()
    await _renumber(db_session, course.sections)
    return await _curriculum_done(db_session, course)


async def add_lesson(*, db_session: AsyncSession, actor: Actor, course_id: uuid.UUID,
                     section_id: uuid.UUID, data: LessonCreate) -> Course:
    course = await _curriculum_write(db_session, actor, course_id)
    section = _section(course, section_id)
    if len(section.lessons) >= 200:
        raise Conflict("a section has at most 200 lessons", code="too_many_lessons")
    asset_ids = {data.asset_id} if data.asset_id else set()
    await _check_asset_owners(db_session, actor, [actor.user_id], asset_ids)
    ready = await _ready_durations(db_session, asset_ids)
    section.lessons.append(_new_lesson(course.id, section.id, len(section.lessons) + 1, data, ready))
    return await _curriculum_done(db_session, course)


async def update_lesson(*, db_session: AsyncSession, actor: Actor, course_id: uuid.UUID,
                        lesson_id: uuid.UUID, data: LessonUpdate) -> Course:
    course = await _curriculum_write(db_session, actor, course_id)
    _, lesson = _lesson(course, lesson_id)
    changes = data.model_dump(exclude_unset=True)
    if lesson.kind == "text" and changes.get("asset_id") is not None:
        raise Unprocessable("a text lesson has no asset_id", code="invalid_lesson")
    if lesson.kind == "video" and "body" in changes:
        raise Unprocessable("a video lesson has no body", code="invalid_lesson")
    if lesson.kind == "video" and "asset_id" in changes and changes["asset_id"] is None:
        raise Unprocessable("a video lesson needs an asset_id", code="invalid_lesson")
    if any(changes.get(name, "") is None for name in ("title", "is_preview")):
        raise Unprocessable("title and is_preview cannot be null", code="null_field")
    for name, value in changes.items():
        setattr(lesson, name, value)
    if "asset_id" in changes:
        asset_ids = {lesson.asset_id} if lesson.asset_id else set()
        await _check_asset_owners(db_session, actor, [actor.user_id], asset_ids)
        ready = await _ready_durations(db_session, asset_ids)
        if lesson.asset_id in ready and ready[lesson.asset_id] is not None:
            lesson.duration_seconds = ready[lesson.asset_id]
    return await _curriculum_done(db_session, course)


async def delete_lesson(*, db_session: AsyncSession, actor: Actor, course_id: uuid.UUID,
                        lesson_id: uuid.UUID) -> Course:
    course = await _curriculum_write(db_session, actor, course_id)
    section, lesson = _lesson(course, lesson_id)
    section.lessons.remove(lesson)
    await db_session.flush()
    await _renumber(db_session, section.lessons)
    return await _curriculum_done(db_session, course)


async def reorder_curriculum(*, db_session: AsyncSession, actor: Actor, course_id: uuid.UUID,
                             order: CurriculumOrder) -> Course:
    """Sections and lessons in their new order in one call; lessons may change section."""
    course = await _curriculum_write(db_session, actor, course_id)
    sections = {section.id: section for section in course.sections}
    lessons = {lesson.id: lesson for section in course.sections for lesson in section.lessons}
    given_sections = [item.id for item in order.sections]
    given_lessons = [lesson_id for item in order.sections for lesson_id in item.lesson_ids]
    if (sorted(given_sections) != sorted(sections) or sorted(given_lessons) != sorted(lessons)):
        raise Unprocessable("the order must name every section and every lesson of the course exactly once",
                            code="incomplete_order")
    # Park everything on distinct negative positions, then write the final order.
    for parked, section in enumerate(sections.values(), start=1):
        section.position = -parked
    for parked, lesson in enumerate(lessons.values(), start=1):
        lesson.position = -parked
    await db_session.flush()
    for section_position, section_order in enumerate(order.sections, start=1):
        sections[section_order.id].position = section_position
        for lesson_position, lesson_id in enumerate(section_order.lesson_ids, start=1):
            lessons[lesson_id].section_id = section_order.id
            lessons[lesson_id].position = lesson_position
    await db_session.flush()
    db_session.expunge_all()  # the loaded collections still hold the old membership
    course = await _course_for_write(db_session, actor, course_id)
    return await _curriculum_done(db_session, course)


# ---------------------------------------------------------------- categories


async def create_category(*, db_session: AsyncSession, data: CategoryCreate) -> Category:
    category = Category(id=uuid.uuid4(), slug=data.slug, name=data.name)
    db_session.add(category)
    try:
        await db_session.flush()
    except IntegrityError as exc:
        raise Conflict("a category with this slug already exists", code="slug_taken") from exc
    return category


async def list_categories(*, db_session: AsyncSession) -> list[Category]:
    return list(await db_session.scalars(sa.select(Category).order_by(Category.name)))


# ---------------------------------------------------------------- reading


async def _is_enrolled(db_session: AsyncSession, user_id: uuid.UUID, course_id: uuid.UUID) -> bool:
    found = await db_session.scalar(sa.select(Enrollment.id).where(
        Enrollment.user_id == user_id, Enrollment.course_id == course_id, Enrollment.status == "active"))
    return found is not None


async def caller_access(*, db_session: AsyncSession, user_id: uuid.UUID,
                        course_id: uuid.UUID) -> tuple[bool, bool, str | None]:
    """(enrolled, teaches, course status or None) of a signed-in caller: one statement of three
    primary-key/index probes. A signed-in course page costs this on top of the cached answer (see
    api.routes._signed_in_detail)."""
    enrolled = sa.exists().where(Enrollment.user_id == user_id, Enrollment.course_id == course_id,
                                 Enrollment.status == "active")
    teaches = sa.exists().where(CourseInstructor.course_id == course_id, CourseInstructor.user_id == user_id)
    course_status = sa.select(Course.status).where(Course.id == course_id).scalar_subquery()
    row = (await db_session.execute(sa.select(enrolled, teaches, course_status))).one()
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


# ---------------------------------------------------------------- internal (service-to-service)


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


# ---------------------------------------------------------------- video assets (playback's events)


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


async def _is_erased(db_session: AsyncSession, user_id: uuid.UUID) -> bool:
    return await db_session.get(ErasedUser, user_id) is not None


async def grant_enrollment(*, db_session: AsyncSession, user_id: uuid.UUID, course_id: uuid.UUID,
                           source: str, order_id: uuid.UUID | None = None) -> tuple[Enrollment, bool]:
    """Create or reactivate the (user, course) enrollment; returns it and whether access changed.

    An already active enrollment is left alone, so a repeated grant emits no second event.
    """
    if await _is_erased(db_session, user_id):
        raise Conflict("this user was deleted", code="user_erased")
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
    await add_event(db_session, EnrollmentGranted(
        enrollment_id=enrollment.id, user_id=user_id, course_id=course_id, source=source, order_id=order_id,
        version=enrollment.version, occurred_at=now))
    count("catalog", "enrollments_granted")
    return enrollment, True


async def revoke_enrollment(*, db_session: AsyncSession, enrollment: Enrollment, reason: str) -> None:
    now = utcnow()
    enrollment.status = "revoked"
    enrollment.version += 1
    enrollment.updated_at = now
    await add_event(db_session, EnrollmentRevoked(
        enrollment_id=enrollment.id, user_id=enrollment.user_id, course_id=enrollment.course_id, reason=reason,
        version=enrollment.version, occurred_at=now))
    count("catalog", "enrollments_revoked")


async def enroll_free(*, db_session: AsyncSession, actor: Actor,
                      course_id: uuid.UUID) -> tuple[Enrollment, bool]:
    """Self-enrollment, only for free published courses (paid access comes from billing), and
    not back into a course an admin revoked by hand."""
    course = await db_session.scalar(sa.select(Course).where(Course.id == course_id)
                                     .options(selectinload(Course.instructors)))
    if course is None or (course.status != "published" and not actor.may_manage(course)):
        raise NotFound("course not found")
    if course.status != "published":
        raise Conflict("the course is not published", code="course_not_published")
    if not course.is_free:
        raise Conflict("this course is paid: buy it through billing", code="payment_required")
    previous = await _enrollment_for_update(db_session, actor.user_id, course.id)
    if previous is not None and previous.status == "revoked":
        revoked_by_hand = await _last_manual_revoke(db_session, actor.user_id, course.id)
        if revoked_by_hand is not None and revoked_by_hand >= previous.updated_at:
            # Otherwise an admin's revocation of a free course would be undone by one click.
            raise Forbidden("an admin revoked your access to this course; ask support",
                            code="revoked_by_admin")
    return await grant_enrollment(db_session=db_session, user_id=actor.user_id, course_id=course.id,
                                  source="free")


async def _audit(db_session: AsyncSession, actor: Actor, action: str, user_id: uuid.UUID, course_id: uuid.UUID,
                 reason: str, changed: bool) -> None:
    db_session.add(EnrollmentAudit(id=uuid.uuid4(), at=utcnow(), actor_id=actor.user_id, action=action,
                                   user_id=user_id, course_id=course_id, reason=reason, changed=changed))
    count("catalog", f"admin_enrollment_{action}s")


async def admin_grant(*, db_session: AsyncSession, actor: Actor, user_id: uuid.UUID, course_id: uuid.UUID,
                      reason: str) -> tuple[Enrollment, bool]:
    """An admin gives access by hand (any course status, paid or free); always audited."""
    if await db_session.scalar(sa.select(Course.id).where(Course.id == course_id)) is None:
        raise NotFound("course not found")
    enrollment, changed = await grant_enrollment(db_session=db_session, user_id=user_id, course_id=course_id,
                                                 source="admin")
    await _audit(db_session, actor, "grant", user_id, course_id, reason, changed)
    return enrollment, changed


async def admin_revoke(*, db_session: AsyncSession, actor: Actor, user_id: uuid.UUID, course_id: uuid.UUID,
                       reason: str) -> tuple[Enrollment, bool]:
    """An admin takes access away by hand, whatever granted it; always audited."""
    enrollment = await _enrollment_for_update(db_session, user_id, course_id)
    if enrollment is None:
        raise NotFound("this user has no enrollment in this course")
    changed = enrollment.status == "active"
    if changed:
        await revoke_enrollment(db_session=db_session, enrollment=enrollment, reason="admin")
    await _audit(db_session, actor, "revoke", user_id, course_id, reason, changed)
    return enrollment, changed


async def enrollment_audit(*, db_session: AsyncSession, course_id: uuid.UUID | None, user_id: uuid.UUID | None,
                           page: int, page_size: int) -> AuditPage:
    where = [condition for condition in (
        EnrollmentAudit.course_id == course_id if course_id else None,
        EnrollmentAudit.user_id == user_id if user_id else None) if condition is not None]
    total = await db_session.scalar(sa.select(sa.func.count(EnrollmentAudit.id)).where(*where)) or 0
    rows = await db_session.scalars(sa.select(EnrollmentAudit).where(*where)
                                    .order_by(EnrollmentAudit.at.desc(), EnrollmentAudit.id)
                                    .offset((page - 1) * page_size).limit(page_size))
    return AuditPage(items=[AuditEntry.model_validate(row) for row in rows], total=total, page=page,
                     page_size=page_size)


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


async def _last_manual_revoke(db_session: AsyncSession, user_id: uuid.UUID,
                              course_id: uuid.UUID) -> dt.datetime | None:
    return await db_session.scalar(sa.select(sa.func.max(EnrollmentAudit.at)).where(
        EnrollmentAudit.user_id == user_id, EnrollmentAudit.course_id == course_id,
        EnrollmentAudit.action == "revoke"))


def _before(paid_at: dt.datetime, revoked_at: dt.datetime | None) -> bool:
    return revoked_at is not None and paid_at <= revoked_at


async def record_order_paid(*, db_session: AsyncSession, order_id: uuid.UUID, user_id: uuid.UUID,
                            course_id: uuid.UUID, paid_at: dt.datetime) -> None:
    """Grant access for a payment, once per order, whatever order the events come in.

    Not granted: a payment already handled (a re-emitted event must not undo a revocation made
    since), an order already refunded, and a payment made before an admin took access away by
    hand (a late event does not overrule the admin; support can grant by hand)."""
    if await _is_erased(db_session, user_id):
        log.info("payment for an erased user: no access granted", extra={"order_id": str(order_id)})
        return
    fact = await _order_fact_for_update(db_session, order_id, user_id, course_id)
    if fact.paid_at is not None:
        count("catalog", "duplicate_payment_ignored")
        return
    fact.paid_at = paid_at
    if fact.refunded_at is not None:
        log.info("payment of an already refunded order: no access granted",
                 extra={"order_id": str(order_id)})
        count("catalog", "paid_after_refund_ignored")
        return
    if await db_session.get(Course, fact.course_id) is None:
        # Billing only sells courses it read from us: failing loudly sends the event to the DLQ.
        raise LookupError(f"order {order_id} is for unknown course {fact.course_id}")
    if _before(paid_at, await _last_manual_revoke(db_session, fact.user_id, fact.course_id)):
        log.warning("payment made before an admin revoked access by hand: no access granted",
                    extra={"order_id": str(order_id), "course_id": str(fact.course_id)})
        count("catalog", "paid_before_manual_revoke_ignored")
        return
    await grant_enrollment(db_session=db_session, user_id=fact.user_id, course_id=fact.course_id,
                           source="order", order_id=order_id)


async def record_order_refunded(*, db_session: AsyncSession, order_id: uuid.UUID, user_id: uuid.UUID,
                                course_id: uuid.UUID, refunded_at: dt.datetime) -> None:
    """Revoke access bought with this order, unless another paid, unrefunded order of the same
    learner and course (paid after any manual revocation) still covers it."""
    if await _is_erased(db_session, user_id):
        return
    fact = await _order_fact_for_update(db_session, order_id, user_id, course_id)
    if fact.refunded_at is None:
        fact.refunded_at = refunded_at
    enrollment = await _enrollment_for_update(db_session, fact.user_id, fact.course_id)
    if enrollment is None or enrollment.status != "active" or enrollment.order_id != order_id:
        return  # never granted, already revoked, or access came from another order / for free
    revoked_at = await _last_manual_revoke(db_session, fact.user_id, fact.course_id)
    others = await db_session.scalars(
        sa.select(OrderFact).where(
            OrderFact.user_id == fact.user_id, OrderFact.course_id == fact.course_id,
            OrderFact.order_id != order_id, OrderFact.paid_at.is_not(None), OrderFact.refunded_at.is_(None))
        .order_by(OrderFact.paid_at, OrderFact.order_id))
    if other := next((o for o in others if o.paid_at and not _before(o.paid_at, revoked_at)), None):
        enrollment.order_id = other.order_id  # access unchanged: nothing to announce
        return
    await revoke_enrollment(db_session=db_session, enrollment=enrollment, reason="refunded")


# ---------------------------------------------------------------- erasure (auth.user.deleted.v1)


async def erase_user(*, db_session: AsyncSession, user_id: uuid.UUID, erased_at: dt.datetime) -> None:
    """Remove what catalog knows about a person: enrollments (revoked first, so consumers that
    track access see it end), order facts, co-instructor rows; audit rows keep the fact but lose
    the ids. A tombstone keeps late or redelivered payment events from bringing anything back."""
    await _insert_if_absent(db_session, ErasedUser, ["user_id"], {"user_id": user_id, "erased_at": erased_at})
    enrollments = list(await db_session.scalars(
        sa.select(Enrollment).where(Enrollment.user_id == user_id).with_for_update()))
    for enrollment in enrollments:
        if enrollment.status == "active":
            await revoke_enrollment(db_session=db_session, enrollment=enrollment, reason="user_deleted")
    await db_session.flush()
    await db_session.execute(sa.delete(Enrollment).where(Enrollment.user_id == user_id))
    await db_session.execute(sa.delete(OrderFact).where(OrderFact.user_id == user_id))
    await db_session.execute(sa.update(EnrollmentAudit).where(EnrollmentAudit.user_id == user_id)
                             .values(user_id=None))
    await db_session.execute(sa.update(EnrollmentAudit).where(EnrollmentAudit.actor_id == user_id)
                             .values(actor_id=None))
    taught = set(await db_session.scalars(
        sa.delete(CourseInstructor).where(CourseInstructor.user_id == user_id)
        .returning(CourseInstructor.course_id)))
    mark_dirty(db_session, *taught)
    count("catalog", "users_erased")
