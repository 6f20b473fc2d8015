"""Catalog's internal answers for the evidence trail (billing) and the data export (auth), and the
admin's backfill of learner names from auth."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from catalog import certificates, evidence
from catalog.api.deps import AdminDep, RuntimeDep
from common.errors import UpstreamUnavailable
from common.security import Principal, require_service

internal_router = APIRouter(prefix="/internal", tags=["internal"])
router = APIRouter(tags=["certificates"])

BillingOnly = Annotated[Principal, Depends(require_service("billing"))]
AuthOnly = Annotated[Principal, Depends(require_service("auth"))]
TrailLimit = Annotated[int, Query(ge=1, le=1000, description="at most this many entries of each kind")]


@internal_router.get("/users/{user_id}/evidence")
async def internal_user_evidence(user_id: uuid.UUID, _caller: BillingOnly, runtime: RuntimeDep,
                                 course_id: uuid.UUID | None = None, limit: TrailLimit = 200) -> dict[str, Any]:
    async with runtime.db.session() as session:
        entries, truncated = await evidence.trail(db_session=session, user_id=user_id, course_id=course_id,
                                                  limit=limit)
    return {"entries": entries, "truncated": truncated}


@internal_router.get("/users/{user_id}/export")
async def internal_user_export(user_id: uuid.UUID, _caller: AuthOnly, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.session() as session:
        return await evidence.export(db_session=session, user_id=user_id)


class NameBackfill(BaseModel):
    users_read: int
    names_stored: int


@router.post("/admin/certificates/backfill-names", response_model=NameBackfill)
async def backfill_learner_names(_admin: AdminDep, runtime: RuntimeDep) -> NameBackfill:
    """Names of accounts registered before certificates existed (no `auth.user.registered` seen),
    read page by page from auth; certificates issued without a name get it. Idempotent."""
    names = stored = 0
    after: str | None = None
    while True:
        response = await runtime.client("auth").get(
            "/internal/user-names", params={"after": after} if after else None)
        if response.status_code != 200:
            raise UpstreamUnavailable("auth did not answer the names")
        page = response.json()["items"]
        if not page:
            break
        async with runtime.db.transaction() as session:
            stored += await certificates.backfill_names(db_session=session, names={
                uuid.UUID(item["user_id"]): item["full_name"] for item in page})
        names += len(page)
        after = page[-1]["user_id"]
    return NameBackfill(users_read=names, names_stored=stored)
