"""The audit log: who did what to whom, when, from where. Insert-only by construction: this module
is the only writer and it has no update or delete path (PostgreSQL also refuses them by trigger)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import AuditEvent
from common.db import utcnow


@dataclass(frozen=True)
class RequestContext:
    """Where a use case was asked for: the caller's address and agent, the request id, and the
    acting principal (a user id, `service:<name>`, `cli`, or None before sign-in)."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    actor: str | None = None

    def acting_as(self, actor: str | uuid.UUID | None) -> RequestContext:
        return replace(self, actor=str(actor) if actor is not None else None)


CLI = RequestContext(user_agent="python -m auth", actor="cli")


async def record(db_session: AsyncSession, ctx: RequestContext, action: str, *, outcome: str = "success",
                 subject_id: uuid.UUID | None = None, **details: Any) -> None:
    """Append one entry in the caller's transaction (it is kept exactly when the change is)."""
    await db_session.execute(sa.insert(AuditEvent).values(
        id=uuid.uuid4(), occurred_at=utcnow(), action=action, outcome=outcome, actor=ctx.actor,
        subject_id=subject_id, ip=ctx.ip, user_agent=(ctx.user_agent or "")[:200] or None,
        request_id=ctx.request_id, details=details))


async def entries(db_session: AsyncSession, *, subject_id: uuid.UUID | None = None, action: str | None = None,
                  limit: int = 100, offset: int = 0) -> tuple[list[AuditEvent], int]:
    query = sa.select(AuditEvent)
    if subject_id is not None:
        query = query.where(sa.or_(AuditEvent.subject_id == subject_id, AuditEvent.actor == str(subject_id)))
    if action is not None:
        query = query.where(AuditEvent.action == action)
    total = await db_session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
    rows = await db_session.scalars(query.order_by(AuditEvent.occurred_at.desc()).limit(limit).offset(offset))
    return list(rows.all()), int(total)
