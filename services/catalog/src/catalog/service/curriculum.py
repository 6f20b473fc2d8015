"""Curriculum of draft courses: sections and lessons, their order (single-transaction verbs)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import (
    Course,
    Lesson,
    Section,
)
from catalog.public_cache import mark_dirty
from catalog.schemas import (
    CurriculumOrder,
    LessonCreate,
    LessonUpdate,
)
from common.db import utcnow
from common.errors import Conflict, NotFound, Unprocessable

from .authoring import _check_asset_owners, _new_lesson, _ready_durations, _refresh_totals
from .loading import Actor, _course_for_write, _load_course, _require_status


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
