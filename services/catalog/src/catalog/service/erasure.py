"""Erasure on auth.user.deleted.v1: a user's enrollments and personal data go, access records stay anonymous."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.models import (
    CourseInstructor,
    Enrollment,
    EnrollmentAudit,
    ErasedUser,
    OrderFact,
)
from catalog.public_cache import mark_dirty
from common.observability.metrics import count

from .enrollments import _insert_if_absent, revoke_enrollment


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
