"""Auth use cases: accounts, credentials, mailed tokens, profile, erasure, service clients.

Use cases that must leave an audit entry even when they refuse (a wrong password) return an
`Outcome` instead of raising, so the route commits the entry and then answers with the error.
Mails are returned to the route, which sends them after the response (no timing signal, no SMTP
latency in the request).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit, keys, mails, passwords, sessions
from auth.audit import RequestContext
from auth.models import EmailToken, LoginSession, ServiceClient, User
from auth.settings import AuthSettings
from auth.throttle import Limit, LoginThrottle, too_many
from common.cache import Cache
from common.db import Database, utcnow
from common.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, Unauthorized
from common.events import add_event
from common.events.tables import outbox
from common.mail import Mail
from common.observability.metrics import count
from common.security import constant_time_equals
from contracts.events import UserDeleted, UserRegistered

ROLES = ("student", "instructor", "admin")
SERVICE_AUDIENCES = ("auth", "catalog", "billing", "playback")

VERIFY_EMAIL, RESET_PASSWORD, CHANGE_EMAIL = "verify_email", "reset_password", "change_email"

T = TypeVar("T")


@dataclass
class Outcome(Generic[T]):
    """A result or a refusal, plus the mails to send once the transaction committed."""

    value: T | None = None
    error: DomainError | None = None
    mails: list[Mail] = field(default_factory=list)

    def unwrap(self) -> T:
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


_INVALID_CREDENTIALS = "email or password is incorrect"


def normalise_email(email: str) -> str:
    """Lower-cased, trimmed; the domain in its IDNA-normalised form (email-validator)."""
    email = email.strip()
    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput("this is not a valid email address", code="invalid_email") from exc
    return email.lower()


def _lookup_email(email: str) -> str:
    """For look-ups only (login, reset): never raises, never reveals anything."""
    try:
        return normalise_email(email)
    except InvalidInput:
        return email.strip().lower()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _policy(password: str, email: str | None, settings: AuthSettings | None) -> None:
    if settings is None:
        passwords.check_policy(password, email=email)
    else:
        passwords.check_policy(password, email=email, min_length=settings.password_min_length,
                               max_length=settings.password_max_length)


# --- accounts ------------------------------------------------------------------------------------


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


# --- mailed tokens -------------------------------------------------------------------------------


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


# --- erasure and export --------------------------------------------------------------------------


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


# --- admin bootstrap and service clients ---------------------------------------------------------


async def create_admin(*, db_session: AsyncSession, email: str, password: str, full_name: str,
                       settings: AuthSettings | None = None, ctx: RequestContext = audit.CLI) -> User:
    """First admin (CLI, any mode); promotes an existing account instead of failing."""
    existing = await db_session.scalar(sa.select(User).where(User.email == normalise_email(email)))
    if existing is not None:
        before = list(existing.roles)
        existing.roles = sorted(set(existing.roles) | {"admin"})
        existing.updated_at = utcnow()
        await audit.record(db_session, ctx, "role_change", subject_id=existing.id, before=before,
                           after=existing.roles)
        return existing
    user = await register(db_session=db_session, email=email, password=password, full_name=full_name,
                          roles=["admin"], settings=settings, ctx=ctx, email_verified=True)
    await audit.record(db_session, ctx, "role_change", subject_id=user.id, before=[], after=["admin"])
    return user


async def internal_user(*, db_session: AsyncSession, user_id: uuid.UUID) -> User:
    """For other services (receipts): disabled accounts too; erased ones are gone (404)."""
    user = await db_session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


async def ensure_service_clients(*, db_session: AsyncSession, secrets_by_client: dict[str, str]) -> None:
    """Make the configured client secrets the stored ones (idempotent; secrets stored hashed)."""
    for client_id, secret in secrets_by_client.items():
        row = await db_session.get(ServiceClient, client_id)
        if row is None:
            db_session.add(ServiceClient(client_id=client_id, secret_hash=_digest(secret),
                                         created_at=utcnow()))
        elif not constant_time_equals(row.secret_hash, _digest(secret)):
            row.secret_hash = _digest(secret)


async def issue_service_token(*, db_session: AsyncSession, settings: AuthSettings, keyring: keys.KeyRing,
                              client_id: str, client_secret: str, audience: str) -> tuple[str, int]:
    """Client credentials: a token for `client_id` whose audience is the one target service."""
    if audience not in SERVICE_AUDIENCES:
        raise InvalidInput("unknown audience", code="invalid_target")
    row = await db_session.get(ServiceClient, client_id)
    expected = row.secret_hash if row is not None else _digest(secrets.token_hex(16))
    if not constant_time_equals(expected, _digest(client_secret)) or row is None:
        raise Unauthorized("invalid client credentials", code="invalid_client")
    if audience == client_id:
        raise Forbidden("a service does not need a token for itself")
    key = await keyring.signing_key(db_session=db_session)
    ttl = settings.service_token_ttl_seconds
    iat, exp = keys.token_times(ttl)
    token = keys.sign(key, {
        "iss": settings.jwt_issuer, "aud": audience, "sub": f"service:{client_id}", "iat": iat,
        "nbf": iat, "exp": exp, "jti": uuid.uuid4().hex, "roles": ["service"]})
    count("auth", "service_tokens_issued")
    return token, ttl
