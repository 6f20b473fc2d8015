"""Accounts: registration, sign-in, reading the account, re-authentication and profile changes."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit, keys, passwords, sessions
from auth.audit import RequestContext
from auth.models import LoginSession, User
from auth.settings import AuthSettings
from auth.throttle import Limit, LoginThrottle, too_many
from common.cache import Cache
from common.db import Database, utcnow
from common.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, Unauthorized
from common.events import add_event
from common.observability.metrics import count
from common.security import constant_time_equals
from contracts.events import UserRegistered

from .outcomes import _INVALID_CREDENTIALS, ROLES, Outcome, _digest, _lookup_email, _policy, normalise_email


async def new_password_hash(*, email: str, password: str, settings: AuthSettings | None = None) -> str:
    """Policy check and argon2 hash of a new account's password, for callers that hash before
    they open the transaction (a registration storm then holds no connection or write lock)."""
    _policy(password, normalise_email(email), settings)
    return await passwords.hash_password(password)


async def register(*, db_session: AsyncSession, email: str, password: str, full_name: str,
                   roles: list[str] | None = None, settings: AuthSettings | None = None,
                   ctx: RequestContext | None = None, email_verified: bool = False,
                   password_hash: str | None = None) -> User:
    """`password_hash`: from `new_password_hash` with this password (else hashed here)."""
    email = normalise_email(email)
    if password_hash is None:
        _policy(password, email, settings)
    if any(role not in ROLES for role in roles or []):
        raise InvalidInput("unknown role", code="invalid_role")
    if await db_session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise Conflict("an account with this email already exists", code="email_taken")
    now = utcnow()
    user = User(id=uuid.uuid4(), email=email, full_name=full_name.strip(),
                password_hash=password_hash or await passwords.hash_password(password), roles=roles or ["student"],
                is_active=True, created_at=now, updated_at=now, password_changed_at=now,
                email_verified_at=now if email_verified else None)
    db_session.add(user)
    await db_session.flush()
    await add_event(db_session, UserRegistered(
        user_id=user.id, email=user.email, full_name=user.full_name, roles=user.roles))
    await audit.record(db_session, ctx or RequestContext(), "register", subject_id=user.id)
    count("auth", "users_registered")
    return user


async def login(*, db: Database, cache: Cache, settings: AuthSettings, keyring: keys.KeyRing,
                email: str, password: str, ctx: RequestContext) -> Outcome[sessions.IssuedTokens]:
    """Password login with per-IP and per-account throttling. An unknown email, a wrong password
    and a disabled account get the same answer after the same argon2 work.

    The argon2 work runs between two short database steps, never inside a transaction: on SQLite
    a transaction holds the write lock, on PostgreSQL a pooled connection, and a login storm would
    otherwise queue every other request of the service behind the hashing threads. The write step
    re-reads the account under lock and only accepts the hash it verified, so a password changed
    meanwhile is not signed in with the old one.
    """
    email = _lookup_email(email)
    throttle = LoginThrottle(cache, settings)
    try:
        await throttle.check(ctx.ip or "unknown", email)
    except DomainError as exc:
        async with db.transaction() as session:
            await audit.record(session, ctx, "login", outcome="throttled", email_hash=_digest(email)[:16])
        count("auth", "logins_throttled")
        return Outcome(error=exc)
    async with db.session() as session:
        found = (await session.execute(sa.select(User.id, User.password_hash, User.is_active)
                                       .where(User.email == email))).first()
    verified_hash = found.password_hash if found else None
    valid = await passwords.verify_password(verified_hash, password)
    rehashed = (await passwords.hash_password(password)
                if found and valid and passwords.needs_rehash(found.password_hash) else None)
    async with db.transaction() as session:
        user = None
        if found is not None:
            user = await session.scalar(sa.select(User).where(User.id == found.id).with_for_update())
        current = user is not None and user.password_hash == verified_hash
        if user is None or not valid or not current or not user.is_active:
            await throttle.failed(ctx.ip or "unknown", email)
            reason = ("unknown_account" if user is None else "wrong_password" if not valid
                      else "password_changed" if not current else "disabled")
            await audit.record(session, ctx, "login", outcome="failure", subject_id=user.id if user else None,
                               reason=reason, **({} if user else {"email_hash": _digest(email)[:16]}))
            count("auth", "logins_failed")
            return Outcome(error=Unauthorized(_INVALID_CREDENTIALS, code="invalid_credentials"))
        if rehashed is not None:
            user.password_hash = rehashed
        user.last_login_at = utcnow()
        await throttle.succeeded(email)
        tokens = await sessions.start(db_session=session, settings=settings, keyring=keyring, user=user, ctx=ctx)
        await audit.record(session, ctx.acting_as(user.id), "login", subject_id=user.id,
                           session_id=str(tokens.session_id))
    count("auth", "logins_succeeded")
    return Outcome(value=tokens)


async def get_user(*, db_session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await db_session.get(User, user_id)
    if user is None or not user.is_active:
        raise NotFound("user not found")
    return user


async def current_account(*, db_session: AsyncSession, user_id: uuid.UUID,
                          session_id: uuid.UUID | None) -> User | None:
    """The caller of a user route: an active account and, for tokens naming a session (`sid`), a
    session that is still signed in, so logout and revocation also stop access tokens here."""
    if session_id is None:
        return await db_session.scalar(sa.select(User).where(User.id == user_id, User.is_active.is_(True)))
    row = (await db_session.execute(
        sa.select(User, LoginSession.revoked_at)
        .join(LoginSession, sa.and_(LoginSession.id == session_id, LoginSession.user_id == User.id))
        .where(User.id == user_id, User.is_active.is_(True)))).first()
    if row is None or row[1] is not None:
        return None
    user: User = row[0]
    return user


async def _user_for_update(db_session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await db_session.scalar(sa.select(User).where(User.id == user_id).with_for_update())
    if user is None or not user.is_active:
        raise NotFound("user not found")
    return user


async def confirm_password(*, db: Database, cache: Cache, settings: AuthSettings, user_id: uuid.UUID,
                           password: str, ctx: RequestContext, action: str) -> Outcome[str]:
    """Re-authentication for a sensitive change, before its transaction opens (argon2 holds no lock
    or connection, as in `login`). The value is the verified hash: the change then requires it
    unchanged under its row lock (`_reauthenticated`). Wrong guesses are limited per account and
    audited (in their own transaction, since the change does not happen)."""
    limit = Limit(cache, "pwcheck", settings.password_checks_per_account_per_15_minutes, 900)
    wait = await limit.blocked(str(user_id))
    if wait:
        return Outcome(error=too_many(wait, "wrong passwords"))
    async with db.session() as session:
        stored = await session.scalar(sa.select(User.password_hash).where(User.id == user_id,
                                                                           User.is_active.is_(True)))
    if stored is None:
        return Outcome(error=NotFound("user not found"))
    if await passwords.verify_password(stored, password):
        return Outcome(value=stored)
    await limit.hit(str(user_id))
    async with db.transaction() as session:
        await audit.record(session, ctx, action, outcome="failure", subject_id=user_id, reason="wrong_password")
    return Outcome(error=Forbidden("the password is incorrect", code="invalid_password"))


async def _reauthenticated(db_session: AsyncSession, user_id: uuid.UUID, verified_hash: str) -> User:
    """The account, locked, provided its password is still the one `confirm_password` verified."""
    user = await _user_for_update(db_session, user_id)
    if not constant_time_equals(user.password_hash, verified_hash):
        raise Conflict("the password changed meanwhile: confirm it again", code="password_changed")
    return user


async def update_profile(*, db_session: AsyncSession, user_id: uuid.UUID, changes: dict[str, Any],
                         ctx: RequestContext) -> User:
    """Only the allow-listed profile fields; the schema already refused anything else."""
    allowed = {"full_name"}
    user = await _user_for_update(db_session, user_id)
    applied = {}
    for name, value in changes.items():
        if name not in allowed:
            raise InvalidInput(f"{name} cannot be changed here", code="field_not_allowed")
        if value is None:
            continue
        setattr(user, name, value.strip() if isinstance(value, str) else value)
        applied[name] = True
    if applied:
        user.updated_at = utcnow()
        await audit.record(db_session, ctx, "profile_update", subject_id=user.id, fields=sorted(applied))
    return user
