"""Playback's internal answers for the evidence trail (billing) and the data export (auth)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from common.security import Principal, require_service
from contracts.peers import PlaybackEvidence, PlaybackExport
from playback import evidence
from playback.api.deps import ResourcesDep, RuntimeDep

router = APIRouter(prefix="/internal", tags=["internal"])

BillingOnly = Annotated[Principal, Depends(require_service("billing"))]
AuthOnly = Annotated[Principal, Depends(require_service("auth"))]
TrailLimit = Annotated[int, Query(ge=1, le=1000, description="at most this many entries of each kind")]


@router.get("/users/{user_id}/evidence", response_model=PlaybackEvidence)
async def internal_user_evidence(user_id: uuid.UUID, _caller: BillingOnly, runtime: RuntimeDep,
                                 resources: ResourcesDep, course_id: uuid.UUID | None = None,
                                 limit: TrailLimit = 200) -> PlaybackEvidence:
    await resources.access_records.flush()  # manifests served in the last moments are part of the story
    async with runtime.db.session() as session:
        entries, truncated = await evidence.trail(db_session=session, user_id=user_id, course_id=course_id,
                                                  limit=limit)
    return PlaybackEvidence.model_validate({"entries": entries, "truncated": truncated})


@router.get("/users/{user_id}/export", response_model=PlaybackExport)
async def internal_user_export(user_id: uuid.UUID, _caller: AuthOnly, runtime: RuntimeDep) -> PlaybackExport:
    async with runtime.db.session() as session:
        return PlaybackExport.model_validate(await evidence.export(db_session=session, user_id=user_id))
