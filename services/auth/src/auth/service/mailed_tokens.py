"""Mailed tokens: e-mail verification, password reset and e-mail change, single use and stored hashed."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit, mails, passwords, sessions
from auth.audit import RequestContext
from auth.models import EmailToken, User
from auth.settings import AuthSettings
from auth.throttle import Limit, LoginThrottle, too_many
from common.cache import Cache
from common.db import utcnow
from common.errors import Conflict, InvalidInput
from common.mail import Mail

from .accounts import _reauthenticated, get_user
from .outcomes import (
    CHANGE_EMAIL,
    RESET_PASSWORD,
    VERIFY_EMAIL,
    Outcome,
    _digest,
    _lookup_email,
    _policy,
    normalise_email,
)


async def _issue_email_token(db_session: AsyncSession, user: User, purpose: str, email: str,
                             ttl: dt.timedelta) -> str:
    """A fresh single-use code; earlier unused codes of the same purpose stop working."""
    now = utcnow()
    await db_session.execute(sa.update(EmailToken).where(
        EmailToken.user_id == user.id, EmailToken.purpose == purpose, EmailToken.used_at.is_(None))
        .values(used_at=now))
    code = secrets.token_hex(24)  # hex: nothing that looks like a JWT or a query parameter in a log
    db_session.add(EmailToken(id=uuid.uuid4(), user_id=user.id, purpose=purpose, token_hash=_digest(code),
                              email=email, created_at=now, expires_at=now + ttl))
    await db_session.flush()
    return code


async def _consume_email_token(db_session: AsyncSession, purpose: str, code: str) -> tuple[EmailToken, User]:
    """Claim a code exactly once (a conditional UPDATE, so two concurrent uses cannot both win)."""
    now = utcnow()
    token = await db_session.scalar(sa.select(EmailToken).where(
        EmailToken.token_hash == _digest(code.strip()), EmailToken.purpose == purpose))
    invalid = InvalidInput("the code is invalid, expired or already used", code="invalid_code")
    if token is None or token.used_at is not None or token.expires_at <= now:
        raise invalid
    claimed = await db_session.execute(sa.update(EmailToken).where(
        EmailToken.id == token.id, EmailToken.used_at.is_(None)).values(used_at=now))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise invalid
    user = await db_session.scalar(sa.select(User).where(User.id == token.user_id).with_for_update())
    # Codes go to an address: once the account moved to another one they are void.
    if user is None or not user.is_active or (purpose != CHANGE_EMAIL and token.email != user.email):
        raise invalid
    return token, user


async def start_email_verification(*, db_session: AsyncSession, settings: AuthSettings, user: User) -> Mail:
    code = await _issue_email_token(db_session, user, VERIFY_EMAIL, user.email,
                                    dt.timedelta(hours=settings.email_verification_ttl_hours))
    return mails.verify_email(settings, user.email, user.full_name, code)


async def resend_verification(*, db_session: AsyncSession, cache: Cache, settings: AuthSettings,
                              user_id: uuid.UUID) -> Mail | None:
    user = await get_user(db_session=db_session, user_id=user_id)
    if user.email_verified:
        return None
    limit = Limit(cache, "verify-mail", settings.verification_mails_per_account_per_hour, 3600)
    wait = await limit.blocked(str(user.id))
    if wait:
        raise too_many(wait, "verification mails")
    await limit.hit(str(user.id))
    return await start_email_verification(db_session=db_session, settings=settings, user=user)


async def verify_email(*, db_session: AsyncSession, code: str, ctx: RequestContext) -> User:
    _token, user = await _consume_email_token(db_session, VERIFY_EMAIL, code)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
        user.updated_at = user.email_verified_at
    await audit.record(db_session, ctx, "email_verify", subject_id=user.id)
    return user


async def request_password_reset(*, db_session: AsyncSession, cache: Cache, settings: AuthSettings,
                                 email: str, ctx: RequestContext) -> Mail | None:
    """Always answered the same (202); a mail only for an active account and within the limits.

    Not gated by the login throttle: failing logins on purpose must not lock the owner out of
    recovering the account.
    """
    email = _lookup_email(email)
    per_ip = Limit(cache, "reset-ip", settings.password_reset_requests_per_ip_per_hour, 3600)
    per_account = Limit(cache, "reset-acct", settings.password_reset_requests_per_account_per_hour, 3600)
    if not await per_ip.allow(ctx.ip or "unknown"):
        return None
    user = await db_session.scalar(sa.select(User).where(User.email == email))
    if user is None or not user.is_active:
        await audit.record(db_session, ctx, "password_reset_request", outcome="ignored",
                           subject_id=user.id if user else None)
        return None
    if not await per_account.allow(str(user.id)):
        await audit.record(db_session, ctx, "password_reset_request", outcome="throttled", subject_id=user.id)
        return None
    code = await _issue_email_token(db_session, user, RESET_PASSWORD, user.email,
                                    dt.timedelta(minutes=settings.password_reset_ttl_minutes))
    await audit.record(db_session, ctx, "password_reset_request", subject_id=user.id)
    return mails.reset_password(settings, user.email, user.full_name, code)


async def reset_password(*, db_session: AsyncSession, cache: Cache, settings: AuthSettings, code: str,
                         new_password: str, ctx: RequestContext) -> User:
    """Set a new password from a mailed code; every session ends, the account's login lock lifts."""
    _token, user = await _consume_email_token(db_session, RESET_PASSWORD, code)
    _policy(new_password, user.email, settings)
    now = utcnow()
    user.password_hash = await passwords.hash_password(new_password)
    user.password_changed_at = user.updated_at = now
    if user.email_verified_at is None:  # the code reached this mailbox
        user.email_verified_at = now
    await sessions.revoke_all(db_session=db_session, user_id=user.id, reason="password_reset")
    await LoginThrottle(cache, settings).clear_account(user.email)
    await Limit(cache, "pwcheck", 0, 900).clear(str(user.id))
    await audit.record(db_session, ctx.acting_as(user.id), "password_reset", subject_id=user.id)
    return user


async def change_password(*, db_session: AsyncSession, settings: AuthSettings, user_id: uuid.UUID,
                          current_session: uuid.UUID | None, verified_hash: str, new_password_hash: str,
                          sign_out_other_sessions: bool, ctx: RequestContext) -> Outcome[User]:
    """After `confirm_password`; `new_password_hash` from `new_password_hash` (policy checked)."""
    user = await _reauthenticated(db_session, user_id, verified_hash)
    now = utcnow()
    user.password_hash = new_password_hash
    user.password_changed_at = user.updated_at = now
    ended = 0
    if sign_out_other_sessions:
        ended = await sessions.revoke_all(db_session=db_session, user_id=user.id, reason="password_change",
                                          keep=current_session)
    await audit.record(db_session, ctx, "password_change", subject_id=user.id, other_sessions_ended=ended)
    return Outcome(value=user, mails=[mails.password_changed_notice(user.email, user.full_name)])


async def request_email_change(*, db_session: AsyncSession, settings: AuthSettings, user_id: uuid.UUID,
                               new_email: str, verified_hash: str, ctx: RequestContext) -> Outcome[User]:
    """After `confirm_password`; the address changes only when the new mailbox confirms the code."""
    user = await _reauthenticated(db_session, user_id, verified_hash)
    new_email = normalise_email(new_email)
    if new_email == user.email:
        return Outcome(error=InvalidInput("this is already your email address", code="same_email"))
    if await db_session.scalar(sa.select(User.id).where(User.email == new_email)) is not None:
        return Outcome(error=Conflict("an account with this email already exists", code="email_taken"))
    code = await _issue_email_token(db_session, user, CHANGE_EMAIL, new_email,
                                    dt.timedelta(hours=settings.email_change_ttl_hours))
    await audit.record(db_session, ctx, "email_change_request", subject_id=user.id)
    return Outcome(value=user, mails=[
        mails.confirm_email_change(settings, new_email, user.full_name, code),
        mails.email_change_notice(user.email, user.full_name, new_email),
    ])


async def confirm_email_change(*, db_session: AsyncSession, code: str, ctx: RequestContext) -> User:
    token, user = await _consume_email_token(db_session, CHANGE_EMAIL, code)
    if await db_session.scalar(sa.select(User.id).where(User.email == token.email, User.id != user.id)):
        raise Conflict("an account with this email already exists", code="email_taken")
    now = utcnow()
    user.email = token.email
    user.email_verified_at = user.updated_at = now
    # Codes mailed to the old address (verification, reset) are void from now on: see _consume_email_token.
    await audit.record(db_session, ctx, "email_change", subject_id=user.id)
    return user
