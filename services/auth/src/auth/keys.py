"""Ed25519 signing keys: several published in JWKS at once, rotated without a verification gap.

Life of a key: created (published in JWKS at once) -> signs from `activates_at` (after every
verifier's JWKS cache has seen it) -> superseded by the next key: `retire_after` = the moment the
next key activates + the longest token lifetime + clock skew -> gone from JWKS after that, and
`keys prune` wipes its private half. Verifiers (common.security.JWKSVerifier) pick the key by
`kid` and refetch at most once per cooldown on an unknown one.

Private keys are encrypted at rest with AES-256-GCM (the kid is the associated data, so a
ciphertext cannot be moved to another key row) under a key-encryption key from the settings.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from jwt.algorithms import OKPAlgorithm
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import SigningKey
from auth.settings import AuthSettings
from common.db import utcnow

log = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
# RFC 9068 / RFC 8725 §3.11: explicit typing of access tokens.
ACCESS_TOKEN_TYPE = "at+jwt"
CLOCK_SKEW = dt.timedelta(seconds=60)
_ENCRYPTED_PREFIX = "aesgcm"


class SigningKeyError(RuntimeError):
    """A key that cannot be used: no active key, or a key-encryption key is missing."""


# --- encryption at rest --------------------------------------------------------------------------


class KeyEncryption:
    """AES-256-GCM with the first configured key-encryption key; every configured key decrypts."""

    def __init__(self, keks: list[bytes]) -> None:
        self._keks = {self.kek_id(k): AESGCM(k) for k in keks}
        self._current = self.kek_id(keks[0]) if keks else None

    @staticmethod
    def kek_id(kek: bytes) -> str:
        return hashlib.sha256(kek).hexdigest()[:12]

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> KeyEncryption:
        raw = settings.signing_key_encryption_keys
        keks = []
        for item in (raw.get_secret_value().split(",") if raw else []):
            if not item.strip():
                continue
            try:
                kek = base64.urlsafe_b64decode(item.strip() + "=" * (-len(item.strip()) % 4))
            except (binascii.Error, ValueError) as exc:
                raise ValueError("signing_key_encryption_keys: not base64url") from exc
            if len(kek) != 32:
                raise ValueError("signing_key_encryption_keys: each key must be 32 bytes (base64url)")
            keks.append(kek)
        return cls(keks)

    @property
    def enabled(self) -> bool:
        return self._current is not None

    def seal(self, kid: str, pem: bytes) -> str:
        if self._current is None:
            return pem.decode()
        nonce = os.urandom(12)
        ciphertext = self._keks[self._current].encrypt(nonce, pem, kid.encode())
        return f"{_ENCRYPTED_PREFIX}:{self._current}:{base64.urlsafe_b64encode(nonce + ciphertext).decode()}"

    def open(self, kid: str, stored: str) -> bytes:
        if not stored.startswith(f"{_ENCRYPTED_PREFIX}:"):
            return stored.encode()
        _, kek_id, blob = stored.split(":", 2)
        aead = self._keks.get(kek_id)
        if aead is None:
            raise SigningKeyError(f"signing key {kid} is encrypted with key-encryption key {kek_id}, which is "
                            "not configured (AUTH_SIGNING_KEY_ENCRYPTION_KEYS)")
        data = base64.urlsafe_b64decode(blob)
        return aead.decrypt(data[:12], data[12:], kid.encode())

    def is_current(self, stored: str) -> bool:
        if self._current is None:
            return not stored.startswith(f"{_ENCRYPTED_PREFIX}:")
        return stored.startswith(f"{_ENCRYPTED_PREFIX}:{self._current}:")


def generate_kek() -> str:
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode().rstrip("=")


# --- keys ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveKey:
    kid: str
    private_key: Ed25519PrivateKey


def new_signing_key(encryption: KeyEncryption, *, activates_at: dt.datetime | None = None) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    kid = uuid.uuid4().hex[:16]
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public_jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(private.public_key()))
    public_jwk.update({"kid": kid, "alg": ALGORITHM, "use": "sig"})
    now = utcnow()
    return SigningKey(kid=kid, private_key=encryption.seal(kid, pem), public_jwk=public_jwk, created_at=now,
                      activates_at=activates_at or now, retire_after=None, retired_at=None)


def _published(now: dt.datetime) -> Any:
    return sa.and_(SigningKey.retired_at.is_(None),
                   sa.or_(SigningKey.retire_after.is_(None), SigningKey.retire_after > now))


async def ensure_signing_key(*, db_session: AsyncSession, settings: AuthSettings) -> None:
    """Create the first key on a fresh schema (embedded start-up, `migrate`, tests)."""
    now = utcnow()
    existing = await db_session.scalar(sa.select(SigningKey.kid).where(
        _published(now), SigningKey.activates_at <= now).limit(1))
    if existing is None:
        db_session.add(new_signing_key(KeyEncryption.from_settings(settings)))
        await db_session.flush()


async def rotate(*, db_session: AsyncSession, settings: AuthSettings,
                 activate_in: dt.timedelta | None = None) -> SigningKey:
    """Add the next key; it signs after `activate_in` (default: settings). The keys signing now
    are retired once their last token (access or service) has expired."""
    now = utcnow()
    delay = activate_in if activate_in is not None else dt.timedelta(seconds=settings.key_activation_delay_seconds)
    pending = await db_session.scalar(sa.select(SigningKey.kid).where(
        _published(now), SigningKey.activates_at > now).limit(1))
    if pending is not None:
        raise SigningKeyError(f"key {pending} is already waiting to activate; rotate again after it does")
    new = new_signing_key(KeyEncryption.from_settings(settings), activates_at=now + delay)
    longest = dt.timedelta(seconds=max(settings.access_token_ttl_seconds, settings.service_token_ttl_seconds))
    await db_session.execute(
        sa.update(SigningKey).where(_published(now), SigningKey.retire_after.is_(None))
        .values(retire_after=new.activates_at + longest + CLOCK_SKEW))
    db_session.add(new)
    await db_session.flush()
    log.info("signing key rotated", extra={"kid": new.kid, "activates_at": new.activates_at.isoformat()})
    return new


async def revoke(*, db_session: AsyncSession, settings: AuthSettings, kid: str) -> None:
    """Emergency (a leaked key): unpublish now; its tokens stop verifying once verifiers refetch.
    A fresh key takes over at once if the revoked one was signing."""
    now = utcnow()
    row = await db_session.get(SigningKey, kid)
    if row is None:
        raise SigningKeyError(f"no key {kid}")
    row.retired_at = now
    row.private_key = ""
    await db_session.flush()
    await ensure_signing_key(db_session=db_session, settings=settings)


async def prune(*, db_session: AsyncSession) -> list[str]:
    """Mark keys past their retirement time retired and wipe their private half."""
    now = utcnow()
    rows = (await db_session.scalars(sa.select(SigningKey).where(
        SigningKey.retired_at.is_(None), SigningKey.retire_after <= now))).all()
    for row in rows:
        row.retired_at = now
        row.private_key = ""
    return [row.kid for row in rows]


async def rewrap(*, db_session: AsyncSession, settings: AuthSettings) -> int:
    """Re-encrypt every stored private key under the current key-encryption key (after adding a
    new KEK first in the list, or to encrypt keys stored before a KEK was configured)."""
    encryption = KeyEncryption.from_settings(settings)
    changed = 0
    for row in (await db_session.scalars(sa.select(SigningKey).where(SigningKey.private_key != ""))).all():
        if not encryption.is_current(row.private_key):
            row.private_key = encryption.seal(row.kid, encryption.open(row.kid, row.private_key))
            changed += 1
    return changed


async def list_keys(*, db_session: AsyncSession) -> list[SigningKey]:
    return list((await db_session.scalars(sa.select(SigningKey).order_by(SigningKey.created_at))).all())


async def jwks(*, db_session: AsyncSession) -> dict[str, list[dict[str, Any]]]:
    rows = await db_session.scalars(sa.select(SigningKey).where(_published(utcnow()))
                                    .order_by(SigningKey.activates_at.desc()))
    return {"keys": [row.public_jwk for row in rows]}


class KeyRing:
    """The signing key of this process: the newest active key, decrypted once and cached briefly
    (a rotation done by another process is seen within `signing_key_cache_seconds`; activation
    delays are far longer)."""

    def __init__(self, settings: AuthSettings) -> None:
        self.encryption = KeyEncryption.from_settings(settings)
        self.cache_seconds = settings.signing_key_cache_seconds
        self._decrypted: dict[str, Ed25519PrivateKey] = {}
        self._current: ActiveKey | None = None
        self._until = 0.0

    def invalidate(self) -> None:
        self._current = None
        self._until = 0.0

    async def signing_key(self, *, db_session: AsyncSession) -> ActiveKey:
        if self._current is not None and time.monotonic() < self._until:
            return self._current
        now = utcnow()
        row = (await db_session.execute(
            sa.select(SigningKey.kid, SigningKey.private_key)
            .where(_published(now), SigningKey.activates_at <= now, SigningKey.private_key != "")
            .order_by(SigningKey.created_at.desc()).limit(1))).first()  # the latest rotation that is live
        if row is None:
            raise SigningKeyError("no active signing key: run `python -m auth migrate`")
        private = self._decrypted.get(row.kid)
        if private is None:
            loaded = serialization.load_pem_private_key(self.encryption.open(row.kid, row.private_key),
                                                        password=None)
            assert isinstance(loaded, Ed25519PrivateKey)
            private = self._decrypted[row.kid] = loaded
        self._current = ActiveKey(kid=row.kid, private_key=private)
        self._until = time.monotonic() + self.cache_seconds
        return self._current


def sign(key: ActiveKey, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM,
                      headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE})


def token_times(ttl_seconds: int) -> tuple[int, int]:
    now = dt.datetime.now(dt.UTC)
    return int(now.timestamp()), int((now + dt.timedelta(seconds=ttl_seconds)).timestamp())
