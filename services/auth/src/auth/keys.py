"""Ed25519 signing keys: stored in auth's schema, published as JWKS, newest active key signs."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import SigningKey
from common.db import utcnow

ALGORITHM = "EdDSA"


@dataclass(frozen=True)
class ActiveKey:
    kid: str
    private_key: Ed25519PrivateKey


def new_signing_key() -> SigningKey:
    private = Ed25519PrivateKey.generate()
    kid = uuid.uuid4().hex[:16]
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public_jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(private.public_key()))
    public_jwk.update({"kid": kid, "alg": ALGORITHM, "use": "sig"})
    return SigningKey(kid=kid, private_pem=pem, public_jwk=public_jwk, created_at=utcnow())


async def ensure_signing_key(*, db_session: AsyncSession) -> None:
    """Create the first key on a fresh schema (embedded start-up, `migrate`, tests)."""
    existing = await db_session.scalar(sa.select(SigningKey.kid).where(SigningKey.retired_at.is_(None)))
    if existing is None:
        db_session.add(new_signing_key())


async def active_key(*, db_session: AsyncSession) -> ActiveKey:
    row = await db_session.scalar(
        sa.select(SigningKey).where(SigningKey.retired_at.is_(None)).order_by(SigningKey.created_at.desc())
    )
    if row is None:
        raise RuntimeError("no active signing key: run `python -m auth migrate`")
    private = serialization.load_pem_private_key(row.private_pem.encode(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return ActiveKey(kid=row.kid, private_key=private)


async def jwks(*, db_session: AsyncSession) -> dict[str, list[dict[str, Any]]]:
    rows = await db_session.scalars(sa.select(SigningKey).where(SigningKey.retired_at.is_(None)))
    return {"keys": [row.public_jwk for row in rows]}


def sign(key: ActiveKey, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


def token_times(ttl_seconds: int) -> tuple[int, int]:
    now = dt.datetime.now(dt.UTC)
    return int(now.timestamp()), int((now + dt.timedelta(seconds=ttl_seconds)).timestamp())
