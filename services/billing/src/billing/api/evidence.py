"""The evidence trail for admins, and billing's part of a learner's data export (for auth)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from billing import evidence, export
from billing.api.deps import RuntimeDep, SettingsDep
from billing.api.invoices import buyer_of
from common.security import AdminUser, Principal, require_service
from contracts.peers import BillingExport

router = APIRouter(tags=["evidence"])
internal_router = APIRouter(prefix="/internal", tags=["internal"])

TrailLimit = Annotated[int, Query(ge=1, le=1000, description="at most this many entries per service and kind")]
AuthOnly = Annotated[Principal, Depends(require_service("auth"))]


@router.get("/admin/evidence/orders/{order_id}", response_model=evidence.EvidenceTrail)
async def order_evidence(order_id: uuid.UUID, _admin: AdminUser, runtime: RuntimeDep,
                         limit: TrailLimit = 200) -> evidence.EvidenceTrail:
    """The order's whole story across services, oldest first: checkout, provider events, payment,
    enrollment, playback sessions and manifests, refund, revocation; each with its request id."""
    return await evidence.trail(runtime, order_id=order_id, limit=limit)


@router.get("/admin/evidence/users/{user_id}", response_model=evidence.EvidenceTrail)
async def user_evidence(user_id: uuid.UUID, _admin: AdminUser, runtime: RuntimeDep,
                        limit: TrailLimit = 200) -> evidence.EvidenceTrail:
    """Everything the platform recorded about one user (all orders and courses, and the account)."""
    return await evidence.trail(runtime, user_id=user_id, limit=limit)


@internal_router.get("/users/{user_id}/export", response_model=BillingExport)
async def internal_user_export(user_id: uuid.UUID, _caller: AuthOnly, runtime: RuntimeDep,
                               settings: SettingsDep) -> BillingExport:
    async with runtime.db.session() as session:
        data, documents = await export.rows(session, user_id)
    if documents:
        data = await export.with_pdfs(data, documents, await buyer_of(runtime, user_id), settings)
    return BillingExport.model_validate(data)
