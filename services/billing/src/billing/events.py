"""Events billing consumes: account erasure anonymises the user's orders."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing import service
from common.events.consumer import HandlerMap
from common.events.envelope import Envelope
from common.revocation import WithRevocations
from contracts.events import REVOKING_ACCESS, UserDeleted


async def on_user_deleted(session: AsyncSession, envelope: Envelope) -> None:
    """A payload outside the contract fails loudly (to the DLQ)."""
    event = UserDeleted.model_validate(envelope.payload)
    await service.erase_user(db_session=session, user_id=event.user_id)


HANDLERS: HandlerMap = {"auth.user.deleted.v1": on_user_deleted}


# Every service verifies user tokens locally, so each records auth's revocations itself.
handlers = WithRevocations(HANDLERS, REVOKING_ACCESS)
