"""Events playback consumes.

catalog's enrollment changes feed the entitlements read model (highest version wins); a revocation
that is the current state also ends that course's running paid sessions. auth's account events end
the user's sessions (disabled, "sign out everywhere") or erase their playback data (deleted).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from common.events import Envelope
from common.events.consumer import HandlerMap
from common.revocation import WithRevocations
from contracts.events import (
    REVOKING_ACCESS,
    EnrollmentGranted,
    EnrollmentRevoked,
    UserDeleted,
    UserDisabled,
    UserSessionsRevoked,
)
from playback import service


async def on_enrollment_granted(session: AsyncSession, envelope: Envelope) -> None:
    change = EnrollmentGranted.model_validate(envelope.payload)
    await service.record_enrollment(db_session=session, user_id=change.user_id,
                                    course_id=change.course_id, version=change.version, active=True)


async def on_enrollment_revoked(session: AsyncSession, envelope: Envelope) -> None:
    change = EnrollmentRevoked.model_validate(envelope.payload)
    current = await service.record_enrollment(db_session=session, user_id=change.user_id,
                                              course_id=change.course_id, version=change.version, active=False)
    if current:
        await service.end_sessions(db_session=session, user_id=change.user_id, course_id=change.course_id,
                                   reason=service.ENROLLMENT_REVOKED)


async def on_user_disabled(session: AsyncSession, envelope: Envelope) -> None:
    change = UserDisabled.model_validate(envelope.payload)
    await service.end_sessions(db_session=session, user_id=change.user_id, reason=service.USER_DISABLED)


async def on_user_sessions_revoked(session: AsyncSession, envelope: Envelope) -> None:
    """Sign out everywhere: streams started before the sign-out end; a new login's stream does not."""
    change = UserSessionsRevoked.model_validate(envelope.payload)
    await service.end_sessions(db_session=session, user_id=change.user_id, reason=service.SIGNED_OUT,
                               created_before=change.revoked_at)


async def on_user_deleted(session: AsyncSession, envelope: Envelope) -> None:
    change = UserDeleted.model_validate(envelope.payload)
    await service.erase_user(db_session=session, user_id=change.user_id,
                             erased_at=change.deleted_at or envelope.occurred_at)


HANDLERS: HandlerMap = {
    "catalog.enrollment.granted.v1": on_enrollment_granted,
    "catalog.enrollment.revoked.v1": on_enrollment_revoked,
    "auth.user.disabled.v1": on_user_disabled,
    "auth.user.sessions_revoked.v1": on_user_sessions_revoked,
    "auth.user.deleted.v1": on_user_deleted,
}


# Every service verifies user tokens locally, so each records auth's revocations itself.
handlers = WithRevocations(HANDLERS, REVOKING_ACCESS)
