"""Admin use cases: find users, change roles, disable and enable accounts."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit, sessions
from auth.audit import RequestContext
from auth.models import User
from auth.service import ROLES
from common.db import utcnow
from common.errors import Conflict, InvalidInput, NotFound
from common.events import add_event
from contracts.events import UserDisabled


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


async def list_users(*, db_session: AsyncSession, q: str | None, role: str | None, active: bool | None,
                     page: int, page_size: int) -> tuple[list[User], int]:
    query = sa.select(User)
    if q:
        pattern = _like(q.strip())
        query = query.where(sa.or_(sa.func.lower(User.email).like(pattern, escape="\\"),
                                   sa.func.lower(User.full_name).like(pattern, escape="\\")))
    if role:
        if role not in ROLES:
            raise InvalidInput("unknown role", code="invalid_role")
        # Role names are fixed words, so a text match on the JSON array is exact on both backends.
        query = query.where(sa.cast(User.roles, sa.Text).like(f'%"{role}"%'))
    if active is not None:
        query = query.where(User.is_active.is_(active))
    total = await db_session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
    rows = await db_session.scalars(query.order_by(User.created_at.desc(), User.id)
                                    .limit(page_size).offset((page - 1) * page_size))
    return list(rows.all()), int(total)


async def get_user(*, db_session: AsyncSession, user_id: uuid.UUID, for_update: bool = False) -> User:
    query = sa.select(User).where(User.id == user_id)
    user = await db_session.scalar(query.with_for_update() if for_update else query)
    if user is None:
        raise NotFound("user not found")
    return user


async def set_roles(*, db_session: AsyncSession, user_id: uuid.UUID, roles: list[str],
                    ctx: RequestContext) -> User:
    """Replace a user's roles. New roles reach the user's tokens at their next refresh (at most one
    access-token lifetime). An admin cannot remove their own admin role (no lock-out)."""
    wanted = sorted(set(roles))
    if not wanted or any(role not in ROLES for role in wanted):
        raise InvalidInput(f"roles must be a non-empty subset of {', '.join(ROLES)}", code="invalid_role")
    user = await get_user(db_session=db_session, user_id=user_id, for_update=True)
    if ctx.actor == str(user.id) and "admin" not in wanted:
        raise Conflict("you cannot remove your own admin role", code="self_demotion")
    before = sorted(user.roles)
    if before != wanted:
        user.roles = wanted
        user.updated_at = utcnow()
        await audit.record(db_session, ctx, "role_change", subject_id=user.id, before=before, after=wanted)
    return user


async def disable(*, db_session: AsyncSession, user_id: uuid.UUID, ctx: RequestContext) -> User:
    """Sign-in refused, every session ended; other services end theirs on `auth.user.disabled`."""
    user = await get_user(db_session=db_session, user_id=user_id, for_update=True)
    if ctx.actor == str(user.id):
        raise Conflict("you cannot disable your own account", code="self_disable")
    if not user.is_active:
        return user
    now = utcnow()
    user.is_active = False
    user.disabled_at = user.updated_at = now
    await sessions.revoke_all(db_session=db_session, user_id=user.id, reason="account_disabled", emit=False)
    await add_event(db_session, UserDisabled(user_id=user.id, disabled_at=now))
    await audit.record(db_session, ctx, "user_disable", subject_id=user.id)
    return user


async def enable(*, db_session: AsyncSession, user_id: uuid.UUID, ctx: RequestContext) -> User:
    user = await get_user(db_session=db_session, user_id=user_id, for_update=True)
    if user.is_active:
        return user
    user.is_active = True
    user.disabled_at = None
    user.updated_at = utcnow()
    await audit.record(db_session, ctx, "user_enable", subject_id=user.id)
    return user
