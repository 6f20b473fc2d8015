"""Erasure and export of a user's data held by auth."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit, sessions
from auth.audit import RequestContext
from auth.models import User
from common.db import utcnow
from common.events import add_event
from common.events.tables import outbox
from common.observability.metrics import count
from contracts.events import UserDeleted

from .accounts import _reauthenticated, get_user


async def erase(*, db_session: AsyncSession, user_id: uuid.UUID, verified_hash: str,
                ctx: RequestContext) -> uuid.UUID:
    """Delete the account and everything hanging on it (sessions, tokens cascade) and the personal
    data in auth's own outbox; other services learn it from `auth.user.deleted` and remove or
    anonymise their own data. The audit log (append-only) keeps its rows: ids, addresses, agents."""
    user = await _reauthenticated(db_session, user_id, verified_hash)
    now = utcnow()
    await db_session.execute(sa.delete(User).where(User.id == user.id))
    await _forget_events(db_session, user.id)
    await add_event(db_session, UserDeleted(user_id=user.id, deleted_at=now))
    await audit.record(db_session, ctx, "erasure", subject_id=user.id)
    count("auth", "users_erased")
    return user.id


# Auth's own events whose payload names the person (contracts.md), with the fields that do.
PERSONAL_EVENT_FIELDS: dict[str, tuple[str, ...]] = {"auth.user.registered.v1": ("email", "full_name")}


async def _forget_events(db_session: AsyncSession, user_id: uuid.UUID) -> None:
    """Erasure reaches auth's outbox too: rows still waiting keep their place and id but lose the
    personal fields (the relay still delivers them, in order, before `auth.user.deleted`); rows
    already published are history the consumers have, and are deleted.

    Scrub first, delete second: a row the relay is publishing right now (PostgreSQL: locked until
    its `published_at` commits) makes the scrub wait and then miss it, and the delete, a new
    statement with a new snapshot, sees it published and removes it.
    """
    for routing_key, fields in PERSONAL_EVENT_FIELDS.items():
        mine = sa.and_(outbox.c.routing_key == routing_key,
                       outbox.c.envelope["payload"]["user_id"].as_string() == str(user_id))
        waiting = (await db_session.execute(sa.select(outbox.c.id, outbox.c.envelope)
                                            .where(mine, outbox.c.published_at.is_(None)))).all()
        for row in waiting:
            envelope = dict(row.envelope)
            envelope["payload"] = {**envelope["payload"], **dict.fromkeys(fields)}
            # Only the envelope: published_at, attempts and dead_at are the relay's.
            await db_session.execute(sa.update(outbox).where(outbox.c.id == row.id, outbox.c.published_at.is_(None))
                                     .values(envelope=envelope))
        await db_session.execute(sa.delete(outbox).where(mine, outbox.c.published_at.is_not(None)))


async def export(*, db_session: AsyncSession, user_id: uuid.UUID, ctx: RequestContext) -> dict[str, Any]:
    """Everything auth holds about the caller (GDPR art. 15/20), minus secrets and hashes."""
    user = await get_user(db_session=db_session, user_id=user_id)
    own_sessions = await sessions.all_sessions(db_session=db_session, user_id=user.id)
    entries, _total = await audit.entries(db_session, subject_id=user.id, limit=1000)
    await audit.record(db_session, ctx, "export", subject_id=user.id)
    return {
        "exported_at": utcnow().isoformat(),
        "account": {
            "id": str(user.id), "email": user.email, "full_name": user.full_name, "roles": user.roles,
            "is_active": user.is_active, "created_at": _iso(user.created_at),
            "updated_at": _iso(user.updated_at), "email_verified_at": _iso(user.email_verified_at),
            "password_changed_at": _iso(user.password_changed_at), "last_login_at": _iso(user.last_login_at),
        },
        "sessions": [{
            "id": str(s.id), "created_at": _iso(s.created_at), "last_used_at": _iso(s.last_used_at),
            "expires_at": _iso(s.expires_at), "revoked_at": _iso(s.revoked_at),
            "revoke_reason": s.revoke_reason, "ip": s.ip, "user_agent": s.user_agent,
        } for s in own_sessions],
        "activity": [{
            "occurred_at": _iso(e.occurred_at), "action": e.action, "outcome": e.outcome, "actor": e.actor,
            "ip": e.ip, "user_agent": e.user_agent,
        } for e in entries],
    }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None
