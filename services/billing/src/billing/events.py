"""Events billing consumes: account erasure anonymises the user's orders."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from billing import service
from common.events.consumer import HandlerMap
from common.events.envelope import Envelope


async def on_user_deleted(session: AsyncSession, envelope: Envelope) -> None:
    """`auth.user.deleted.v1 {user_id, deleted_at}`; a malformed id fails loudly (to the DLQ)."""
    await service.erase_user(db_session=session, user_id=uuid.UUID(str(envelope.payload["user_id"])))


HANDLERS: HandlerMap = {"auth.user.deleted.v1": on_user_deleted}
