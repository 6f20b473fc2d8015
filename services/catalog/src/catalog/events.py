"""Events catalog consumes: billing's paid and refunded orders drive enrollments, playback's
asset events make video lessons publishable and give them their duration, its lesson completions
issue certificates, auth's registrations name learners and its deletions erase.

Payloads are validated with the models of `contracts.events` (unknown extra fields are tolerated,
so producers can add fields); the decisions live in service.py.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from catalog import certificates, evidence, service
from common.events import Envelope
from common.events.consumer import HandlerMap
from common.revocation import WithRevocations
from contracts.events import (
    REVOKING_ACCESS,
    AssetDeleted,
    AssetReady,
    LessonCompleted,
    OrderPaid,
    OrderRefunded,
    UserDeleted,
    UserRegistered,
)


async def on_order_paid(session: AsyncSession, envelope: Envelope) -> None:
    event = OrderPaid.model_validate(envelope.payload)
    await service.record_order_paid(db_session=session, order_id=event.order_id, user_id=event.user_id,
                                    course_id=event.course_id, paid_at=event.paid_at)


async def on_order_refunded(session: AsyncSession, envelope: Envelope) -> None:
    event = OrderRefunded.model_validate(envelope.payload)
    await service.record_order_refunded(db_session=session, order_id=event.order_id,
                                        user_id=event.user_id, course_id=event.course_id,
                                        refunded_at=event.refunded_at)


async def on_asset_ready(session: AsyncSession, envelope: Envelope) -> None:
    event = AssetReady.model_validate(envelope.payload)
    await service.record_asset_ready(db_session=session, asset_id=event.asset_id, owner_id=event.owner_id,
                                     duration_seconds=event.duration_seconds, ready_at=event.ready_at)


async def on_asset_deleted(session: AsyncSession, envelope: Envelope) -> None:
    event = AssetDeleted.model_validate(envelope.payload)
    await service.record_asset_deleted(db_session=session, asset_id=event.asset_id, deleted_at=event.deleted_at)


async def on_user_deleted(session: AsyncSession, envelope: Envelope) -> None:
    event = UserDeleted.model_validate(envelope.payload)
    erased_at = event.deleted_at or envelope.occurred_at
    await service.erase_user(db_session=session, user_id=event.user_id, erased_at=erased_at)
    await certificates.erase_user(db_session=session, user_id=event.user_id, erased_at=erased_at)
    await evidence.erase_user(db_session=session, user_id=event.user_id)


async def on_user_registered(session: AsyncSession, envelope: Envelope) -> None:
    event = UserRegistered.model_validate(envelope.payload)
    await certificates.record_user_name(db_session=session, user_id=event.user_id, full_name=event.full_name)


async def on_lesson_completed(session: AsyncSession, envelope: Envelope) -> None:
    event = LessonCompleted.model_validate(envelope.payload)
    await certificates.record_lesson_completed(db_session=session, user_id=event.user_id,
                                               course_id=event.course_id, lesson_id=event.lesson_id,
                                               completed_at=event.completed_at)


HANDLERS: HandlerMap = {
    "billing.order.paid.v1": on_order_paid,
    "billing.order.refunded.v1": on_order_refunded,
    "playback.asset.ready.v1": on_asset_ready,
    "playback.asset.deleted.v1": on_asset_deleted,
    "auth.user.deleted.v1": on_user_deleted,
    "auth.user.registered.v1": on_user_registered,
    "playback.lesson.completed.v1": on_lesson_completed,
}


# Every service verifies user tokens locally, so each records auth's revocations itself.
handlers = WithRevocations(HANDLERS, REVOKING_ACCESS)
