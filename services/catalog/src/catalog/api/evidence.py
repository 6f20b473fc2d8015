"""Catalog's internal answers for the evidence trail (billing) and the data export (auth), and the
admin's backfill of learner names from auth."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from catalog import certificates, evidence
from catalog.api.deps import AdminDep, RuntimeDep
from common.security import Principal, require_service
from contracts.peers import CatalogEvidence, CatalogExport, UserNames

internal_router = APIRouter(prefix="/internal", tags=["internal"])
router = APIRouter(tags=["certificates"])

BillingOnly = Annotated[Principal, Depends(require_service("billing"))]
AuthOnly = Annotated[Principal, Depends(require_service("auth"))]
TrailLimit = Annotated[int, Query(ge=1, le=1000, description="at most this many entries of each kind")]


@internal_router.get("/users/{user_id}/evidence", response_model=CatalogEvidence)
async def internal_user_evidence(user_id: uuid.UUID, _caller: BillingOnly, runtime: RuntimeDep,
                                 course_id: uuid.UUID | None = None, limit: TrailLimit = 200) -> CatalogEvidence:
    async with runtime.db.session() as session:
        entries, truncated = await evidence.trail(db_session=session, user_id=user_id, course_id=course_id,
                                                  limit=limit)
    return CatalogEvidence.model_validate({"entries": entries, "truncated": truncated})


@internal_router.get("/users/{user_id}/export", response_model=CatalogExport)
async def internal_user_export(user_id: uuid.UUID, _caller: AuthOnly, runtime: RuntimeDep) -> CatalogExport:
    async with runtime.db.session() as session:
        return CatalogExport.model_validate(await evidence.export(db_session=session, user_id=user_id))


class NameBackfill(BaseModel):
    users_read: int
    names_stored: int


@router.post("/admin/certificates/backfill-names", response_model=NameBackfill)
async def backfill_learner_names(_admin: AdminDep, runtime: RuntimeDep) -> NameBackfill:
    """Names of accounts registered before certificates existed (no `auth.user.registered` seen),
    read page by page from auth; certificates issued without a name get it. Idempotent."""
    names = stored = 0
    after: uuid.UUID | None = None
    while True:
        page = (await runtime.client("auth").get_model(
            "/internal/user-names", UserNames, params={"after": str(after)} if after else None)).items
        if not page:
            break
        async with runtime.db.transaction() as session:
            stored += await certificates.backfill_names(db_session=session, names={
                item.user_id: item.full_name for item in page})
        names += len(page)
        after = page[-1].user_id
    return NameBackfill(users_read=names, names_stored=stored)
