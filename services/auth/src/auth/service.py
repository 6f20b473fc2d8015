"""Auth use cases: accounts, credentials, token pairs, refresh rotation, service clients."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from auth import keys
from auth.models import RefreshToken, ServiceClient, User
from auth.passwords import hash_password, needs_rehash, verify_password
from auth.settings import AuthSettings
from common.cache import Cache
from common.db import utcnow
from common.errors import Conflict, Forbidden, InvalidInput, NotFound, TooManyRequests, Unauthorized
from common.events import add_event
from common.observability.metrics import count

ROLES = ("student", "instructor", "admin")
SERVICE_AUDIENCES = ("auth", "catalog", "billing", "playback")


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def register(*, db_session: AsyncSession, email: str, password: str, full_name: str,
                   roles: list[str] | None = None) -> User:
    email = normalise_email(email)
    if await db_session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise Conflict("an account with this email already exists", code="email_taken")
    user = User(id=uuid.uuid4(), email=email, full_name=full_name.strip(),
                password_hash=await hash_password(password), roles=roles or ["student"],
                is_active=True, created_at=utcnow())
    db_session.add(user)
    await db_session.flush()
    await add_event(db_session, "auth.user.registered", {
        "user_id": str(user.id), "email": user.email, "full_name": user.full_name, "roles": user.roles})
    count("auth", "users_registered")
    return user


async def authenticate(*, db_session: AsyncSession, cache: Cache, settings: AuthSettings,
                       email: str, password: str, client_ip: str) -> User:
    """Checks the password with per-IP and per-account throttling; never says which part failed."""
    email = normalise_email(email)
    ip_key = f"auth:login-fail:ip:{client_ip}"
    account_key = f"auth:login-fail:acct:{hashlib.sha256(email.encode()).hexdigest()[:32]}"
    for key, limit, window in ((ip_key, settings.login_failures_per_ip_per_minute, 60),
                               (account_key, settings.login_failures_per_account_per_15_minutes, 900)):
        current = await cache.get(key)
        if current is not None and int(current) >= limit:
            raise TooManyRequests("too many failed logins; try again later", code="login_throttled",
                                  headers={"Retry-After": str(window)})
    user = await db_session.scalar(sa.select(User).where(User.email == email))
    valid = await verify_password(user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        await cache.hit(ip_key, 60)
        await cache.hit(account_key, 900)
        count("auth", "logins_failed")
        raise Unauthorized("email or password is incorrect", code="invalid_credentials")
    if needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)
    await cache.delete(account_key)
    count("auth", "logins_succeeded")
    return user


async def issue_tokens(*, db_session: AsyncSession, settings: AuthSettings, user: User,
                       family_id: uuid.UUID | None = None) -> IssuedTokens:
    refresh = secrets.token_urlsafe(32)
    now = utcnow()
    db_session.add(RefreshToken(
        id=uuid.uuid4(), family_id=family_id or uuid.uuid4(), user_id=user.id,
        token_hash=_digest(refresh), created_at=now,
        expires_at=now + dt.timedelta(days=settings.refresh_token_ttl_days)))
    key = await keys.active_key(db_session=db_session)
    iat, exp = keys.token_times(settings.access_token_ttl_seconds)
    access = keys.sign(key, {
        "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": str(user.id),
        "iat": iat, "nbf": iat, "exp": exp, "jti": uuid.uuid4().hex, "roles": user.roles})
    count("auth", "access_tokens_issued")
    return IssuedTokens(access, refresh, settings.access_token_ttl_seconds)


async def rotate_refresh_token(*, db_session: AsyncSession, settings: AuthSettings,
                               refresh_token: str) -> IssuedTokens | None:
    """Single use: a second use of the same token revokes its whole family and returns None.

    Returning (not raising) lets the caller commit the revocation before answering 401.
    """
    row = await db_session.scalar(sa.select(RefreshToken).where(
        RefreshToken.token_hash == _digest(refresh_token)))
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    claimed = await db_session.execute(
        sa.update(RefreshToken).where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
        .values(used_at=now))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        await db_session.execute(
            sa.update(RefreshToken).where(RefreshToken.family_id == row.family_id,
                                          RefreshToken.revoked_at.is_(None)).values(revoked_at=now))
        count("auth", "refresh_token_reuse_detected")
        return None
    user = await db_session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    return await issue_tokens(db_session=db_session, settings=settings, user=user,
                              family_id=row.family_id)


async def revoke_refresh_family(*, db_session: AsyncSession, refresh_token: str) -> None:
    row = await db_session.scalar(sa.select(RefreshToken).where(
        RefreshToken.token_hash == _digest(refresh_token)))
    if row is not None:
        await db_session.execute(
            sa.update(RefreshToken).where(RefreshToken.family_id == row.family_id,
                                          RefreshToken.revoked_at.is_(None)).values(revoked_at=utcnow()))


async def get_user(*, db_session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await db_session.get(User, user_id)
    if user is None or not user.is_active:
        raise NotFound("user not found")
    return user


async def ensure_service_clients(*, db_session: AsyncSession, secrets_by_client: dict[str, str]) -> None:
    """Make the configured client secrets the stored ones (idempotent; secrets stored hashed)."""
    for client_id, secret in secrets_by_client.items():
        row = await db_session.get(ServiceClient, client_id)
        if row is None:
            db_session.add(ServiceClient(client_id=client_id, secret_hash=_digest(secret),
                                         created_at=utcnow()))
        elif not hmac.compare_digest(row.secret_hash, _digest(secret)):
            row.secret_hash = _digest(secret)


async def issue_service_token(*, db_session: AsyncSession, settings: AuthSettings, client_id: str,
                              client_secret: str, audience: str) -> tuple[str, int]:
    """Client credentials: a token for `client_id` whose audience is the one target service."""
    if audience not in SERVICE_AUDIENCES:
        raise InvalidInput("unknown audience", code="invalid_target")
    row = await db_session.get(ServiceClient, client_id)
    if row is None or not hmac.compare_digest(row.secret_hash, _digest(client_secret)):
        raise Unauthorized("invalid client credentials", code="invalid_client")
    if audience == client_id:
        raise Forbidden("a service does not need a token for itself")
    key = await keys.active_key(db_session=db_session)
    ttl = settings.service_token_ttl_seconds
    iat, exp = keys.token_times(ttl)
    token = keys.sign(key, {
        "iss": settings.jwt_issuer, "aud": audience, "sub": f"service:{client_id}", "iat": iat,
        "nbf": iat, "exp": exp, "jti": uuid.uuid4().hex, "roles": ["service"]})
    count("auth", "service_tokens_issued")
    return token, ttl


async def create_admin(*, db_session: AsyncSession, email: str, password: str, full_name: str) -> User:
    """First admin (CLI); promotes an existing account instead of failing."""
    existing = await db_session.scalar(sa.select(User).where(User.email == normalise_email(email)))
    if existing is not None:
        existing.roles = sorted(set(existing.roles) | {"admin"})
        return existing
    return await register(db_session=db_session, email=email, password=password, full_name=full_name,
                          roles=["admin"])
