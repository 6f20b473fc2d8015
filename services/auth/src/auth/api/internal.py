"""Internal API for other services (service token with audience auth; never public at the edge)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from auth import service
from auth.api.deps import RuntimeDep
from auth.schemas import InternalUser
from common.security import Principal, require_service

router = APIRouter(prefix="/internal", tags=["internal"])

# docs/contracts.md: billing reads the name and address for receipts.
UserReaders = Annotated[Principal, Depends(require_service("billing"))]


@router.get("/users/{user_id}", response_model=InternalUser)
async def internal_user(user_id: uuid.UUID, _caller: UserReaders, runtime: RuntimeDep) -> InternalUser:
    """404 once the account is erased; disabled accounts are still answered (is_active false)."""
    async with runtime.db.session() as session:
        user = await service.internal_user(db_session=session, user_id=user_id)
    return InternalUser(user_id=user.id, email=user.email, full_name=user.full_name, is_active=user.is_active)
