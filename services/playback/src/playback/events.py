"""Events playback consumes: catalog's enrollment changes feed the entitlements read model."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from common.events import Envelope
from common.events.consumer import HandlerMap
from playback import service
from playback.schemas import EnrollmentChanged


async def on_enrollment_granted(session: AsyncSession, envelope: Envelope) -> None:
    change = EnrollmentChanged.model_validate(envelope.payload)
    await service.record_enrollment(db_session=session, user_id=change.user_id,
                                    course_id=change.course_id, version=change.version, active=True)


async def on_enrollment_revoked(session: AsyncSession, envelope: Envelope) -> None:
    change = EnrollmentChanged.model_validate(envelope.payload)
    await service.record_enrollment(db_session=session, user_id=change.user_id,
                                    course_id=change.course_id, version=change.version, active=False)


HANDLERS: HandlerMap = {
    "catalog.enrollment.granted.v1": on_enrollment_granted,
    "catalog.enrollment.revoked.v1": on_enrollment_revoked,
}
