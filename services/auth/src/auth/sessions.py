"""Sessions: access tokens, refresh-token families, rotation with reuse detection, revocation.

A session is one sign-in on one device. Its refresh tokens are opaque, stored hashed and single
use: each refresh marks the presented token used and issues the next one in the same family. A
used token presented again within `refresh_reuse_grace_seconds` is a concurrent refresh (refused,
the session lives); later it can only be a replay, and the whole family is revoked. A session
ends at its absolute expiry, after `refresh_token_idle_hours` without a refresh, or on revocation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit, keys
from auth.audit import RequestContext
from auth.models import LoginSession, RefreshToken, User
from auth.settings import AuthSettings
from common.db import utcnow
from common.events import add_event
from common.observability.metrics import count
from contracts.events import UserSessionsRevoked


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: uuid.UUID
    refresh_expires_at: dt.datetime


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def access_claims(settings: AuthSettings, user: User, session_id: uuid.UUID) -> dict[str, object]:
    iat, exp = keys.token_times(settings.access_token_ttl_seconds)
    return {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": str(user.id), "iat": iat,
            "nbf": iat, "exp": exp, "jti": uuid.uuid4().hex, "roles": list(user.roles),
            "sid": str(session_id)}


async def _issue(db_session: AsyncSession, settings: AuthSettings, keyring: keys.KeyRing, user: User,
                 login_session: LoginSession) -> IssuedTokens:
    now = utcnow()
    refresh = secrets.token_urlsafe(32)
    expires_at = min(now + dt.timedelta(hours=settings.refresh_token_idle_hours), login_session.expires_at)
    db_session.add(RefreshToken(id=uuid.uuid4(), family_id=login_session.id, user_id=user.id,
                                token_hash=digest(refresh), created_at=now, expires_at=expires_at))
    key = await keyring.signing_key(db_session=db_session)
    access = keys.sign(key, access_claims(settings, user, login_session.id))
    count("auth", "access_tokens_issued")
    return IssuedTokens(access, refresh, settings.access_token_ttl_seconds, login_session.id, expires_at)


async def start(*, db_session: AsyncSession, settings: AuthSettings, keyring: keys.KeyRing, user: User,
                ctx: RequestContext) -> IssuedTokens:
    """A new session (login): a new family and its first refresh token."""
    now = utcnow()
    login_session = LoginSession(
        id=uuid.uuid4(), user_id=user.id, created_at=now, last_used_at=now,
        expires_at=now + dt.timedelta(days=settings.refresh_token_ttl_days),
        ip=ctx.ip, user_agent=(ctx.user_agent or "")[:200] or None)
    db_session.add(login_session)
    await db_session.flush()
    return await _issue(db_session, settings, keyring, user, login_session)


async def rotate(*, db_session: AsyncSession, settings: AuthSettings, keyring: keys.KeyRing,
                 refresh_token: str, ctx: RequestContext) -> IssuedTokens | None:
    """Exchange a refresh token for a new pair; None when it is not (or no longer) valid.

    Returning (not raising) lets the caller commit a revocation before answering 401.
    """
    row = (await db_session.execute(
        sa.select(RefreshToken, LoginSession).join(LoginSession, LoginSession.id == RefreshToken.family_id)
        .where(RefreshToken.token_hash == digest(refresh_token)))).first()
    if row is None:
        return None
    token, login_session = row[0], row[1]
    now = utcnow()
    if login_session.revoked_at is not None or login_session.expires_at <= now:
        return None
    if token.used_at is not None:
        if now - token.used_at > dt.timedelta(seconds=settings.refresh_reuse_grace_seconds):
            await _reuse_detected(db_session, login_session, ctx, now)
        return None
    if token.expires_at <= now:  # idle too long
        return None
    # Claim the token: of concurrent refreshes exactly one updates the row, the others see 0 rows
    # (PostgreSQL re-checks `used_at IS NULL` after the winner commits).
    claimed = await db_session.execute(
        sa.update(RefreshToken).where(RefreshToken.id == token.id, RefreshToken.used_at.is_(None))
        .values(used_at=now))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    user = await db_session.get(User, token.user_id)
    if user is None or not user.is_active:
        return None
    await db_session.execute(sa.update(LoginSession).where(LoginSession.id == login_session.id)
                             .values(last_used_at=now))
    return await _issue(db_session, settings, keyring, user, login_session)


async def _reuse_detected(db_session: AsyncSession, login_session: LoginSession, ctx: RequestContext,
                          now: dt.datetime) -> None:
    await db_session.execute(
        sa.update(LoginSession).where(LoginSession.id == login_session.id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=now, revoke_reason="refresh_token_reuse"))
    await audit.record(db_session, ctx, "refresh_token_reuse", outcome="revoked",
                       subject_id=login_session.user_id, session_id=str(login_session.id))
    count("auth", "refresh_token_reuse_detected")


async def session_of(*, db_session: AsyncSession, refresh_token: str) -> LoginSession | None:
    return await db_session.scalar(
        sa.select(LoginSession).join(RefreshToken, RefreshToken.family_id == LoginSession.id)
        .where(RefreshToken.token_hash == digest(refresh_token)))


async def revoke(*, db_session: AsyncSession, login_session: LoginSession, reason: str) -> bool:
    result = await db_session.execute(
        sa.update(LoginSession).where(LoginSession.id == login_session.id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoke_reason=reason))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def revoke_all(*, db_session: AsyncSession, user_id: uuid.UUID, reason: str,
                     keep: uuid.UUID | None = None, emit: bool = True) -> int:
    """End every live session of a user (but `keep`); emits `auth.user.sessions_revoked` so other
    services end what hangs on them (playback streams)."""
    now = utcnow()
    query = sa.update(LoginSession).where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None))
    if keep is not None:
        query = query.where(LoginSession.id != keep)
    result = await db_session.execute(query.values(revoked_at=now, revoke_reason=reason))
    if emit:
        await add_event(db_session, UserSessionsRevoked(user_id=user_id, revoked_at=now))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def live_sessions(*, db_session: AsyncSession, user_id: uuid.UUID) -> list[LoginSession]:
    now = utcnow()
    idle_alive = sa.exists().where(RefreshToken.family_id == LoginSession.id, RefreshToken.used_at.is_(None),
                                   RefreshToken.expires_at > now)
    rows = await db_session.scalars(
        sa.select(LoginSession).where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None),
                                      LoginSession.expires_at > now, idle_alive)
        .order_by(LoginSession.last_used_at.desc()))
    return list(rows.all())


async def all_sessions(*, db_session: AsyncSession, user_id: uuid.UUID) -> list[LoginSession]:
    rows = await db_session.scalars(sa.select(LoginSession).where(LoginSession.user_id == user_id)
                                    .order_by(LoginSession.created_at.desc()))
    return list(rows.all())


async def own_session(*, db_session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID) -> LoginSession | None:
    """A session of this user; someone else's is indistinguishable from none."""
    return await db_session.scalar(sa.select(LoginSession).where(LoginSession.id == session_id,
                                                                 LoginSession.user_id == user_id))
