"""The acting user, the allowed status changes and course loading shared by every use case."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from catalog.models import (
    Course,
    Section,
)
from common.errors import Conflict, Forbidden, NotFound

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
