"""Enrollments: grants and revocations from billing's orders, free enrollments and admin grants, with their audit.

Order facts are kept so that events arriving out of order (refund before payment) still end in the right state.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from catalog import certificates, evidence
from catalog.models import (
    Base,
    Course,
    Enrollment,
    EnrollmentAudit,
    ErasedUser,
    OrderFact,
)
from catalog.schemas import (
    AuditEntry,
    AuditPage,
)
from common.db import upsert_insert, utcnow
from common.errors import Conflict, Forbidden, NotFound
from common.events import add_event
from common.observability.metrics import count
from contracts.events import EnrollmentGranted, EnrollmentRevoked

from .loading import Actor

log = logging.getLogger(__name__)


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
    await evidence.record_step(db_session, enrollment, "granted", source)
    count("catalog", "enrollments_granted")
    # Lessons completed before (a free course, an admin grant, a re-purchase) certify at once.
    await certificates.issue_if_complete(db_session=db_session, user_id=user_id, course_id=course_id)
    return enrollment, True


async def revoke_enrollment(*, db_session: AsyncSession, enrollment: Enrollment, reason: str) -> None:
    now = utcnow()
    enrollment.status = "revoked"
    enrollment.version += 1
    enrollment.updated_at = now
    await add_event(db_session, EnrollmentRevoked(
        enrollment_id=enrollment.id, user_id=enrollment.user_id, course_id=enrollment.course_id, reason=reason,
        version=enrollment.version, occurred_at=now))
    await evidence.record_step(db_session, enrollment, "revoked", reason)
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
