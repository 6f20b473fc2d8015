"""A small fixed set of published courses for relevance tests, on either backend."""

from __future__ import annotations

import uuid
from typing import Any

from catalog import service
from catalog.schemas import CourseCreate
from common.db import Database

TEXT_LESSON = [{"title": "Only section", "lessons": [{"title": "Read me", "kind": "text"}]}]

# name -> course fields; "quokka" is the searched word, placed in a different field each time.
FIXTURE: dict[str, dict[str, Any]] = {
    "in_title": {"title": "Quokka Encoding Masterclass", "subtitle": "Everything about it",
                 "description": "A long course.", "price_amount": 5000, "level": "advanced", "language": "en"},
    "in_subtitle": {"title": "Video Pipelines", "subtitle": "Learn quokka encoding fast",
                    "description": "Pipelines end to end.", "price_amount": 0, "level": "beginner",
                    "language": "en"},
    "in_tags": {"title": "Packaging Workshop", "subtitle": "Containers and manifests", "tags": ["quokka"],
                "description": "Hands on.", "price_amount": 2500, "level": "intermediate", "language": "de"},
    "in_description": {"title": "Players Explained", "subtitle": "Every player you will meet",
                       "description": "We mention a quokka exactly once, in passing.", "price_amount": 1000,
                       "level": "beginner", "language": "en"},
    "unrelated": {"title": "Audio Mastering", "subtitle": "Loudness and codecs", "description": "Nothing else.",
                  "price_amount": 3000, "level": "all", "language": "fr"},
}


async def create_fixture(db: Database, instructor: uuid.UUID) -> dict[str, str]:
    """Create and publish the fixture courses; returns name -> course id."""
    actor = service.Actor(user_id=instructor)
    ids: dict[str, str] = {}
    for name, fields in FIXTURE.items():
        async with db.transaction() as session:
            course = await service.create_course(db_session=session, actor=actor, data=CourseCreate(
                currency="EUR", sections=TEXT_LESSON, **fields))
            await service.change_status(db_session=session, actor=actor, course_id=course.id, target="published")
            ids[name] = str(course.id)
    return ids


def names(ids: dict[str, str], listing: dict[str, Any]) -> list[str]:
    by_id = {course_id: name for name, course_id in ids.items()}
    return [by_id[item["id"]] for item in listing["items"] if item["id"] in by_id]
