"""Authoring: creating, editing and publishing courses, and categories (single-transaction verbs)."""

from __future__ import annotations

import re
import unicodedata
import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import (
    Category,
    Course,
    CourseInstructor,
    KnownAsset,
    Lesson,
    Section,
)
from catalog.public_cache import mark_dirty
from catalog.schemas import (
    CategoryCreate,
    CourseCreate,
    CourseUpdate,
    LessonCreate,
)
from common.db import utcnow
from common.errors import Conflict, Forbidden, Unprocessable
from common.events import add_event
from common.observability.metrics import count
from contracts.events import CoursePublished, CourseUpdated

from .loading import (
    ANNOUNCED_FIELDS,
    MAX_SLUG_LENGTH,
    TRANSITIONS,
    Actor,
    _course_for_write,
    _load_course,
    _require_status,
)


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
