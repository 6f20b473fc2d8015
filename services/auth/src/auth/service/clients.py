"""The first admin and the service clients other services authenticate as."""

from __future__ import annotations

import secrets
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit, keys
from auth.audit import RequestContext
from auth.models import ServiceClient, User
from auth.settings import AuthSettings
from common.db import utcnow
from common.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from common.observability.metrics import count
from common.security import constant_time_equals

from .accounts import register
from .outcomes import SERVICE_AUDIENCES, _digest, normalise_email


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
