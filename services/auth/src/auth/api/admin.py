"""Admin API: users (search, roles, disable/enable) and the audit log. Every route needs a token
with the admin role and an account that still has it."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from auth import admin, audit
from auth.api.deps import AdminAccount, RuntimeDep
from auth.schemas import AdminUserRead, AuditPage, AuditRead, Role, RolesUpdate, UserPage
from common.bounds import PageNumber, PageSize

router = APIRouter(prefix="/admin", tags=["admin"])

Page = PageNumber


@router.get("/users", response_model=UserPage)
async def list_users(account: AdminAccount, runtime: RuntimeDep,
                     q: Annotated[str | None, Query(max_length=200)] = None, role: Role | None = None,
                     active: bool | None = None, page: Page = 1, page_size: PageSize = 20) -> UserPage:
    async with runtime.db.session() as session:
        rows, total = await admin.list_users(db_session=session, q=q, role=role, active=active, page=page,
                                             page_size=page_size)
    return UserPage(items=[AdminUserRead.model_validate(r) for r in rows], total=total, page=page,
                    page_size=page_size)


@router.get("/users/{user_id}", response_model=AdminUserRead)
async def get_user(user_id: uuid.UUID, account: AdminAccount, runtime: RuntimeDep) -> Any:
    async with runtime.db.session() as session:
        return await admin.get_user(db_session=session, user_id=user_id)


@router.put("/users/{user_id}/roles", response_model=AdminUserRead)
async def set_roles(user_id: uuid.UUID, body: RolesUpdate, account: AdminAccount, runtime: RuntimeDep) -> Any:
    async with runtime.db.transaction() as session:
        return await admin.set_roles(db_session=session, user_id=user_id, roles=list(body.roles), ctx=account.ctx)


@router.post("/users/{user_id}/disable", response_model=AdminUserRead)
async def disable_user(user_id: uuid.UUID, account: AdminAccount, runtime: RuntimeDep) -> Any:
    async with runtime.db.transaction() as session:
        return await admin.disable(db_session=session, user_id=user_id, ctx=account.ctx)


@router.post("/users/{user_id}/enable", response_model=AdminUserRead)
async def enable_user(user_id: uuid.UUID, account: AdminAccount, runtime: RuntimeDep) -> Any:
    async with runtime.db.transaction() as session:
        return await admin.enable(db_session=session, user_id=user_id, ctx=account.ctx)


@router.get("/audit", response_model=AuditPage)
async def audit_log(account: AdminAccount, runtime: RuntimeDep, user_id: uuid.UUID | None = None,
                    action: Annotated[str | None, Query(max_length=40)] = None, page: Page = 1,
                    page_size: PageSize = 50) -> AuditPage:
    async with runtime.db.session() as session:
        rows, total = await audit.entries(session, subject_id=user_id, action=action, limit=page_size,
                                          offset=(page - 1) * page_size)
    return AuditPage(items=[AuditRead.model_validate(r) for r in rows], total=total, page=page,
                     page_size=page_size)
