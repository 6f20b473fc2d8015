"""Demo courses for the embedded mode (ids in docs/contracts.md). Idempotent, and emits no events:
seeded data is the starting state, not something that happened."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import Course, Lesson, Section
from common.db import utcnow

DEMO_INSTRUCTOR_ID = uuid.UUID("00000000-0000-4000-8000-000000000002")
DEMO_ASSET_ID = uuid.UUID("20000000-0000-4000-8000-000000000001")
PAID_COURSE_ID = uuid.UUID("10000000-0000-4000-8000-000000000001")
FREE_COURSE_ID = uuid.UUID("10000000-0000-4000-8000-000000000002")

# (lesson id, title, kind, is_preview, duration_seconds)
LessonSpec = tuple[str, str, str, bool, int | None]
# course id -> (slug, title, subtitle, price_amount, [(section id, title, [lessons])])
DEMO_COURSES: dict[uuid.UUID, tuple[str, str, str, int, list[tuple[str, str, list[LessonSpec]]]]] = {
    PAID_COURSE_ID: (
        "protected-video-streaming-101", "Protected Video Streaming 101",
        "Signed URLs, short-lived tokens and HLS, end to end", 4900, [
            ("11000000-0000-4000-8000-000000000001", "Welcome", [
                ("30000000-0000-4000-8000-000000000001", "Trailer", "video", True, 6),
                ("30000000-0000-4000-8000-000000000002", "Reading list", "text", False, None),
            ]),
            ("11000000-0000-4000-8000-000000000002", "Deep dive", [
                ("30000000-0000-4000-8000-000000000003", "Signed URLs in practice", "video", False, 6),
            ]),
        ]),
    FREE_COURSE_ID: (
        "hls-basics-free", "HLS Basics (free)", "Playlists and segments in six seconds", 0, [
            ("11000000-0000-4000-8000-000000000003", "Start here", [
                ("30000000-0000-4000-8000-000000000004", "What is HLS?", "video", True, 6),
            ]),
        ]),
}


async def seed(*, db_session: AsyncSession) -> None:
    now = utcnow()
    for course_id, (slug, title, subtitle, price, sections) in DEMO_COURSES.items():
        if await db_session.get(Course, course_id) is not None:
            continue
        course = Course(id=course_id, slug=slug, title=title, subtitle=subtitle,
                        description=f"{title}: a demo course of the embedded mode.",
                        instructor_id=DEMO_INSTRUCTOR_ID, price_amount=price, currency="EUR",
                        status="published", created_at=now, updated_at=now, published_at=now, sections=[])
        for section_position, (section_id, section_title, lessons) in enumerate(sections, start=1):
            section = Section(id=uuid.UUID(section_id), course_id=course_id, position=section_position,
                              title=section_title, lessons=[])
            for lesson_position, (lesson_id, lesson_title, kind, preview, duration) in enumerate(
                    lessons, start=1):
                section.lessons.append(Lesson(
                    id=uuid.UUID(lesson_id), section_id=section.id, course_id=course_id,
                    position=lesson_position, title=lesson_title, kind=kind,
                    asset_id=DEMO_ASSET_ID if kind == "video" else None, is_preview=preview,
                    duration_seconds=duration))
            course.sections.append(section)
        db_session.add(course)
