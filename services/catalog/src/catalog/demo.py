"""Demo courses for the embedded mode (ids in docs/contracts.md). Idempotent, and emits no events:
seeded data is the starting state, not something that happened."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import Category, Course, CourseInstructor, KnownAsset, Lesson, Section
from common.db import upsert_insert, utcnow

DEMO_INSTRUCTOR_ID = uuid.UUID("00000000-0000-4000-8000-000000000002")
DEMO_ASSET_ID = uuid.UUID("20000000-0000-4000-8000-000000000001")
DEMO_ASSET_SECONDS = 6
DEMO_CATEGORY_ID = uuid.UUID("12000000-0000-4000-8000-000000000001")
PAID_COURSE_ID = uuid.UUID("10000000-0000-4000-8000-000000000001")
FREE_COURSE_ID = uuid.UUID("10000000-0000-4000-8000-000000000002")

# (lesson id, title, kind, is_preview, duration_seconds)
LessonSpec = tuple[str, str, str, bool, int | None]
# course id -> (slug, title, subtitle, price_amount, level, tags, [(section id, title, [lessons])])
DEMO_COURSES: dict[uuid.UUID, tuple[str, str, str, int, str, list[str],
                                    list[tuple[str, str, list[LessonSpec]]]]] = {
    PAID_COURSE_ID: (
        "protected-video-streaming-101", "Protected Video Streaming 101",
        "Signed URLs, short-lived tokens and HLS, end to end", 4900, "intermediate",
        ["hls", "security", "streaming"], [
            ("11000000-0000-4000-8000-000000000001", "Welcome", [
                ("30000000-0000-4000-8000-000000000001", "Trailer", "video", True, DEMO_ASSET_SECONDS),
                ("30000000-0000-4000-8000-000000000002", "Reading list", "text", False, None),
            ]),
            ("11000000-0000-4000-8000-000000000002", "Deep dive", [
                ("30000000-0000-4000-8000-000000000003", "Signed URLs in practice", "video", False,
                 DEMO_ASSET_SECONDS),
            ]),
        ]),
    FREE_COURSE_ID: (
        "hls-basics-free", "HLS Basics (free)", "Playlists and segments in six seconds", 0, "beginner",
        ["hls", "streaming"], [
            ("11000000-0000-4000-8000-000000000003", "Start here", [
                ("30000000-0000-4000-8000-000000000004", "What is HLS?", "video", True, DEMO_ASSET_SECONDS),
            ]),
        ]),
}


async def seed(*, db_session: AsyncSession) -> None:
    now = utcnow()
    # The committed demo video counts as ready, as if playback had announced it.
    await db_session.execute(upsert_insert(db_session, KnownAsset.__table__).values(
        asset_id=DEMO_ASSET_ID, state="ready", owner_id=DEMO_INSTRUCTOR_ID,
        duration_seconds=DEMO_ASSET_SECONDS, updated_at=now).on_conflict_do_nothing(index_elements=["asset_id"]))
    if await db_session.get(Category, DEMO_CATEGORY_ID) is None:
        db_session.add(Category(id=DEMO_CATEGORY_ID, slug="video-engineering", name="Video engineering"))
    await db_session.flush()
    for course_id, (slug, title, subtitle, price, level, tags, sections) in DEMO_COURSES.items():
        if await db_session.scalar(sa.select(Course.id).where(Course.id == course_id)) is not None:
            continue
        lessons = [lesson for _, _, section_lessons in sections for lesson in section_lessons]
        course = Course(id=course_id, slug=slug, title=title, subtitle=subtitle,
                        description=f"{title}: a demo course of the embedded mode.",
                        instructor_id=DEMO_INSTRUCTOR_ID, price_amount=price, currency="EUR",
                        status="published", created_at=now, updated_at=now, published_at=now, sections=[],
                        level=level, language="en", category_id=DEMO_CATEGORY_ID, tags=tags,
                        tags_text=" ".join(tags), cover_image_url=None, lesson_count=len(lessons),
                        duration_seconds=sum(duration or 0 for *_, duration in lessons),
                        instructors=[CourseInstructor(user_id=DEMO_INSTRUCTOR_ID, position=1)])
        for section_position, (section_id, section_title, section_lessons) in enumerate(sections, start=1):
            section = Section(id=uuid.UUID(section_id), course_id=course_id, position=section_position,
                              title=section_title, lessons=[])
            for lesson_position, (lesson_id, lesson_title, kind, preview, duration) in enumerate(
                    section_lessons, start=1):
                section.lessons.append(Lesson(
                    id=uuid.UUID(lesson_id), section_id=section.id, course_id=course_id,
                    position=lesson_position, title=lesson_title, kind=kind,
                    asset_id=DEMO_ASSET_ID if kind == "video" else None, is_preview=preview,
                    duration_seconds=duration,
                    body="Read the HLS RFC 8216 and the Nginx secure_link docs." if kind == "text" else None))
            course.sections.append(section)
        db_session.add(course)
