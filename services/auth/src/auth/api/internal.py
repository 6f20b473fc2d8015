"""Internal API for other services (service token with audience auth; never public at the edge)."""

from __future__ import annotations

import uuid
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query

from auth import audit, service
from auth.api.deps import RuntimeDep
from auth.models import User
from auth.schemas import InternalUser
from common.security import Principal, require_service
from contracts.peers import AccountEvidence, EvidenceEntry, UserName, UserNames

router = APIRouter(prefix="/internal", tags=["internal"])

# docs/contracts.md: billing reads the name and address for receipts.
UserReaders = Annotated[Principal, Depends(require_service("billing"))]


@router.get("/users/{user_id}", response_model=InternalUser)
async def internal_user(user_id: uuid.UUID, _caller: UserReaders, runtime: RuntimeDep) -> InternalUser:
    """404 once the account is erased; disabled accounts are still answered (is_active false)."""
    async with runtime.db.session() as session:
        user = await service.internal_user(db_session=session, user_id=user_id)
    return InternalUser(user_id=user.id, email=user.email, full_name=user.full_name, is_active=user.is_active)


EvidenceReaders = Annotated[Principal, Depends(require_service("billing"))]
NameReaders = Annotated[Principal, Depends(require_service("catalog"))]
TrailLimit = Annotated[int, Query(ge=1, le=1000, description="at most this many entries")]


@router.get("/users/{user_id}/evidence", response_model=AccountEvidence)
async def internal_user_evidence(user_id: uuid.UUID, _caller: EvidenceReaders, runtime: RuntimeDep,
                                 limit: TrailLimit = 200) -> AccountEvidence:
    """The account's audit entries (sign-ins, sessions, changes) with their request ids, for
    billing's evidence trail; an erased account still has its id-only entries."""
    async with runtime.db.session() as session:
        entries, total = await audit.entries(session, subject_id=user_id, limit=limit)
    return AccountEvidence(truncated=total > limit, entries=[EvidenceEntry(
        at=entry.occurred_at, kind=f"account.{entry.action}", request_id=entry.request_id,
        detail={"outcome": entry.outcome, "actor": entry.actor, **(entry.details or {})},
    ) for entry in entries])


NAMES_PAGE = 500


@router.get("/user-names", response_model=UserNames)
async def internal_user_names(_caller: NameReaders, runtime: RuntimeDep, after: uuid.UUID | None = None) -> UserNames:
    """Every account's name, in pages ordered by id (catalog backfills certificate names)."""
    query = sa.select(User.id, User.full_name).order_by(User.id).limit(NAMES_PAGE)
    if after is not None:
        query = query.where(User.id > after)
    async with runtime.db.session() as session:
        rows = (await session.execute(query)).all()
    return UserNames(items=[UserName(user_id=row.id, full_name=row.full_name) for row in rows])
